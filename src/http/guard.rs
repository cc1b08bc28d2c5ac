//! The gate of every API route: authenticate the bearer token, charge the
//! caller's rate limit, check the route's role. Health and metrics stay open.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::problem::Problem;
use crate::auth::{AuthError, Authenticator};
use crate::config::RateLimitConfig;

/// Forget idle callers' buckets every this many checks, so the limiter's
/// memory follows the callers of the last moments, not all callers ever.
const PRUNE_EVERY: u64 = 4096;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token: health, readiness, metrics.
    Open,
    /// Any valid token; handlers check ownership.
    Authenticated,
    /// Admin tokens only.
    Admin,
}

/// The access rule of a route template.
pub fn access_of(route: &str) -> Access {
    match route {
        // The API's own description is public, like any published API's.
        "/healthz" | "/readyz" | "/metrics" | "/api/v1/openapi.json" | "/api/v1/docs" => Access::Open,
        // The console's page and files; its API calls carry the token.
        r if super::console::is_console_route(r) => Access::Open,
        "/api/v1/skus/{sku}/restock" => Access::Admin,
        r if r.starts_with("/api/v1/admin/") => Access::Admin,
        _ => Access::Authenticated,
    }
}

/// The guard's state: how tokens are checked and each caller's budget.
pub struct Guard {
    auth: Arc<Authenticator>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
}

impl Guard {
    /// A guard checking tokens with `auth` and limiting as `limits` says (off at 0 per second).
    pub fn new(auth: Arc<Authenticator>, limits: &RateLimitConfig) -> Self {
        let limiter = NonZeroU32::new(limits.per_second).map(|rate| {
            let burst = NonZeroU32::new(limits.burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            auth,
            limiter,
            checks: AtomicU64::new(0),
        }
    }

    /// `Err(wait)` when `key` has spent its budget.
    fn charge(&self, key: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }
}

/// The middleware.
pub async fn guard(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let access = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(Access::Authenticated, |p| access_of(p.as_str()));
    if access == Access::Open {
        return next.run(request).await;
    }
    let authorization = request.headers().get(AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let principal = guard.auth.authenticate(authorization);
    // Callers without a valid token are limited by address, so guessing
    // tokens is throttled too.
    let key = match &principal {
        Ok(p) => p.rate_key(),
        Err(_) => request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "ip:unknown".to_owned(), |c| format!("ip:{}", c.0.ip())),
    };
    if let Err(wait) = guard.charge(&key) {
        return rate_limited(wait);
    }
    let principal = match principal {
        Ok(p) => p,
        Err(e) => return unauthorized(&e),
    };
    if access == Access::Admin && !principal.is_admin() {
        return Problem::forbidden("this resource needs an admin token").into_response();
    }
    tracing::Span::current().record("principal", tracing::field::display(principal.rate_key()));
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// 401 with the RFC 6750 challenge; an error code only when a token was sent.
fn unauthorized(e: &AuthError) -> Response {
    let challenge = match e {
        AuthError::Missing => "Bearer realm=\"orderflow\"".to_owned(),
        _ => format!(
            "Bearer realm=\"orderflow\", error=\"invalid_token\", error_description=\"{}\"",
            e.to_string().replace('"', "'")
        ),
    };
    ([(WWW_AUTHENTICATE, challenge)], Problem::unauthorized(e.to_string())).into_response()
}

/// 429 with `Retry-After` in whole seconds, rounded up.
fn rate_limited(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    (
        [(RETRY_AFTER, seconds.to_string())],
        Problem::too_many_requests(format!("rate limit exceeded; retry in {seconds}s")),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_open_authenticated_or_admin() {
        assert_eq!(access_of("/healthz"), Access::Open);
        assert_eq!(access_of("/metrics"), Access::Open);
        assert_eq!(access_of("/api/v1/orders/{id}"), Access::Authenticated);
        assert_eq!(access_of("/api/v1/skus/{sku}"), Access::Authenticated);
        assert_eq!(access_of("/api/v1/skus/{sku}/restock"), Access::Admin);
        assert_eq!(access_of("/api/v1/admin/dead-letters/{id}/replay"), Access::Admin);
    }

    #[test]
    fn a_caller_over_its_burst_waits_and_others_do_not() {
        let config = crate::config::AuthConfig::default();
        let (auth, _) = crate::auth::dev::start(&config).unwrap();
        let guard = Guard::new(
            Arc::new(auth),
            &RateLimitConfig {
                per_second: 1,
                burst: 2,
            },
        );
        assert!(guard.charge("a").is_ok());
        assert!(guard.charge("a").is_ok());
        let wait = guard.charge("a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(guard.charge("b").is_ok());
        let off = Guard::new(
            guard.auth.clone(),
            &RateLimitConfig {
                per_second: 0,
                burst: 0,
            },
        );
        assert!((0..1000).all(|_| off.charge("a").is_ok()));
    }
}
