//! Calendar dates and the spec's date rules: ages on the request date and authorization
//! periods with an inclusive end, where month arithmetic clamps to the month's last day.

use std::fmt;

use jiff::civil;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `YYYY-MM-DD` calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(civil::Date);

/// A length of time as a policy states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Duration {
    Days(u32),
    Weeks(u32),
    Months(u32),
    Years(u32),
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = match *self {
            Duration::Days(n) => (n, "day"),
            Duration::Weeks(n) => (n, "week"),
            Duration::Months(n) => (n, "month"),
            Duration::Years(n) => (n, "year"),
        };
        write!(f, "{n} {unit}{}", if n == 1 { "" } else { "s" })
    }
}

impl Date {
    /// A date known to exist, for constants (a day that does not exist fails to compile).
    pub const fn from_ymd_unchecked(year: i16, month: i8, day: i8) -> Date {
        Date(civil::date(year, month, day))
    }

    pub fn new(year: i16, month: i8, day: i8) -> Option<Date> {
        civil::Date::new(year, month, day).ok().map(Date)
    }

    /// Parses exactly `YYYY-MM-DD` (the schema's pattern) and checks the day exists.
    pub fn parse(text: &str) -> Option<Date> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<i32> {
            let digits = bytes.get(range)?;
            digits.iter().try_fold(0i32, |acc, b| {
                b.is_ascii_digit().then(|| acc * 10 + i32::from(b - b'0'))
            })
        };
        let year = i16::try_from(number(0..4)?).ok()?;
        let month = i8::try_from(number(5..7)?).ok()?;
        let day = i8::try_from(number(8..10)?).ok()?;
        Date::new(year, month, day)
    }

    /// The day `n` days later (earlier when negative).
    pub fn add_days(self, n: i64) -> Option<Date> {
        // A day of the same month needs no conversion to epoch days and back, the costly part
        // of finding where an approval ends (the day before a date, most often in its month).
        let day = i64::from(self.0.day()).checked_add(n);
        if let Some(day) = day.filter(|day| (1..=i64::from(self.0.days_in_month())).contains(day)) {
            return Date::new(self.0.year(), self.0.month(), day as i8);
        }
        Date::from_epoch_days(i64::from(self.0.to_jiff_epoch_days()).checked_add(n)?)
    }

    /// The date `days` days after 1970-01-01.
    pub fn from_epoch_days(days: i64) -> Option<Date> {
        let (year, month, day) = civil_from_days(days);
        Date::new(i16::try_from(year).ok()?, month, day)
    }

    /// The same day `n` months later, clamped to the last day of a shorter month
    /// (2026-08-31 plus 6 months is 2027-02-28).
    pub fn add_months(self, n: i64) -> Option<Date> {
        let months = i64::from(self.0.year()) * 12 + i64::from(self.0.month()) - 1 + n;
        let year = i16::try_from(months.div_euclid(12)).ok()?;
        let month = i8::try_from(months.rem_euclid(12) + 1).ok()?;
        let last_day = civil::Date::new(year, month, 1).ok()?.days_in_month();
        Date::new(year, month, self.0.day().min(last_day))
    }

    /// Whole days from `earlier` to `self`.
    pub fn days_since(self, earlier: Date) -> i64 {
        i64::from(self.0.to_jiff_epoch_days()) - i64::from(earlier.0.to_jiff_epoch_days())
    }

    /// Completed months from `birth` to `self`, counting a month complete on the day that
    /// `add_months` reaches (born 2024-01-31: one month old on 2024-02-29).
    pub fn months_since(self, birth: Date) -> i64 {
        let (a, b) = (self.0, birth.0);
        let months = (i64::from(a.year()) - i64::from(b.year())) * 12 + i64::from(a.month())
            - i64::from(b.month());
        // `birth + months` lands in this month on the birth day, clamped to the month's
        // length; the month is complete if that day has come.
        let reached_day = b.day().min(a.days_in_month());
        let months = if a.day() < reached_day {
            months - 1
        } else {
            months
        };
        months.max(0)
    }

    /// The last covered day of an authorization starting on `self`: the start plus the
    /// duration, minus one day (one year from 2026-03-02 ends 2027-03-01).
    pub fn inclusive_end(self, duration: Duration) -> Option<Date> {
        let after = match duration {
            Duration::Days(n) => self.add_days(i64::from(n)),
            Duration::Weeks(n) => self.add_days(i64::from(n) * 7),
            Duration::Months(n) => self.add_months(i64::from(n)),
            Duration::Years(n) => self.add_months(i64::from(n) * 12),
        }?;
        after.add_days(-1)
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's civil-from-days).
fn civil_from_days(days: i64) -> (i64, i8, i8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as i8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as i8;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

trait EpochDays {
    fn to_jiff_epoch_days(self) -> i32;
}

impl EpochDays for civil::Date {
    fn to_jiff_epoch_days(self) -> i32 {
        // Days since 1970-01-01 (Howard Hinnant's days-from-civil). jiff's general span
        // arithmetic gives the same, at many times the cost on the hot path of every approval.
        let (y, m, d) = (
            i32::from(self.year()),
            i32::from(self.month()),
            i32::from(self.day()),
        );
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateVisitor;
        impl serde::de::Visitor<'_> for DateVisitor {
            type Value = Date;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date as YYYY-MM-DD")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Date, E> {
                Date::parse(text)
                    .ok_or_else(|| E::custom(format!("`{text}` is not a date as YYYY-MM-DD")))
            }
        }
        deserializer.deserialize_str(DateVisitor)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Date {
        Date::parse(text).unwrap()
    }

    #[test]
    fn adding_days_within_a_month_agrees_with_the_calendar_conversion() {
        let mut date = d("1999-12-01");
        while date < d("2030-01-01") {
            for n in -40..=40 {
                let converted = i64::from(date.0.to_jiff_epoch_days()) + n;
                assert_eq!(
                    date.add_days(n),
                    Date::from_epoch_days(converted),
                    "{date} {n}"
                );
            }
            date = date.add_days(1).unwrap();
        }
    }

    #[test]
    fn the_spec_examples_of_inclusive_ends() {
        assert_eq!(
            d("2026-03-02").inclusive_end(Duration::Years(1)),
            Some(d("2027-03-01"))
        );
        assert_eq!(
            d("2026-03-02").inclusive_end(Duration::Weeks(30)),
            Some(d("2026-09-27"))
        );
        assert_eq!(
            d("2026-08-31").inclusive_end(Duration::Months(6)),
            Some(d("2027-02-27"))
        );
        assert_eq!(
            d("2026-05-18").inclusive_end(Duration::Days(28)),
            Some(d("2026-06-14"))
        );
        assert_eq!(
            d("2028-02-29").inclusive_end(Duration::Years(1)),
            Some(d("2029-02-27"))
        );
    }

    #[test]
    fn parsing_is_strict() {
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-1-01",
            "26-01-01",
            "2026/01/01",
            "2026-01-01T00",
            "２026-01-01",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
        assert_eq!(d("2024-02-29").to_string(), "2024-02-29");
    }

    #[test]
    fn months_and_days_between() {
        assert_eq!(d("2026-05-18").months_since(d("2026-04-18")), 1);
        assert_eq!(d("2026-05-17").months_since(d("2026-04-18")), 0);
        assert_eq!(d("2024-02-29").months_since(d("2024-01-31")), 1);
        assert_eq!(d("2026-05-18").months_since(d("2011-05-18")), 180);
        assert_eq!(d("2026-05-17").months_since(d("2011-05-18")), 179);
        assert_eq!(d("2026-05-18").days_since(d("2026-05-10")), 8);
        assert_eq!(d("1970-01-01").days_since(d("1969-12-31")), 1);
        assert_eq!(d("2000-03-01").days_since(d("2000-02-28")), 2);
    }
}
