//! Request rate limits (API.md "Limits"): per credential (user or API key) and
//! per client IP, in requests per second with a burst of twice that, counted
//! separately for order entry (placing, amending, cancelling) and everything
//! else. Token buckets (GCRA) from `governor`; `0` disables a limit. Exceeding
//! one answers `429 RATE_LIMITED` with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::Method;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::Principal;

/// Default order-entry requests per second per credential and per IP.
pub const ORDERS_PER_SECOND_DEFAULT: u32 = 100;
/// Default other requests per second per credential and per IP.
pub const QUERIES_PER_SECOND_DEFAULT: u32 = 50;

struct Buckets {
    per_second: u32,
    by_credential: DefaultKeyedRateLimiter<Principal>,
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl Buckets {
    fn new(per_second: u32) -> Option<Buckets> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(per_second.saturating_mul(2))?;
        let quota = Quota::per_second(rate).allow_burst(burst);
        Some(Buckets {
            per_second,
            by_credential: RateLimiter::keyed(quota),
            by_ip: RateLimiter::keyed(quota),
        })
    }

    fn refused(&self, until: &governor::NotUntil<governor::clock::QuantaInstant>) -> Limited {
        Limited {
            per_second: self.per_second,
            retry_after: until.wait_time_from(DefaultClock::default().now()),
        }
    }
}

/// Which bucket a request draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Placing, amending or cancelling orders.
    Orders,
    /// Everything else.
    Queries,
}

impl Kind {
    /// Classifies a request.
    pub fn of(method: &Method, path: &str) -> Kind {
        let order_path = path.starts_with("/atlas/api/order") || path.starts_with("/coinbase/orders");
        if order_path && matches!(*method, Method::POST | Method::PUT | Method::DELETE) {
            Kind::Orders
        } else {
            Kind::Queries
        }
    }
}

/// The limiters of one process.
pub struct RateLimits {
    orders: Option<Buckets>,
    queries: Option<Buckets>,
}

/// A refusal: the limit and how long to wait.
pub struct Limited {
    /// Requests per second allowed.
    pub per_second: u32,
    /// When to retry.
    pub retry_after: Duration,
}

impl RateLimits {
    /// Limits of `orders` and `queries` requests per second (0: unlimited).
    pub fn new(orders: u32, queries: u32) -> RateLimits {
        RateLimits { orders: Buckets::new(orders), queries: Buckets::new(queries) }
    }

    fn buckets(&self, kind: Kind) -> Option<&Buckets> {
        match kind {
            Kind::Orders => self.orders.as_ref(),
            Kind::Queries => self.queries.as_ref(),
        }
    }

    /// Takes a token for a request of `kind` from `ip` (asked first, before
    /// the request's body is read or its credential checked).
    pub fn check_ip(&self, kind: Kind, ip: IpAddr) -> Result<(), Limited> {
        let Some(b) = self.buckets(kind) else { return Ok(()) };
        b.by_ip.check_key(&ip).map_err(|until| b.refused(&until))
    }

    /// Both of the above, for a request already authenticated (FIX).
    pub fn check(&self, kind: Kind, ip: IpAddr, who: Principal) -> Result<(), Limited> {
        self.check_ip(kind, ip)?;
        self.check_credential(kind, who)
    }

    /// Takes a token for a request of `kind` by `who` (once authenticated).
    pub fn check_credential(&self, kind: Kind, who: Principal) -> Result<(), Limited> {
        let Some(b) = self.buckets(kind) else { return Ok(()) };
        b.by_credential.check_key(&who).map_err(|until| b.refused(&until))
    }

    /// Forgets idle keys (call now and then, so the maps stay bounded by the
    /// clients active in the last few seconds).
    pub fn retain_recent(&self) {
        for b in [&self.orders, &self.queries].into_iter().flatten() {
            b.by_credential.retain_recent();
            b.by_ip.retain_recent();
        }
    }
}

/// Default failed logins per user name before back-off starts.
pub const LOGIN_FAILURES_PER_USER_DEFAULT: u32 = 5;
/// Default failed logins per client IP before back-off starts.
pub const LOGIN_FAILURES_PER_IP_DEFAULT: u32 = 20;
/// The first back-off; each further failure doubles it.
const LOGIN_BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest back-off.
const LOGIN_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// A name or IP with no failure for this long starts over.
const LOGIN_FAILURES_FORGOTTEN_AFTER: Duration = Duration::from_secs(15 * 60);
/// Names and IPs tracked at once, at most (each entry is small; beyond this the
/// oldest unblocked ones are forgotten first).
const LOGIN_TRACKED_MAX: usize = 100_000;

#[derive(Clone, PartialEq, Eq, Hash)]
enum LoginKey {
    User(String),
    Ip(IpAddr),
}

struct Failures {
    count: u32,
    last: std::time::Instant,
    blocked_until: Option<std::time::Instant>,
}

