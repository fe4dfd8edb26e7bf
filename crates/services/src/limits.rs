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

    /// Takes a token for a request of `kind` from `ip`, by `who` if known.
    pub fn check(&self, kind: Kind, ip: Option<IpAddr>, who: Option<Principal>) -> Result<(), Limited> {
        let buckets = match kind {
            Kind::Orders => &self.orders,
            Kind::Queries => &self.queries,
        };
        let Some(b) = buckets else { return Ok(()) };
        let refused = |until: governor::NotUntil<_>| Limited {
            per_second: b.per_second,
            retry_after: until.wait_time_from(DefaultClock::default().now()),
        };
        if let Some(ip) = ip {
            b.by_ip.check_key(&ip).map_err(refused)?;
        }
        if let Some(who) = who {
            b.by_credential.check_key(&who).map_err(refused)?;
        }
        Ok(())
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
