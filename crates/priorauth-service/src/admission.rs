//! What a call must pass before any handler reads its body: a valid API key, then its share of
//! the service (a rate per key and per organization, and a number of calls in flight per
//! organization). A refused call costs the service its headers and one key lookup, never its
//! body: so no one without a key can make the service read megabytes, and no organization can
//! take the capacity another's calls need. Refusals are 401 and 429 with `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, header};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::keys::{self, Caller};
use crate::store::Store;
use crate::web::AppError;

/// Each organization's and each key's share. A rate of 0, or an in-flight count of 0, is no
/// limit (for a deployment that puts its own gateway in front, and for load benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls per second one API key may make, sustained; a burst of twice that is allowed.
    pub per_key_per_second: u32,
    /// Calls per second all of one organization's keys may make together; burst twice that.
    pub per_organization_per_second: u32,
    /// Calls of one organization being answered at once; one more is refused, not queued, so
    /// that a flood holds no memory and no connection waiting.
    pub in_flight_per_organization: u32,
}

impl Limits {
    /// A clinic's or an EHR integration's traffic with room to spare: prior-authorization
    /// requests come a few a minute per clinic, and a busy integration's batch of
    /// resubmissions at 50 a second passes.
    pub const DEFAULT: Limits = Limits {
        per_key_per_second: 50,
        per_organization_per_second: 100,
        in_flight_per_organization: 32,
    };

    pub const UNLIMITED: Limits = Limits {
        per_key_per_second: 0,
        per_organization_per_second: 0,
        in_flight_per_organization: 0,
    };

    /// The defaults, each replaced by its environment variable when set:
    /// `PRIORAUTH_RATE_PER_KEY`, `PRIORAUTH_RATE_PER_ORGANIZATION`,
    /// `PRIORAUTH_IN_FLIGHT_PER_ORGANIZATION` (whole numbers, 0 for no limit).
    pub fn from_env() -> Result<Limits, String> {
        let read = |name: &str, default: u32| -> Result<u32, String> {
            match std::env::var(name) {
                Ok(text) => text.trim().parse().map_err(|_| {
                    format!("{name}: `{text}` is not a whole number (0 for no limit)")
                }),
                Err(_) => Ok(default),
            }
        };
        let d = Limits::DEFAULT;
        Ok(Limits {
            per_key_per_second: read("PRIORAUTH_RATE_PER_KEY", d.per_key_per_second)?,
            per_organization_per_second: read(
                "PRIORAUTH_RATE_PER_ORGANIZATION",
                d.per_organization_per_second,
            )?,
            in_flight_per_organization: read(
                "PRIORAUTH_IN_FLIGHT_PER_ORGANIZATION",
                d.in_flight_per_organization,
            )?,
        })
    }
}

/// The limiters, shared by every connection.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    by_key: Option<DefaultKeyedRateLimiter<String>>,
    by_organization: Option<DefaultKeyedRateLimiter<String>>,
    /// One semaphore per organization that has called; only authenticated organizations are
    /// added, so the map is bounded by the keys the payer issued.
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// An admitted call: its caller, and its place among its organization's calls in flight,
/// given back when the answer is sent.
#[derive(Debug)]
pub struct Admitted {
    pub caller: Caller,
    _in_flight: Option<OwnedSemaphorePermit>,
}

fn limiter(per_second: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(DefaultKeyedRateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            by_key: limiter(limits.per_key_per_second),
            by_organization: limiter(limits.per_organization_per_second),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The caller of a call with these headers, if its key is valid and its key and
    /// organization are within their shares.
    pub async fn admit(&self, store: &Store, headers: &HeaderMap) -> Result<Admitted, AppError> {
        let secret = secret(headers).ok_or(AppError::Unauthorized)?;
        let caller = keys::authenticate(store, secret)
            .await?
            .ok_or(AppError::Unauthorized)?;
        self.within_rate(self.by_key.as_ref(), &caller.key_id, "this API key")?;
        self.within_rate(
            self.by_organization.as_ref(),
            &caller.organization,
            "this organization",
        )?;
        let in_flight = self.in_flight_permit(&caller.organization)?;
        Ok(Admitted {
            caller,
            _in_flight: in_flight,
        })
    }

    fn within_rate(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<String>>,
        key: &str,
        whose: &str,
    ) -> Result<(), AppError> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        // Only callers that authenticated reach here: the limiter's map holds the payer's
        // keys and organizations, nothing an anonymous caller can add to.
        limiter.check_key(&key.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::TooManyRequests {
                // Whole seconds, at least 1 (`Retry-After` has no fractions).
                retry_after_seconds: wait.as_secs() + 1,
                detail: format!("{whose} is over its rate; retry after the time given"),
            }
        })
    }

    fn in_flight_permit(
        &self,
        organization: &str,
    ) -> Result<Option<OwnedSemaphorePermit>, AppError> {
        let permits = self.limits.in_flight_per_organization;
        if permits == 0 {
            return Ok(None);
        }
        let semaphore = {
            let mut map = self
                .in_flight
                .lock()
                .map_err(|_| AppError::Internal("admission lock poisoned".into()))?;
            map.entry(organization.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(permits as usize)))
                .clone()
        };
        semaphore.try_acquire_owned().map(Some).map_err(|_| {
            AppError::TooManyRequests {
                retry_after_seconds: 1,
                detail: format!(
                    "this organization has {permits} calls being answered; send the next when one is answered"
                ),
            }
        })
    }
}

/// The API key of a call: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
pub fn secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_admits_its_burst_then_refuses_with_a_wait() {
        let admission = Admission::new(Limits {
            per_key_per_second: 2,
            ..Limits::UNLIMITED
        });
        let limiter = admission.by_key.as_ref();
        for _ in 0..4 {
            assert!(admission.within_rate(limiter, "k1", "key").is_ok());
        }
        match admission.within_rate(limiter, "k1", "key") {
            Err(AppError::TooManyRequests {
                retry_after_seconds,
                ..
            }) => assert!((1..=2).contains(&retry_after_seconds)),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Another key has its own share.
        assert!(admission.within_rate(limiter, "k2", "key").is_ok());
    }

    #[test]
    fn in_flight_calls_are_counted_per_organization_and_given_back() {
        let admission = Admission::new(Limits {
            in_flight_per_organization: 2,
            ..Limits::UNLIMITED
        });
        let first = admission.in_flight_permit("org-a");
        let held = admission.in_flight_permit("org-a");
        assert!(matches!(first, Ok(Some(_))) && matches!(held, Ok(Some(_))));
        let third = admission.in_flight_permit("org-a");
        assert!(matches!(third, Err(AppError::TooManyRequests { .. })));
        // Another organization is not affected.
        assert!(matches!(admission.in_flight_permit("org-b"), Ok(Some(_))));
        drop(held);
        assert!(matches!(admission.in_flight_permit("org-a"), Ok(Some(_))));
    }

    #[test]
    fn no_limit_is_no_limit() {
        let admission = Admission::new(Limits::UNLIMITED);
        for _ in 0..1000 {
            assert!(
                admission
                    .within_rate(admission.by_key.as_ref(), "k", "key")
                    .is_ok()
            );
            assert!(matches!(admission.in_flight_permit("org"), Ok(None)));
        }
    }
}