/// Login throttling with exponential back-off per user name and per client IP:
/// after `free` failures, each further failure blocks the name (or IP) for 1 s,
/// 2 s, 4 s, ... up to 15 minutes; attempts while blocked are refused before
/// any password work. A success clears the name's count (not the IP's). Names
/// are tracked whether or not such a user exists, so the answers do not tell.
pub struct LoginThrottle {
    per_user: u32,
    per_ip: u32,
    state: std::sync::Mutex<std::collections::HashMap<LoginKey, Failures>>,
}

impl LoginThrottle {
    /// Back-off after `per_user` failures of a name and `per_ip` of an IP (0: never).
    pub fn new(per_user: u32, per_ip: u32) -> LoginThrottle {
        LoginThrottle { per_user, per_ip, state: Default::default() }
    }

    fn keys(&self, name: &str, ip: Option<IpAddr>) -> Vec<(LoginKey, u32)> {
        let mut keys = Vec::with_capacity(2);
        if self.per_user > 0 {
            keys.push((LoginKey::User(name.to_owned()), self.per_user));
        }
        if let (Some(ip), true) = (ip, self.per_ip > 0) {
            keys.push((LoginKey::Ip(ip), self.per_ip));
        }
        keys
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<LoginKey, Failures>> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ok to try now, or how long to wait.
    pub fn check(&self, name: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        let now = std::time::Instant::now();
        let state = self.lock();
        let wait = self
            .keys(name, ip)
            .iter()
            .filter_map(|(k, _)| state.get(k).and_then(|f| f.blocked_until))
            .filter_map(|until| until.checked_duration_since(now))
            .max();
        match wait {
            Some(w) if !w.is_zero() => Err(w),
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt.
    pub fn failed(&self, name: &str, ip: Option<IpAddr>) {
        let now = std::time::Instant::now();
        let keys = self.keys(name, ip);
        let mut state = self.lock();
        if state.len() + keys.len() > LOGIN_TRACKED_MAX {
            state.retain(|_, f| {
                f.blocked_until.is_some_and(|u| u > now)
                    || now.duration_since(f.last) < LOGIN_FAILURES_FORGOTTEN_AFTER
            });
            if state.len() + keys.len() > LOGIN_TRACKED_MAX {
                // Still full of recent failures: keep only the blocked.
                state.retain(|_, f| f.blocked_until.is_some_and(|u| u > now));
            }
        }
        for (key, free) in keys {
            let f = state.entry(key).or_insert(Failures { count: 0, last: now, blocked_until: None });
            if now.duration_since(f.last) >= LOGIN_FAILURES_FORGOTTEN_AFTER {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
            if f.count >= free {
                let doublings = (f.count - free).min(20);
                let backoff = LOGIN_BACKOFF_FIRST.saturating_mul(1 << doublings).min(LOGIN_BACKOFF_MAX);
                f.blocked_until = Some(now + backoff);
            }
        }
    }

    /// Clears the name's failures after a successful login.
    pub fn succeeded(&self, name: &str) {
        self.lock().remove(&LoginKey::User(name.to_owned()));
    }

    /// Forgets names and IPs that have neither failed nor been blocked lately.
    pub fn retain_recent(&self) {
        let now = std::time::Instant::now();
        self.lock().retain(|_, f| {
            f.blocked_until.is_some_and(|u| u > now)
                || now.duration_since(f.last) < LOGIN_FAILURES_FORGOTTEN_AFTER
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_after_the_free_failures_and_a_success_clears_the_name() {
        let t = LoginThrottle::new(2, 0);
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        assert!(t.check("alice", ip).is_ok());
        t.failed("alice", ip);
        assert!(t.check("alice", ip).is_ok(), "the first failure is free");
        t.failed("alice", ip);
        let w1 = t.check("alice", ip).unwrap_err();
        assert!(w1 <= LOGIN_BACKOFF_FIRST && w1 > Duration::from_millis(500), "{w1:?}");
        t.failed("alice", ip);
        let w2 = t.check("alice", ip).unwrap_err();
        assert!(w2 > Duration::from_millis(1500), "doubled: {w2:?}");
        assert!(t.check("bob", ip).is_ok(), "another name is not blocked (no IP limit here)");
        t.succeeded("alice");
        assert!(t.check("alice", ip).is_ok());
        for _ in 0..100 {
            t.failed("carol", ip);
        }
        assert!(t.check("carol", ip).unwrap_err() <= LOGIN_BACKOFF_MAX, "capped");
    }

    #[test]
    fn an_ip_is_throttled_across_names_and_zero_disables() {
        let t = LoginThrottle::new(0, 3);
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for name in ["a", "b", "c"] {
            assert!(t.check(name, ip).is_ok());
            t.failed(name, ip);
        }
        assert!(t.check("d", ip).is_err(), "the IP is blocked whatever the name");
        assert!(t.check("d", Some(IpAddr::from([10, 0, 0, 2]))).is_ok(), "another IP is not");
        let off = LoginThrottle::new(0, 0);
        for _ in 0..50 {
            off.failed("x", ip);
        }
        assert!(off.check("x", ip).is_ok());
    }
}
