//! What a call must pass before any handler reads its body: a valid API key, then its share of
//! the service (a rate per key and per organization, and a number of calls in flight per
//! organization). A refused call costs the service its headers and one key lookup, never its
//! body: so no one without a key can make the service read megabytes, and no organization can
//! take the capacity another's calls need. Refusals are 401 and 429 with `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, header};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::keys::Caller;
use crate::store::Store;
use crate::store::audit::AuditRecord;
use crate::trust;
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
    /// How long a call over its key's or organization's rate waits for its turn (holding its
    /// place among the organization's calls in flight, so the waiting are bounded) before it
    /// is refused 429: a client that sends one call after another is slowed to its rate, not
    /// failed; a flood still meets the in-flight limit at once.
    pub rate_wait: std::time::Duration,
    /// FHIR body bytes one organization may send per second, in KB (a burst of 8 MB): a
    /// Bundle costs the service CPU and memory by its size (about 40 ms of a core per MB to
    /// read), far more than its count says.
    pub fhir_kilobytes_per_organization_per_second: u32,
    /// Calls without a valid credential one source address (an IPv6 /64) may make per
    /// second, burst twice that; past it, its calls are refused 429 before any key is looked
    /// up, until its rate allows again. A flood without a key costs one lookup each no more.
    pub unauthenticated_per_address_per_second: u32,
}

impl Limits {
    /// A clinic's or an EHR integration's traffic with room to spare: prior-authorization
    /// requests come a few a minute per clinic, and a busy integration's batch of
    /// resubmissions at 50 a second passes.
    pub const DEFAULT: Limits = Limits {
        per_key_per_second: 50,
        per_organization_per_second: 100,
        in_flight_per_organization: 32,
        rate_wait: std::time::Duration::from_secs(2),
        // 1 MB a second is 86 GB a day: a clinic's PAS requests with their attachments.
        fhir_kilobytes_per_organization_per_second: 1024,
        unauthenticated_per_address_per_second: 20,
    };

