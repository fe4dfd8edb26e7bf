//! Users and logins: the token endpoints of both listeners, and creating users.
//! Passwords are argon2id hashes; a wrong user and a wrong password get the same
//! answer after the same work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use atlas_store::DbError;
use atlas_types::ParticipantId;

use crate::app::St;
use crate::audit::{self, Origin};
use crate::auth::{
    ACCESS_TOKEN_TTL_S, Audience, Caller, PASSWORD_BYTES_MAX, Role, check_password_rules, decoy_hash,
    hash_password, verify_password,
};
use crate::error::{ApiError, Body, Id};
use crate::model::now_ns;

/// A login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    #[schema(format = Password)]
    password: String,
}

/// An access token.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenOut {
    /// Send as `Authorization: Bearer <accessToken>`.
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until it expires.
    expires_in: u64,
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1 to 64 of A-Z a-z 0-9 . _ - @
    username: String,
    /// At least 12 characters.
    #[schema(format = Password)]
    password: String,
    #[schema(value_type = String, example = "broker")]
    /// `broker` (under a participant), `operator` or `admin`.
    role: Role,
}

/// A user as created.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserOut {
    id: i64,
    username: String,
    role: String,
    /// The broker's participant; absent for operators and admins.
    participant_id: Option<u32>,
}

/// A new API key: the secret and passphrase are shown once, here, and never again.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyOut {
    /// The key id (`ATLAS-KEY`, `CB-ACCESS-KEY`).
    key: String,
    /// Base64; the HMAC key is its decoded bytes.
    secret: String,
    /// Needed by the Coinbase-compatible surface (`CB-ACCESS-PASSPHRASE`).
    passphrase: String,
    participant_id: u32,
}

/// The caller, as its credential says.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    /// `user` or `apiKey`.
    principal: &'static str,
    /// The user's or key's id.
    id: i64,
    /// `broker`, `operator` or `admin`.
    role: &'static str,
    participant_id: Option<u32>,
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

