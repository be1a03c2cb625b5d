//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Meta;
use crate::http::state::AppState;
use crate::ratelimit::config::FailureMode;

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The database answers, and so does Redis when rate limits fail closed without it.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::Unavailable("database unreachable".into())
    })?;
    let redis = match &state.limiter {
        Some(l) => l.redis_ping().await,
        None => None,
    };
    let fail_closed = state.config.rate_limit.failure_mode == FailureMode::FailClosed;
    match redis {
        Some(Err(e)) if fail_closed => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::Unavailable("redis unreachable".into()))
        }
        Some(r) => Ok(Json(json!({
            "status": "ready",
            "redis": if r.is_ok() { "ok" } else { "unreachable" },
        }))),
        None => Ok(Json(json!({"status": "ready"}))),
    }
}

/// Prometheus metrics, for the addresses in `metrics.allow_from` only (others get 404,
/// as if the endpoint did not exist).
pub async fn metrics(State(state): State<AppState>, Meta(meta): Meta) -> ApiResult<Response> {
    let allowed = meta
        .ip
        .as_deref()
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| state.metrics_allow.iter().any(|n| n.contains(&ip)));
    let handle = match state.metrics.get() {
        Some(h) if allowed => h,
        _ => return Err(ApiError::NotFound("no such endpoint".into())),
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}