    pub const UNLIMITED: Limits = Limits {
        per_key_per_second: 0,
        per_organization_per_second: 0,
        in_flight_per_organization: 0,
        rate_wait: std::time::Duration::ZERO,
        fhir_kilobytes_per_organization_per_second: 0,
        unauthenticated_per_address_per_second: 0,
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
            rate_wait: std::time::Duration::from_millis(u64::from(read(
                "PRIORAUTH_RATE_WAIT_MS",
                u32::try_from(d.rate_wait.as_millis()).unwrap_or(0),
            )?)),
            fhir_kilobytes_per_organization_per_second: read(
                "PRIORAUTH_FHIR_KB_PER_ORGANIZATION",
                d.fhir_kilobytes_per_organization_per_second,
            )?,
            unauthenticated_per_address_per_second: read(
                "PRIORAUTH_UNAUTHENTICATED_PER_ADDRESS",
                d.unauthenticated_per_address_per_second,
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
    /// FHIR body bytes per organization, in units of `BODY_UNIT` bytes.
    fhir_bytes: Option<DefaultKeyedRateLimiter<String>>,
    /// One semaphore per organization that has called; only authenticated organizations are
    /// added, so the map is bounded by the keys the payer issued.
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// The memory bodies may take while they are read and answered, in MB: the whole's, and
    /// each organization's part of it.
    memory: Arc<Semaphore>,
    memory_by_organization: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Refused calls not yet written to the audit log, and how often they are written.
    refused: Mutex<HashMap<(String, String, &'static str), Refused>>,
    refusals_flushed_every: std::time::Duration,
    /// Calls without a valid credential, per source address; and the addresses refused
    /// until a time, found before any lookup. Both bounded (`SOURCES_KEPT`).
    unauthenticated: Option<DefaultKeyedRateLimiter<IpAddr>>,
    blocked: Mutex<HashMap<IpAddr, std::time::Instant>>,
}

/// Where a call comes from: its connection's peer, put in each request's extensions by
/// `connections::serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub IpAddr);

/// The most source addresses whose unauthenticated calls are counted or refused at once;
/// past it the oldest counts are forgotten (a botnet's addresses cannot grow the maps).
const SOURCES_KEPT: usize = 65_536;

/// A source address as limits count it: an IPv6 address by its /64, which one host commonly
/// holds whole.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Refused calls of one caller for one reason since the last flush: how many, and the first
/// few targets (method and path).
#[derive(Debug, Default)]
struct Refused {
    count: u64,
    targets: Vec<String>,
}

/// The memory large bodies may take at once, in MB, and one organization's part of it: one
/// 4 MB Bundle takes about 120 MB while it is read, parsed and answered, so a server stays
/// under 256 MB, and one organization cannot hold what the others' small requests need.
const MEMORY_MB: u32 = 160;
const MEMORY_PER_ORGANIZATION_MB: u32 = 120;

/// A share of the memory budget, given back when dropped.
#[derive(Debug)]
pub struct MemoryShare {
    _ours: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

/// FHIR body bytes are counted in units of 64 KB; the burst, 8 MB, holds two Bundles of the
/// largest size accepted.
const BODY_UNIT_KB: u32 = 64;
const BODY_BURST_UNITS: NonZeroU32 = match NonZeroU32::new(128) {
    Some(units) => units,
    None => NonZeroU32::MIN,
};

/// How often refused calls are written to the audit log: a few entries every few seconds,
/// whatever their number.
pub const REFUSALS_FLUSHED_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The targets an audit entry of refusals names (the count says how many there were), and
/// how much of each.
const REFUSED_TARGETS_KEPT: usize = 10;
const TARGET_CHARACTERS_KEPT: usize = 200;

/// Why an admitted call's answer is a refusal, as its audit entry's action says.
pub fn refusal_action(status: u16) -> Option<&'static str> {
    match status {
        403 => Some("refused.forbidden"),
        // Another organization's record answers as a missing one; both are probes worth
        // recording (the audit does not tell them apart either, so it makes no oracle).
        404 => Some("refused.not_found"),
        _ => None,
    }
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
            // Units of 64 KB a second, at least one.
            fhir_bytes: NonZeroU32::new(
                limits
                    .fhir_kilobytes_per_organization_per_second
                    .div_ceil(BODY_UNIT_KB),
            )
            .map(|units| {
                DefaultKeyedRateLimiter::keyed(
                    Quota::per_second(units).allow_burst(BODY_BURST_UNITS),
                )
            }),
            in_flight: Mutex::new(HashMap::new()),
            memory: Arc::new(Semaphore::new(MEMORY_MB as usize)),
            memory_by_organization: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            refusals_flushed_every: REFUSALS_FLUSHED_EVERY,
            unauthenticated: NonZeroU32::new(limits.unauthenticated_per_address_per_second).map(
                |rate| {
                    let burst = NonZeroU32::new(rate.get().saturating_mul(2)).unwrap_or(rate);
                    DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
                },
            ),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// Refused calls written to the audit log this often instead (a test flushes them
    /// itself: `web::flush_refusals`).
    pub fn with_refusals_flushed_every(mut self, every: std::time::Duration) -> Admission {
        self.refusals_flushed_every = every;
        self
    }

    pub fn refusals_flushed_every(&self) -> std::time::Duration {
        self.refusals_flushed_every
    }

    /// Records a refused call, to be audited at the next flush. Counted in memory, not
    /// written at once: a flood of refused calls must not become a flood of writes.
    pub fn record_refusal(&self, caller: Option<&Caller>, action: &'static str, target: &str) {
        let (actor, organization) = caller.map_or_else(
            || ("unauthenticated".to_string(), String::new()),
            |c| (c.key_id.clone(), c.organization.clone()),
        );
        if let Ok(mut refused) = self.refused.lock() {
            // Bounded: callers without a key share one entry; the others are the payer's keys.
            let entry = refused.entry((actor, organization, action)).or_default();
            entry.count += 1;
            // A caller chooses its path: only its first characters are kept.
            let target: String = target.chars().take(TARGET_CHARACTERS_KEPT).collect();
            if entry.targets.len() < REFUSED_TARGETS_KEPT && !entry.targets.contains(&target) {
                entry.targets.push(target);
            }
        }
    }

    /// The refusals recorded since the last call, as audit entries (one per caller and
    /// reason: `n=COUNT` and the first targets).
    pub fn take_refusals(&self) -> Vec<AuditRecord> {
        let taken = match self.refused.lock() {
            Ok(mut refused) => std::mem::take(&mut *refused),
            Err(_) => return Vec::new(),
        };
        taken
            .into_iter()
            .map(|((actor, organization, action), refused)| AuditRecord {
                actor,
                organization,
                action,
                target: format!("n={} {}", refused.count, refused.targets.join(" ")),
                binds: None,
                state: None,
            })
            .collect()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A share of the memory budget for a body that will take about `megabytes` while it is
    /// read, parsed and answered: first of the organization's part (at most
    /// `MEMORY_PER_ORGANIZATION_MB`, so the rest stays for everyone else), then of the whole
    /// (`MEMORY_MB`). A call waits for it within the request's time limit; it is given back
    /// when the permit is dropped (the call answered).
    pub async fn memory(
        &self,
        organization: &str,
        megabytes: u32,
    ) -> Result<MemoryShare, AppError> {
        let megabytes = megabytes.clamp(1, MEMORY_PER_ORGANIZATION_MB);
        let ours = {
            let mut map = self
                .memory_by_organization
                .lock()
                .map_err(|_| AppError::Internal("the memory budget's lock".into()))?;
            map.entry(organization.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(MEMORY_PER_ORGANIZATION_MB as usize)))
                .clone()
        };
        let closed = |_| AppError::Internal("the memory budget closed".into());
        // The organization's part first, then the whole: always in this order.
        let ours = ours.acquire_many_owned(megabytes).await.map_err(closed)?;
        let all = self
            .memory
            .clone()
            .acquire_many_owned(megabytes)
            .await
            .map_err(closed)?;
        Ok(MemoryShare {
            _ours: ours,
            _all: all,
        })
    }

    /// Whether an organization may send a FHIR body of `bytes` now; else 429 with the wait.
    pub fn within_fhir_bytes(&self, organization: &str, bytes: u64) -> Result<(), AppError> {
        let Some(limiter) = &self.fhir_bytes else {
            return Ok(());
        };
        let units = u32::try_from(bytes.div_ceil(u64::from(BODY_UNIT_KB) * 1024))
            .unwrap_or(u32::MAX)
            .clamp(1, BODY_BURST_UNITS.get());
        let units = NonZeroU32::new(units).unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(&organization.to_string(), units) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(AppError::TooManyRequests {
                    retry_after_seconds: wait.as_secs() + 1,
                    wait,
                    detail: "this organization is over its share of FHIR bytes a second; retry after the time given".into(),
                })
            }
            // Never: a body is at most the burst.
            Err(_) => Err(AppError::TooManyRequests {
                retry_after_seconds: 1,
                wait: std::time::Duration::from_secs(1),
                detail: "the body is larger than this organization's share".into(),
            }),
        }
    }

    /// The caller of a call with these headers, if its key is valid and its key and
    /// organization are within their shares. A refusal is recorded for the audit log with
    /// `target` (the call's method and path).
    pub async fn admit(
        &self,
        store: &Store,
        headers: &HeaderMap,
        target: &str,
        peer: Option<Peer>,
    ) -> Result<Admitted, AppError> {
        let source = peer.map(|p| source_of(p.0));
        if let Some(wait) = source.and_then(|s| self.blocked_for(s)) {
            self.record_refusal(None, "refused.unauthenticated_flood", target);
            return Err(AppError::TooManyRequests {
                retry_after_seconds: wait.as_secs() + 1,
                wait,
                detail: "too many calls without a valid credential from this address; retry after the time given".into(),
            });
        }
        let (method, path) = target.split_once(' ').unwrap_or(("", target));
        let path = path.split('?').next().unwrap_or(path);
        let caller = match secret(headers) {
            Some(secret) => {
                let audiences = trust::hook_audiences(headers, path);
                match trust::authenticate(store, secret, method, &audiences).await {
                    Ok(caller) => caller,
                    Err(trust::Refused::Store(error)) => return Err(error.into()),
                    // Recorded as a refused call by the 403's own audit (`refusal_action`).
                    Err(trust::Refused::Scope(why)) => return Err(AppError::Forbidden(why)),
                    Err(trust::Refused::Invalid(_)) => None,
                }
            }
            None => None,
        };
        let Some(caller) = caller else {
            self.record_refusal(None, "refused.unauthenticated", target);
            if let Some(source) = source {
                self.count_unauthenticated(source);
            }
            return Err(AppError::Unauthorized);
        };
        let in_flight = match self.in_flight_permit(&caller.organization) {
            Ok(in_flight) => in_flight,
            Err(refusal) => {
                self.record_refusal(Some(&caller), "refused.over_share", target);
                return Err(refusal);
            }
        };
        // Over a rate: wait for the turn, up to `rate_wait`, holding the in-flight place.
        let deadline = tokio::time::Instant::now() + self.limits.rate_wait;
        loop {
            let within = self
                .within_rate(self.by_key.as_ref(), &caller.key_id, "this API key")
                .and_then(|()| {
                    self.within_rate(
                        self.by_organization.as_ref(),
                        &caller.organization,
                        "this organization",
                    )
                });
            let refusal = match within {
                Ok(()) => {
                    return Ok(Admitted {
                        caller,
                        _in_flight: in_flight,
                    });
                }
                Err(refusal) => refusal,
            };
            let wait = match &refusal {
                AppError::TooManyRequests { wait, .. } => *wait,
                _ => std::time::Duration::MAX,
            };
            let now = tokio::time::Instant::now();
            if now.checked_add(wait).is_none_or(|ready| ready > deadline) {
                self.record_refusal(Some(&caller), "refused.over_share", target);
                return Err(refusal);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// How long a source address is still refused, if it is.
    fn blocked_for(&self, source: IpAddr) -> Option<std::time::Duration> {
        let blocked = self.blocked.lock().ok()?;
        let until = *blocked.get(&source)?;
        until.checked_duration_since(std::time::Instant::now())
    }

    /// Counts a call without a valid credential; past the address's rate, refuses the
    /// address until the rate allows again.
    fn count_unauthenticated(&self, source: IpAddr) {
        let Some(limiter) = &self.unauthenticated else {
            return;
        };
        if limiter.len() > SOURCES_KEPT {
            limiter.retain_recent();
        }
        if let Err(not_until) = limiter.check_key(&source) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            if let Ok(mut blocked) = self.blocked.lock() {
                let now = std::time::Instant::now();
                if blocked.len() >= SOURCES_KEPT {
                    blocked.retain(|_, until| *until > now);
                }
                if blocked.len() < SOURCES_KEPT {
                    blocked.insert(source, now + wait);
                }
            }
        }
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
                wait,
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
                wait: std::time::Duration::from_secs(1),
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