/// Log in as a broker
///
/// Returns a bearer access token. A wrong user and a wrong password get the same
/// 401 after the same work; operators and admins log in on the internal listener.
#[utoipa::path(post, path = "/atlas/api/auth/token", tag = "auth", request_body = Login,
    responses((status = 200, description = "Logged in", body = TokenOut),
              (status = 401, description = "Wrong user or password: `UNAUTHENTICATED`", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 429, description = "`LOGIN_THROTTLED` after repeated failures (exponential back-off per name and per IP), with `Retry-After`; or `RATE_LIMITED`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn token_external(
    ctx: St,
    origin: Origin,
    body: Body<Login>,
) -> Result<axum::Json<TokenOut>, ApiError> {
    token(ctx, origin, body).await
}

/// Log in as an operator or admin
///
/// Returns a bearer access token for the internal listener.
#[utoipa::path(post, path = "/atlas/internal/api/auth/token", tag = "auth", request_body = Login,
    responses((status = 200, description = "Logged in", body = TokenOut),
              (status = 401, description = "Wrong user or password: `UNAUTHENTICATED`", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 429, description = "`LOGIN_THROTTLED` after repeated failures (exponential back-off per name and per IP), with `Retry-After`; or `RATE_LIMITED`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn token_internal(
    ctx: St,
    origin: Origin,
    body: Body<Login>,
) -> Result<axum::Json<TokenOut>, ApiError> {
    token(ctx, origin, body).await
}

/// Login names in the audit trail are cut to this many bytes.
const AUDIT_NAME_BYTES_MAX: usize = 64;

/// `POST …/auth/token`: brokers on the external listener, admins and operators
/// on the internal one. Every attempt goes into the audit trail (the name tried,
/// never the password).
async fn token(
    State(ctx): St,
    origin: Origin,
    Body(b): Body<Login>,
) -> Result<axum::Json<TokenOut>, ApiError> {
    let listener = match ctx.audience {
        Audience::External => "external",
        Audience::Internal => "internal",
    };
    let mut name = String::new();
    for c in b.username.chars() {
        if name.len() + c.len_utf8() > AUDIT_NAME_BYTES_MAX {
            break;
        }
        name.push(c);
    }
    // Throttled attempts are refused before any password work, and are not
    // audited one by one (the failures that led to the block were).
    // Keyed by the name cut to 64 bytes (longer names never log in), so the
    // throttle's memory stays bounded.
    if let Err(wait) = ctx.app.logins.check(&name, origin.0) {
        let secs = u32::try_from(wait.as_secs()).unwrap_or(u32::MAX).saturating_add(1);
        return Err(ApiError {
            retry_after_s: Some(secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "LOGIN_THROTTLED",
                "too many failed logins; wait before trying again",
            )
        });
    }
    let tried = name.clone();
    match login(&ctx, b).await {
        Ok((user, out)) => {
            ctx.app.logins.succeeded(&tried);
            let detail = serde_json::json!({"username": name, "listener": listener});
            audit::record(&ctx.app, format!("user:{user}"), origin, "LOGIN_SUCCEEDED", None, detail).await?;
            Ok(axum::Json(out))
        }
        Err(e) if e.code == "UNAUTHENTICATED" => {
            ctx.app.logins.failed(&tried, origin.0);
            let detail = serde_json::json!({"listener": listener});
            audit::record(&ctx.app, format!("login:{name}"), origin, "LOGIN_FAILED", None, detail).await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Checks a login; returns the user's id and its token.
async fn login(ctx: &crate::app::Ctx, b: Login) -> Result<(i64, TokenOut), ApiError> {
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
    Ok((user.id, TokenOut { access_token: token, token_type: "Bearer", expires_in: ACCESS_TOKEN_TTL_S }))
}

async fn create_user(
    ctx: &crate::app::Ctx,
    caller: &Caller,
    origin: Origin,
    b: NewUser,
    participant: Option<ParticipantId>,
) -> Result<(StatusCode, axum::Json<UserOut>), ApiError> {
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
    let detail = serde_json::json!({"username": row.username, "role": row.role, "participantId": row.participant.map(|p| p.0)});
    audit::by(&ctx.app, caller, origin, "USER_CREATED", format!("user:{}", row.id), detail).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(UserOut {
            id: row.id,
            username: row.username,
            role: row.role,
            participant_id: row.participant.map(|p| p.0),
        }),
    ))
}

/// Create an operator or admin user
///
/// Admins only.
#[utoipa::path(post, path = "/atlas/internal/api/user", tag = "auth", request_body = NewUser,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = UserOut),
              (status = 409, description = "`DUPLICATE_USERNAME`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn create_internal(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Body(b): Body<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    caller.admin()?;
    if !b.role.internal() {
        return Err(ApiError::validation(
            "role must be operator or admin here; brokers belong to a participant",
        ));
    }
    create_user(&ctx, &caller, origin, b, None).await
}

/// Create a broker user for a participant
#[utoipa::path(post, path = "/atlas/internal/api/participant/broker/{id}/user", tag = "participants",
    params(("id" = u32, Path, description = "Participant id")), request_body = NewUser,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = UserOut),
              (status = 404, description = "`PARTICIPANT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 409, description = "`DUPLICATE_USERNAME`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn create_broker_user(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Id(id): Id<u32>,
    Body(b): Body<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    if b.role != Role::Broker {
        return Err(ApiError::validation("role must be broker"));
    }
    let participant = crate::participants::find(&ctx.app, id).await?;
    create_user(&ctx, &caller, origin, b, Some(participant.id)).await
}

/// Random bytes, for keys and secrets.
fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::fill(&mut b);
    b
}

/// Create an API key for a participant
///
/// The secret and passphrase are shown once, here, and never again.
#[utoipa::path(post, path = "/atlas/internal/api/participant/broker/{id}/apikey", tag = "participants",
    params(("id" = u32, Path, description = "Participant id")),
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = ApiKeyOut),
              (status = 404, description = "`PARTICIPANT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn create_api_key(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
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
    let detail = serde_json::json!({"participantId": id});
    audit::by(&ctx.app, &caller, origin, "API_KEY_CREATED", format!("key:{key}"), detail).await?;
    Ok((StatusCode::CREATED, axum::Json(ApiKeyOut { key, secret, passphrase, participant_id: id })))
}

/// Revoke an API key
#[utoipa::path(delete, path = "/atlas/internal/api/participant/broker/{id}/apikey/{key}", tag = "participants",
    params(("id" = u32, Path, description = "Participant id"), ("key" = String, Path, description = "The key id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked"),
              (status = 404, description = "`API_KEY_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn revoke_api_key(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Id((id, key)): Id<(u32, String)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    if ctx.app.db.revoke_api_key(ParticipantId(id), &key, now_ns()).await? {
        let detail = serde_json::json!({"participantId": id});
        audit::by(&ctx.app, &caller, origin, "API_KEY_REVOKED", format!("key:{key}"), detail).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("API_KEY_NOT_FOUND", "no such live key for this participant"))
    }
}

/// The caller
///
/// The caller as its credential says, with no storage behind it (also the no-op
/// baseline of `atlas bench api`).
#[utoipa::path(get, path = "/atlas/api/auth/whoami", tag = "auth",
    security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "The caller", body = WhoAmI)))]
pub async fn whoami_external(caller: Caller) -> Result<axum::Json<WhoAmI>, ApiError> {
    whoami(caller).await
}

/// The caller
#[utoipa::path(get, path = "/atlas/internal/api/auth/whoami", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = WhoAmI)))]
pub async fn whoami_internal(caller: Caller) -> Result<axum::Json<WhoAmI>, ApiError> {
    whoami(caller).await
}

async fn whoami(caller: Caller) -> Result<axum::Json<WhoAmI>, ApiError> {
    let (kind, id) = match caller.principal {
        crate::auth::Principal::User(id) => ("user", id),
        crate::auth::Principal::Key(id) => ("apiKey", id),
    };
    Ok(axum::Json(WhoAmI {
        principal: kind,
        id,
        role: caller.role.as_str(),
        participant_id: caller.participant.map(|p| p.0),
    }))
}

/// The token signing keys' public halves.
#[derive(Serialize, ToSchema)]
pub struct JwkSet {
    /// Every key a valid token may name (the newest signs).
    keys: Vec<crate::auth::Jwk>,
}

/// The token signing keys (JWKS)
///
/// The public keys that verify Atlas's access and identity tokens (ES256), for
/// services that check tokens themselves. Served on the internal listener only,
/// behind its client certificate; no token needed.
#[utoipa::path(get, path = "/atlas/internal/api/auth/jwks", tag = "auth",
    responses((status = 200, description = "RFC 7517 key set", body = JwkSet)))]
pub async fn jwks(State(ctx): St) -> axum::Json<JwkSet> {
    axum::Json(JwkSet { keys: ctx.app.tokens.jwks() })
}
