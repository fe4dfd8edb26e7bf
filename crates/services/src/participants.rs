//! The participant service: brokers. A broker reads only its own record; the
//! rest is internal. Disabling a broker cancels its open orders.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;

use atlas_engine::CommandKind;
use atlas_journal::Actor;
use atlas_store::DbError;
use atlas_types::ParticipantId;

use crate::app::St;
use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::{ApiError, Body, Id};
use crate::model::{Broker, now_ns};

/// A participant to admit.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    /// Unique, 1 to 128 characters.
    name: String,
    /// `BROKER` (the default).
    participant_type: Option<String>,
}

/// A participant's new name (the other fields must be as they are).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBody {
    id: Option<u32>,
    name: Option<String>,
    participant_type: Option<String>,
    status: Option<String>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name must be 1 to 128 characters without control characters"));
    }
    Ok(())
}

fn not_found() -> ApiError {
    ApiError::not_found("PARTICIPANT_NOT_FOUND", "no such participant")
}

/// A participant by id, or 404.
pub(crate) async fn find(app: &crate::app::App, id: u32) -> Result<atlas_store::ParticipantRow, ApiError> {
    app.db.participant(ParticipantId(id)).await?.ok_or_else(not_found)
}

fn duplicate(e: DbError) -> ApiError {
    match e {
        DbError::Duplicate => {
            ApiError::new(StatusCode::CONFLICT, "DUPLICATE_NAME", "a participant with this name exists")
        }
        e => e.into(),
    }
}

/// Admit a participant
#[utoipa::path(post, path = "/atlas/internal/api/participant/broker", tag = "participants", request_body = CreateBody,
    security(("bearer" = [])),
    responses((status = 201, description = "Admitted", body = Broker),
              (status = 409, description = "`DUPLICATE_NAME`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Body(b): Body<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    check_name(&b.name)?;
    if b.participant_type.as_deref().is_some_and(|t| t != "BROKER") {
        return Err(ApiError::validation("participantType must be BROKER"));
    }
    let row = ctx.app.db.insert_participant(&b.name, now_ns()).await.map_err(duplicate)?;
    let detail = serde_json::json!({"name": row.name});
    audit::by(&ctx.app, &caller, origin, "PARTICIPANT_CREATED", format!("participant:{}", row.id.0), detail)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(Broker::from(&row))))
}

/// Every participant
#[utoipa::path(get, path = "/atlas/internal/api/participant/broker", tag = "participants",
    security(("bearer" = [])),
    responses((status = 200, description = "Participants", body = Vec<Broker>)))]
pub async fn list(State(ctx): St, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let rows = ctx.app.db.participants().await?;
    Ok(axum::Json(rows.iter().map(Broker::from).collect::<Vec<_>>()))
}

/// A participant
#[utoipa::path(get, path = "/atlas/internal/api/participant/broker/{id}", tag = "participants", params(("id" = u32, Path, description = "Participant id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The participant", body = Broker), (status = 404, description = "`PARTICIPANT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn get_internal(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u32>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let row = ctx.app.db.participant(ParticipantId(id)).await?.ok_or_else(not_found)?;
    Ok(axum::Json(Broker::from(&row)))
}

/// The caller's participant
///
/// A broker reads only itself; any other id answers as if it did not exist.
#[utoipa::path(get, path = "/atlas/api/participant/broker/{id}", tag = "participants", params(("id" = u32, Path, description = "Participant id")),
    security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "The caller's participant", body = Broker), (status = 404, description = "`PARTICIPANT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn get_own(State(ctx): St, caller: Caller, Id(id): Id<u32>) -> Result<impl IntoResponse, ApiError> {
    let me = caller.broker()?;
    if me.0 != id {
        return Err(not_found());
    }
    let row = ctx.app.db.participant(me).await?.ok_or_else(not_found)?;
    Ok(axum::Json(Broker::from(&row)))
}

/// Rename a participant
#[utoipa::path(put, path = "/atlas/internal/api/participant/broker/{id}", tag = "participants", params(("id" = u32, Path, description = "Participant id")),
    request_body = UpdateBody, security(("bearer" = [])),
    responses((status = 200, description = "The participant", body = Broker), (status = 404, description = "`PARTICIPANT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 409, description = "`DUPLICATE_NAME`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Id(id): Id<u32>,
    Body(b): Body<UpdateBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let row = ctx.app.db.participant(ParticipantId(id)).await?.ok_or_else(not_found)?;
    if b.id.is_some_and(|v| v != id)
        || b.participant_type.as_ref().is_some_and(|t| *t != row.participant_type)
    {
        return Err(ApiError::validation("id and participantType cannot change"));
    }
    if b.status.as_ref().is_some_and(|s| *s != row.status) {
        return Err(ApiError::validation("status cannot change here; DELETE disables a participant"));
    }
    if let Some(name) = &b.name {
        check_name(name)?;
    }
    ctx.app.db.update_participant(row.id, b.name.as_deref(), None, now_ns()).await.map_err(duplicate)?;
    let detail = serde_json::json!({"name": b.name});
    audit::by(&ctx.app, &caller, origin, "PARTICIPANT_UPDATED", format!("participant:{id}"), detail).await?;
    let row = ctx.app.db.participant(row.id).await?.ok_or_else(not_found)?;
    Ok(axum::Json(Broker::from(&row)))
}

/// Disable a participant
///
/// Its users can no longer log in or trade (their tokens and its API keys stop
/// working at once), and its open orders are cancelled.
#[utoipa::path(delete, path = "/atlas/internal/api/participant/broker/{id}", tag = "participants", params(("id" = u32, Path, description = "Participant id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Disabled"), (status = 404, description = "`PARTICIPANT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn disable(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Id(id): Id<u32>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let row = ctx.app.db.participant(ParticipantId(id)).await?.ok_or_else(not_found)?;
    ctx.app.db.update_participant(row.id, None, Some("DISABLED"), now_ns()).await?;
    // Its users' tokens stop working now, before its orders are cancelled.
    ctx.app.disable(row.id);
    let actor = Actor { user: caller.actor_user(), participant: None };
    ctx.app
        .seq
        .submit(actor, None, CommandKind::MassCancel { participant: row.id, product: None })?
        .await
        .map_err(|_| ApiError::storage_unavailable())??;
    audit::by(
        &ctx.app,
        &caller,
        origin,
        "PARTICIPANT_DISABLED",
        format!("participant:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
