//! The audit trail, the services' side: what they record (logins, users, API
//! keys, products, participants, risk limits, kill switches, halts, busts, the
//! end of day) and the admins' endpoint that reads it. The chain itself lives in
//! `atlas_store` (hash-chained rows, checked by `atlas verify`). Entries never
//! carry a secret: no password, token, API secret or passphrase.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use atlas_store::{AuditEvent, AuditRow};

use crate::app::{App, St};
use crate::auth::{Caller, Principal};
use crate::error::{ApiError, Params};
use crate::model::{now_ns, rfc3339};

/// The client's IP address, as the TLS listener saw it.
#[derive(Clone, Copy, Debug)]
pub struct Origin(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Origin(parts.extensions.get::<crate::tls::Peer>().map(|p| p.0)))
    }
}

/// Who a caller is, in the trail.
pub fn principal(caller: &Caller) -> String {
    match caller.principal {
        Principal::User(id) => format!("user:{id}"),
        Principal::Key(id) => format!("key:{id}"),
    }
}

/// Records one entry.
pub async fn record(
    app: &App,
    principal: String,
    origin: Origin,
    action: &str,
    target: Option<String>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let event = AuditEvent {
        time_ns: now_ns(),
        principal,
        ip: origin.0.map(|ip| ip.to_string()),
        action: action.to_owned(),
        target,
        detail: detail.to_string(),
    };
    app.db.append_audit(&event).await?;
    // The same facts in the log, for log shippers (never a secret: see above).
    tracing::info!(
        action = %event.action,
        principal = %event.principal,
        ip = event.ip.as_deref().unwrap_or("-"),
        target = event.target.as_deref().unwrap_or("-"),
        detail = %event.detail,
        "audit"
    );
    Ok(())
}

/// Records what `caller` did.
pub async fn by(
    app: &App,
    caller: &Caller,
    origin: Origin,
    action: &str,
    target: impl Into<Option<String>>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    record(app, principal(caller), origin, action, target.into(), detail).await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries after this sequence number (the previous page's `nextCursor`).
    after: Option<i64>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
    /// Only this action, e.g. `LOGIN_FAILED`.
    action: Option<String>,
}

/// One entry of the trail.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    seq: i64,
    /// RFC 3339 UTC.
    time: String,
    /// `user:ID`, `key:ID`, `system`, or `login:NAME` for a login attempt.
    principal: String,
    ip: Option<String>,
    /// e.g. `LOGIN_SUCCEEDED`, `LOGIN_FAILED`, `USER_CREATED`, `API_KEY_CREATED`,
    /// `API_KEY_REVOKED`, `PRODUCT_CREATED`, `PRODUCT_UPDATED`, `PRODUCT_HALTED`,
    /// `PRODUCT_RESUMED`, `PRODUCT_DELETED`, `PARTICIPANT_CREATED`,
    /// `PARTICIPANT_UPDATED`, `PARTICIPANT_DISABLED`, `RISK_LIMITS_SET`,
    /// `KILL_SWITCH_ON`, `KILL_SWITCH_OFF`, `TRADE_BUSTED`, `END_OF_DAY`.
    action: String,
    target: Option<String>,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
    /// SHA-256 over the previous entry's hash and this entry (hex).
    hash: String,
    prev_hash: String,
}

/// A page of the trail.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Oldest first.
    entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page; null on the last.
    next_cursor: Option<i64>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn entry(r: AuditRow) -> AuditEntry {
    AuditEntry {
        seq: r.seq,
        time: rfc3339(r.event.time_ns),
        principal: r.event.principal,
        ip: r.event.ip,
        action: r.event.action,
        target: r.event.target,
        detail: serde_json::from_str(&r.event.detail).unwrap_or(serde_json::Value::String(r.event.detail)),
        hash: hex(&r.hash),
        prev_hash: hex(&r.prev_hash),
    }
}

/// Rows per page, at most.
const PAGE_MAX: u32 = 1_000;

/// The audit trail
///
/// Admins only. Oldest first; `nextCursor` pages on. The chain is checked by
/// `atlas verify`.
#[utoipa::path(get, path = "/atlas/internal/api/audit", tag = "audit", params(AuditParams),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of the trail", body = AuditPage)))]
pub async fn list(
    State(ctx): St,
    caller: Caller,
    Params(p): Params<AuditParams>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    caller.admin()?;
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > PAGE_MAX {
        return Err(ApiError::validation(format!("limit must be 1 to {PAGE_MAX}")));
    }
    if p.after.is_some_and(|a| a < 0) {
        return Err(ApiError::validation("after must be 0 or more"));
    }
    if p.action.as_ref().is_some_and(|a| a.len() > 64) {
        return Err(ApiError::validation("action is at most 64 characters"));
    }
    let rows = ctx.app.db.audit(p.after.unwrap_or(0), limit, p.action.as_deref()).await?;
    let next = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.seq)).flatten();
    Ok(axum::Json(AuditPage { entries: rows.into_iter().map(entry).collect(), next_cursor: next }))
}
