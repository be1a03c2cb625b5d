//! Reading the audit log (tenant admins), newest first, keyset-paginated.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use aegis_core::ids::{AuditId, UserId};
use aegis_core::model::AuditQuery;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Admin, ApiQuery};
use crate::http::state::AppState;

/// Query parameters of `GET /api/v1/audit`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// User id of the actor.
    actor: Option<String>,
    action: Option<String>,
    /// Unix milliseconds, inclusive.
    since: Option<i64>,
    /// Unix milliseconds, exclusive.
    until: Option<i64>,
    /// Continue after this event id (from `next_before`).
    before: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/audit`
pub async fn query(
    State(state): State<AppState>,
    Admin(who): Admin,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> ApiResult<Json<Value>> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit: must be 1..=500".into()));
    }
    let actor_id = p
        .actor
        .map(|a| a.parse::<UserId>())
        .transpose()
        .map_err(|_| ApiError::BadRequest("actor: must be a user id".into()))?;
    let before = p
        .before
        .map(|b| b.parse::<AuditId>())
        .transpose()
        .map_err(|_| ApiError::BadRequest("before: must be an event id".into()))?;
    let q = AuditQuery {
        actor_id,
        action: p.action,
        since: p.since,
        until: p.until,
        before,
        limit,
    };
    let mut tx = state.store.read(who.tenant_id).await?;
    let events = tx.query_audit(&q).await?;
    let next = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({ "events": events, "next_before": next })))
}
