//! What every handler shares.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use arw_host::Host;
use arw_host::config::HttpConfig;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::auth::Callers;
use crate::metrics::Metrics;

pub struct AppState {
    pub host: Arc<Host>,
    pub callers: Callers,
    pub metrics: Metrics,
    pub admin: Option<Arc<arw_ops::Live>>,
    pub config: HttpConfig,
    pub limits: AdminLimits,
    /// Cancelled when the server stops: event streams end with it.
    pub shutdown: CancellationToken,
    /// One permit per open event stream (`http.max-event-streams`).
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// The MCP sessions (counted against `http.max-mcp-sessions`).
    pub mcp_sessions: Arc<rmcp::transport::streamable_http_server::session::local::LocalSessionManager>,
}

pub type SharedState = Arc<AppState>;

/// Admin requests are rate-limited twice: per caller (token) and per client
/// address, so neither many addresses with one token nor many tokens from
/// one address get around it. The rate is `http.admin-rate-per-minute`, or
/// the value the feedback engine applied to the knob of that name: a new
/// rate takes effect at the next admin request, with fresh (full) buckets.
pub struct AdminLimits {
    burst: NonZeroU32,
    limiters: RwLock<Limiters>,
}

struct Limiters {
    per_minute: NonZeroU32,
    by_caller: DefaultKeyedRateLimiter<String>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl Limiters {
    fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Limiters { per_minute, by_caller: RateLimiter::keyed(quota), by_address: RateLimiter::keyed(quota) }
    }
}

impl AdminLimits {
    pub fn new(config: &HttpConfig) -> Self {
        let per_minute = NonZeroU32::new(config.admin_rate_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.admin_burst).unwrap_or(NonZeroU32::MIN);
        AdminLimits { burst, limiters: RwLock::new(Limiters::new(per_minute, burst)) }
    }

    /// `Err(seconds to wait)` when over `per_minute`.
    pub fn check(&self, per_minute: u32, caller: &str, address: Option<IpAddr>) -> Result<(), u64> {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        if self.limiters.read().per_minute != per_minute {
            let mut limiters = self.limiters.write();
            if limiters.per_minute != per_minute {
                *limiters = Limiters::new(per_minute, self.burst);
            }
        }
        let limiters = self.limiters.read();
        let clock = DefaultClock::default();
        let wait = |not_until: governor::NotUntil<_>| not_until.wait_time_from(clock.now()).as_secs().max(1);
        limiters.by_caller.check_key(&caller.to_string()).map_err(wait)?;
        if let Some(address) = address {
            limiters.by_address.check_key(&address).map_err(wait)?;
        }
        Ok(())
    }

    /// Forget idle keys (called now and then so the maps stay small).
    pub fn prune(&self) {
        let limiters = self.limiters.read();
        limiters.by_caller.retain_recent();
        limiters.by_address.retain_recent();
    }
}
