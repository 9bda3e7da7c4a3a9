//! Limits that protect a server: concurrent streams (global, per client IP, per session) and
//! per-route request rates (`rate_limit = "10/s"`, via `governor`).
//!
//! Over a limit, a request is refused before the function runs: 503 with `Retry-After` when
//! the whole server is full, 429 with `Retry-After` for one client's or session's share.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::PikkuError;
use crate::registry::{RateLimit, RatePer};

/// Caps on concurrent streams. `None` is no cap.
///
/// ```
/// let limits = pikku::Limits { max_streams: Some(10_000), max_streams_per_ip: Some(50), ..Default::default() };
/// # let _ = limits;
/// ```
#[derive(Debug, Clone)]
pub struct Limits {
    /// Streams open at once on this app.
    pub max_streams: Option<usize>,
    /// Streams open at once from one client IP (behind a reverse proxy, the client it names:
    /// see [`TrustedProxies`](crate::TrustedProxies)).
    pub max_streams_per_ip: Option<usize>,
    /// Streams open at once of one session identity (one user, however many logins: see
    /// [`SessionInfo::identity`](crate::session::SessionInfo)), or of one credential (token or
    /// cookie) when the session service names no identity.
    pub max_streams_per_session: Option<usize>,
    /// The `Retry-After` sent with refusals, in seconds.
    pub retry_after_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams: None,
            max_streams_per_ip: None,
            max_streams_per_session: None,
            retry_after_secs: 1,
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_session: HashMap<u64, usize>,
}

/// Tracks open streams against [`Limits`].
#[derive(Debug, Clone)]
pub(crate) struct StreamLimiter {
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
}

/// Holds one stream's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct StreamPermit {
    counts: Arc<Mutex<Counts>>,
    ip: Option<IpAddr>,
    session: Option<u64>,
}

impl StreamLimiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            counts: Arc::default(),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.limits.max_streams.is_none()
            && self.limits.max_streams_per_ip.is_none()
            && self.limits.max_streams_per_session.is_none()
    }

    /// Takes a place for a stream from `ip` with `credential`, or says why not.
    pub fn acquire(
        &self,
        ip: Option<IpAddr>,
        credential: Option<&str>,
    ) -> Result<StreamPermit, PikkuError> {
        let retry = self.limits.retry_after_secs;
        let session = credential.map(|c| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            c.hash(&mut h);
            h.finish()
        });
        let mut counts = self
            .counts
            .lock()
            .map_err(|_| PikkuError::internal("stream limiter lock poisoned"))?;
        if self
            .limits
            .max_streams
            .is_some_and(|max| counts.total >= max)
        {
            return Err(PikkuError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                "the server holds as many streams as it can; retry shortly",
            )
            .with_retry_after(retry));
        }
        if let (Some(max), Some(ip)) = (self.limits.max_streams_per_ip, ip) {
            if counts.per_ip.get(&ip).copied().unwrap_or(0) >= max {
                return Err(PikkuError::too_many_requests(
                    "too many open streams from this address",
                    retry,
                ));
            }
        }
        if let (Some(max), Some(s)) = (self.limits.max_streams_per_session, session) {
            if counts.per_session.get(&s).copied().unwrap_or(0) >= max {
                return Err(PikkuError::too_many_requests(
                    "too many open streams for this session",
                    retry,
                ));
            }
        }
        counts.total += 1;
        if let Some(ip) = ip {
            *counts.per_ip.entry(ip).or_default() += 1;
        }
        if let Some(s) = session {
            *counts.per_session.entry(s).or_default() += 1;
        }
        Ok(StreamPermit {
            counts: self.counts.clone(),
            ip,
            session,
        })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        counts.total = counts.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = counts.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.per_ip.remove(&ip);
                }
            }
        }
        if let Some(s) = self.session {
            if let Some(n) = counts.per_session.get_mut(&s) {
                *n -= 1;
                if *n == 0 {
                    counts.per_session.remove(&s);
                }
            }
        }
    }
}

/// A route's request rate limit, per client IP.
pub(crate) struct RouteRateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl RouteRateLimiter {
    pub fn new(rate: RateLimit) -> Option<Self> {
        let n = NonZeroU32::new(rate.count)?;
        let quota = match rate.per {
            RatePer::Second => Quota::per_second(n),
            RatePer::Minute => Quota::per_minute(n),
            RatePer::Hour => Quota::per_hour(n),
        };
        Some(Self {
            limiter: governor::RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        })
    }

    /// Lets a request from `ip` through, or answers 429 with the wait as `Retry-After`.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), PikkuError> {
        let key = ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        // Forget clients that are back to a full quota, so the map stays small.
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let secs = wait.max(Duration::from_secs(1)).as_secs_f64().ceil() as u64;
            PikkuError::too_many_requests("rate limit exceeded for this route", secs)
        })
    }
}
