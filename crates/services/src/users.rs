//! Users and logins: the token endpoints of both listeners, and creating users.
//! Passwords are argon2id hashes; a wrong user and a wrong password get the same
//! answer after the same work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use atlas_store::DbError;
use atlas_types::ParticipantId;

use crate::app::St;
use crate::auth::{
    ACCESS_TOKEN_TTL_S, Audience, Caller, PASSWORD_BYTES_MAX, Role, check_password_rules, decoy_hash,
    hash_password, verify_password,
};
use crate::error::{ApiError, Body, Id};
use crate::model::now_ns;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    role: Role,
}

fn check_username(u: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&u.len())
        && u.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok { Ok(()) } else { Err(ApiError::validation("username must be 1 to 64 of A-Z a-z 0-9 . _ - @")) }
}

/// Password hashes computed at once, at most: each argon2 run takes ~19 MiB and
/// tens of milliseconds, so a flood of logins must queue, not exhaust memory.
const PASSWORD_HASHES_CONCURRENT_MAX: usize = 4;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PASSWORD_HASHES_CONCURRENT_MAX);
    let _slot = SLOTS.acquire().await.map_err(|_| ApiError::internal())?;
    tokio::task::spawn_blocking(f).await.map_err(|_| ApiError::internal())
}

/// `POST …/auth/token`: brokers on the external listener, admins and operators
/// on the internal one.
pub async fn token(State(ctx): St, Body(b): Body<Login>) -> Result<impl IntoResponse, ApiError> {
    if b.username.len() > 64 || b.password.len() > PASSWORD_BYTES_MAX {
        return Err(ApiError::unauthenticated());
    }
    let user = ctx.app.db.user_by_name(&b.username).await?;
    let hash = user.as_ref().map_or_else(|| decoy_hash().to_owned(), |u| u.password_hash.clone());
    let password = b.password;
    let matches = blocking(move || verify_password(&hash, &password)).await?;
    let Some(user) = user.filter(|_| matches) else {
        return Err(ApiError::unauthenticated());
    };
    let role = Role::parse(&user.role).ok_or_else(ApiError::internal)?;
    let allowed_here = match ctx.audience {
        Audience::External => role == Role::Broker,
        Audience::Internal => role.internal(),
    };
    if !allowed_here || user.status != "ACTIVE" {
        return Err(ApiError::unauthenticated());
    }
    if let Some(p) = user.participant {
        let active = ctx.app.db.participant(p).await?.is_some_and(|p| p.status == "ACTIVE");
        if !active {
            return Err(ApiError::unauthenticated());
        }
    }
    let token = ctx.app.tokens.issue(user.id, role, user.participant, ctx.audience);
    Ok(axum::Json(serde_json::json!({
        "accessToken": token,
        "tokenType": "Bearer",
        "expiresIn": ACCESS_TOKEN_TTL_S,
    })))
}

async fn create_user(
    ctx: &crate::app::Ctx,
    b: NewUser,
    participant: Option<ParticipantId>,
) -> Result<impl IntoResponse + use<>, ApiError> {
    check_username(&b.username)?;
    check_password_rules(&b.password)?;
    let password = b.password;
    let hash = blocking(move || hash_password(&password)).await??;
    let row = match ctx.app.db.insert_user(&b.username, &hash, b.role.as_str(), participant, now_ns()).await {
        Ok(r) => r,
        Err(DbError::Duplicate) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "DUPLICATE_USERNAME", "this username is taken"));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({
            "id": row.id,
            "username": row.username,
            "role": row.role,
            "participantId": row.participant.map(|p| p.0),
        })),
    ))
}

/// `POST /atlas/internal/api/user`: an operator or admin (admins only).
pub async fn create_internal(
    State(ctx): St,
    caller: Caller,
    Body(b): Body<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    caller.admin()?;
    if !b.role.internal() {
        return Err(ApiError::validation(
            "role must be operator or admin here; brokers belong to a participant",
        ));
    }
    create_user(&ctx, b, None).await
}

/// `POST /atlas/internal/api/participant/broker/{id}/user`: a broker user.
pub async fn create_broker_user(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u32>,
    Body(b): Body<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    if b.role != Role::Broker {
        return Err(ApiError::validation("role must be broker"));
    }
    let participant = crate::participants::find(&ctx.app, id).await?;
    create_user(&ctx, b, Some(participant.id)).await
}

/// Random bytes, for keys and secrets.
fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::fill(&mut b);
    b
}

/// `POST /atlas/internal/api/participant/broker/{id}/apikey`: a new key for a
/// broker. The secret and passphrase are shown once, here, and never again.
pub async fn create_api_key(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u32>,
) -> Result<impl IntoResponse, ApiError> {
    use base64::Engine as _;
    use sha2::Digest;
    caller.operator()?;
    let crate::auth::Principal::User(created_by) = caller.principal else {
        return Err(ApiError::forbidden());
    };
    let participant = crate::participants::find(&ctx.app, id).await?;
    let key: String = random::<16>().iter().map(|b| format!("{b:02x}")).collect();
    let secret = base64::engine::general_purpose::STANDARD.encode(random::<64>());
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";
    let passphrase: String =
        random::<20>().iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect();
    let digest: String =
        sha2::Sha256::digest(passphrase.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    ctx.app.db.insert_api_key(&key, participant.id, &secret, &digest, created_by, now_ns()).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(
            serde_json::json!({"key": key, "secret": secret, "passphrase": passphrase, "participantId": id}),
        ),
    ))
}

/// `DELETE /atlas/internal/api/participant/broker/{id}/apikey/{key}`.
pub async fn revoke_api_key(
    State(ctx): St,
    caller: Caller,
    Id((id, key)): Id<(u32, String)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    if ctx.app.db.revoke_api_key(ParticipantId(id), &key, now_ns()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("API_KEY_NOT_FOUND", "no such live key for this participant"))
    }
}

/// `GET /atlas/api/auth/whoami`: the caller as its credential says, with no
/// storage behind it (also the no-op baseline of `atlas bench api`).
pub async fn whoami(caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let (kind, id) = match caller.principal {
        crate::auth::Principal::User(id) => ("user", id),
        crate::auth::Principal::Key(id) => ("apiKey", id),
    };
    Ok(axum::Json(serde_json::json!({
        "principal": kind,
        "id": id,
        "role": caller.role.as_str(),
        "participantId": caller.participant.map(|p| p.0),
    })))
}
