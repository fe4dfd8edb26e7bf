//! Identity: argon2 password hashes, signed access tokens (JWT, HS256, with a
//! key id), and the `Caller` every handler authorizes from. Services read the
//! caller from the token alone, never from the request body.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use atlas_types::ParticipantId;

use crate::error::ApiError;

/// Access tokens live this long.
pub const ACCESS_TOKEN_TTL_S: u64 = 3_600;
/// Passwords are at most this long (argon2 input is bounded, and so is the body).
pub const PASSWORD_BYTES_MAX: usize = 256;
/// Passwords are at least this long.
pub const PASSWORD_BYTES_MIN: usize = 12;

/// A user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything on the internal listener.
    Admin,
    /// Day-to-day operations on the internal listener.
    Operator,
    /// Trading for one participant on the external listener.
    Broker,
}

impl Role {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Broker => "broker",
        }
    }
    /// From storage.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "broker" => Some(Role::Broker),
            _ => None,
        }
    }
    /// Internal users log in on the internal listener only.
    pub fn internal(self) -> bool {
        matches!(self, Role::Admin | Role::Operator)
    }
}

/// Which listener a token was issued for (its audience).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// `/atlas/api/**`.
    External,
    /// `/atlas/internal/api/**`.
    Internal,
}

impl Audience {
    fn as_str(self) -> &'static str {
        match self {
            Audience::External => "atlas-api",
            Audience::Internal => "atlas-internal",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// `u:<user id>` or `k:<API key number>`.
    sub: String,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    aud: String,
    iss: String,
    iat: u64,
    exp: u64,
    /// On internal identity tokens: the listener the request came in on.
    #[serde(skip_serializing_if = "Option::is_none")]
    lst: Option<String>,
}

/// Who a credential belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A user (by id).
    User(i64),
    /// An API key (by number).
    Key(i64),
}

impl Principal {
    fn subject(self) -> String {
        match self {
            Principal::User(id) => format!("u:{id}"),
            Principal::Key(id) => format!("k:{id}"),
        }
    }
    fn parse(sub: &str) -> Option<Principal> {
        let (kind, id) = sub.split_once(':')?;
        let id = id.parse().ok().filter(|id: &i64| *id >= 0)?;
        match kind {
            "u" => Some(Principal::User(id)),
            "k" => Some(Principal::Key(id)),
            _ => None,
        }
    }
}

/// The audience of the internal identity tokens the gateway layer mints for
/// the services.
const SERVICE_AUDIENCE: &str = "atlas-service";
/// Internal identity tokens live this long: one request.
const IDENTITY_TOKEN_TTL_S: u64 = 60;
/// The header that carries the identity token from the gateway to the services.
/// Whatever a client sends in it is dropped.
pub const IDENTITY_HEADER: &str = "x-atlas-identity";

/// Who is calling, as the token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user or API key.
    pub principal: Principal,
    /// Its role.
    pub role: Role,
    /// A broker's participant.
    pub participant: Option<ParticipantId>,
    /// The listener the token is for.
    pub audience: Audience,
}

impl Caller {
    /// The journal's actor id: a user's id, or an API key's number with the top
    /// bit set.
    pub fn actor_user(&self) -> u64 {
        match self.principal {
            Principal::User(id) => u64::try_from(id).unwrap_or(0),
            Principal::Key(id) => u64::try_from(id).unwrap_or(0) | (1 << 63),
        }
    }

