//! Listing and revoking one's own sessions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use aegis_core::ids::SessionId;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Authed, Meta};
use crate::http::state::AppState;

/// `GET /api/v1/sessions`
pub async fn list(State(state): State<AppState>, Authed(who): Authed) -> ApiResult<Json<Value>> {
    let sessions = state.sessions.list(&who).await?;
    Ok(Json(json!({ "sessions": sessions })))
}

/// `DELETE /api/v1/sessions/{id}`
pub async fn revoke(
    State(state): State<AppState>,
    Authed(who): Authed,
    Meta(meta): Meta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: SessionId = id
        .parse()
        .map_err(|_| ApiError::NotFound("session not found".into()))?;
    state.sessions.revoke(&who, id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/sessions`: revoke all sessions except the current one.
pub async fn revoke_others(
    State(state): State<AppState>,
    Authed(who): Authed,
    Meta(meta): Meta,
) -> ApiResult<Json<Value>> {
    let n = state.sessions.revoke_others(&who, &meta).await?;
    Ok(Json(json!({ "revoked": n })))
}