    /// The broker's participant, or 403 for anyone else.
    pub fn broker(&self) -> Result<ParticipantId, ApiError> {
        match (self.role, self.participant, self.audience) {
            (Role::Broker, Some(p), Audience::External) => Ok(p),
            _ => Err(ApiError::forbidden()),
        }
    }
    /// Ok for an admin or operator on the internal listener, 403 otherwise.
    pub fn operator(&self) -> Result<(), ApiError> {
        if self.role.internal() && self.audience == Audience::Internal {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
    /// Ok for an admin on the internal listener, 403 otherwise.
    pub fn admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin && self.audience == Audience::Internal {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// The token signing key (loaded from a secret file) and its id.
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("TokenKeys").field("kid", &self.kid).finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TokenKeys {
    /// Loads the key from `path`, creating it (32 random bytes, mode 0600) if missing.
    pub fn load_or_create(path: &Path) -> anyhow::Result<TokenKeys> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut key = [0u8; 32];
            rand::fill(&mut key);
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
            f.write_all(base64::engine::general_purpose::STANDARD.encode(key).as_bytes())?;
            f.sync_all()?;
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .with_context(|| format!("{} is not base64", path.display()))?;
        anyhow::ensure!(key.len() >= 32, "{} holds fewer than 32 bytes", path.display());
        let digest = sha2::Sha256::digest(&key);
        let kid = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(TokenKeys {
            kid,
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
        })
    }

    fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        // HS256 signing over our own claims cannot fail.
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap_or_default()
    }

    fn check(&self, token: &str, audience: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| ApiError::unauthenticated())?;
        // Only our algorithm and our key: `none`, RS/HS confusion and foreign keys fail here.
        if header.alg != Algorithm::HS256 || header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(ApiError::unauthenticated());
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&["atlas"]);
        validation.leeway = 5;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| ApiError::unauthenticated())?
            .claims;
        if (claims.role == Role::Broker) != claims.pid.is_some() {
            return Err(ApiError::unauthenticated());
        }
        Ok(claims)
    }

    /// Signs an access token for a user.
    pub fn issue(
        &self,
        user: i64,
        role: Role,
        participant: Option<ParticipantId>,
        audience: Audience,
    ) -> String {
        let now = unix_now();
        self.sign(&Claims {
            sub: Principal::User(user).subject(),
            role,
            pid: participant.map(|p| p.0),
            aud: audience.as_str().to_owned(),
            iss: "atlas".to_owned(),
            iat: now,
            exp: now + ACCESS_TOKEN_TTL_S,
            lst: None,
        })
    }

    /// Checks an access token for the listener `audience`: signature, key id,
    /// issuer, audience and expiry.
    pub fn verify(&self, token: &str, audience: Audience) -> Result<Caller, ApiError> {
        let c = self.check(token, audience.as_str())?;
        let principal = Principal::parse(&c.sub).ok_or_else(ApiError::unauthenticated)?;
        Ok(Caller { principal, role: c.role, participant: c.pid.map(ParticipantId), audience })
    }

    /// The gateway's identity token for the services: who is calling, through
    /// which listener, valid for one request.
    pub fn identity(&self, caller: &Caller) -> String {
        let now = unix_now();
        self.sign(&Claims {
            sub: caller.principal.subject(),
            role: caller.role,
            pid: caller.participant.map(|p| p.0),
            aud: SERVICE_AUDIENCE.to_owned(),
            iss: "atlas".to_owned(),
            iat: now,
            exp: now + IDENTITY_TOKEN_TTL_S,
            lst: Some(audience_name(caller.audience).to_owned()),
        })
    }

    /// What a service reads from the identity token, and nothing else.
    pub fn verify_identity(&self, token: &str) -> Result<Caller, ApiError> {
        let c = self.check(token, SERVICE_AUDIENCE)?;
        let principal = Principal::parse(&c.sub).ok_or_else(ApiError::unauthenticated)?;
        let audience = match c.lst.as_deref() {
            Some("external") => Audience::External,
            Some("internal") => Audience::Internal,
            _ => return Err(ApiError::unauthenticated()),
        };
        Ok(Caller { principal, role: c.role, participant: c.pid.map(ParticipantId), audience })
    }
}

fn audience_name(a: Audience) -> &'static str {
    match a {
        Audience::External => "external",
        Audience::Internal => "internal",
    }
}

/// Hashes a password with argon2id and a random salt (slow by design: call it
/// off the async threads).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| ApiError::internal())
}

/// Checks a password against a stored hash (slow by design).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A fixed hash to verify against when the user does not exist, so that an
/// unknown user and a wrong password take the same time.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("atlas-decoy-password").unwrap_or_default())
}

/// Checks a new password's length.
pub fn check_password_rules(password: &str) -> Result<(), ApiError> {
    if password.len() < PASSWORD_BYTES_MIN || password.len() > PASSWORD_BYTES_MAX {
        return Err(ApiError::validation(format!(
            "password must be {PASSWORD_BYTES_MIN} to {PASSWORD_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

/// What the caller extractor needs from the router's state.
pub trait HasTokens {
    /// The signing keys.
    fn tokens(&self) -> &TokenKeys;
}

/// Why the gateway refused the request's credential (handlers that need a
/// caller answer with it; public endpoints do not care).
#[derive(Clone, Copy, Debug)]
pub enum AuthFailure {
    /// Missing, malformed, expired or wrongly signed.
    Unauthenticated,
    /// Valid, but for the other listener.
    Forbidden,
    /// The credential could not be checked (storage down).
    Unavailable,
}

impl<S: HasTokens + Send + Sync> FromRequestParts<Arc<S>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthFailure>() {
            Some(AuthFailure::Unauthenticated) => return Err(ApiError::unauthenticated()),
            Some(AuthFailure::Forbidden) => return Err(ApiError::forbidden()),
            Some(AuthFailure::Unavailable) => return Err(ApiError::storage_unavailable()),
            None => {}
        }
        let token = parts
            .headers
            .get(IDENTITY_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthenticated)?;
        state.tokens().verify_identity(token)
    }
}

/// Used by the gateway: checks a bearer access token for `audience`, telling a
/// token for the other listener (403) from a bad one (401).
pub fn bearer(tokens: &TokenKeys, value: &str, audience: Audience) -> Result<Caller, AuthFailure> {
    let token = value.strip_prefix("Bearer ").ok_or(AuthFailure::Unauthenticated)?.trim();
    match tokens.verify(token, audience) {
        Ok(c) => Ok(c),
        Err(_) => {
            let other = match audience {
                Audience::External => Audience::Internal,
                Audience::Internal => Audience::External,
            };
            if tokens.verify(token, other).is_ok() {
                Err(AuthFailure::Forbidden)
            } else {
                Err(AuthFailure::Unauthenticated)
            }
        }
    }
}
