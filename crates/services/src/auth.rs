//! Identity: argon2 password hashes, signed access tokens (JWT, ES256, with
//! rotating key ids and a JWKS), and the `Caller` every handler authorizes from. Services read the
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// A token's verified content, kept in the verification cache.
#[derive(Clone, Copy, Debug)]
struct Verified {
    principal: Principal,
    role: Role,
    pid: Option<u32>,
    aud: Aud,
    lst: Option<Audience>,
    exp: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Aud {
    Listener(Audience),
    Service,
}

impl Aud {
    fn parse(s: &str) -> Option<Aud> {
        match s {
            "atlas-api" => Some(Aud::Listener(Audience::External)),
            "atlas-internal" => Some(Aud::Listener(Audience::Internal)),
            SERVICE_AUDIENCE => Some(Aud::Service),
            _ => None,
        }
    }
}

/// One ES256 signing key: its id (the RFC 7638 thumbprint of its public key),
/// the private half for signing and the public half for checking.
struct KeyPairEs {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

/// A public key as JWKS publishes it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `EC`.
    kty: &'static str,
    /// `P-256`.
    crv: &'static str,
    /// The curve point's x coordinate (base64url).
    x: String,
    /// The curve point's y coordinate (base64url).
    y: String,
    /// The key id tokens name in their header.
    kid: String,
    /// `ES256`.
    alg: &'static str,
    /// `sig`.
    #[serde(rename = "use")]
    usage: &'static str,
}

/// The keys of a key directory: the newest (by file name) signs, all verify.
struct KeySet {
    signing: Arc<KeyPairEs>,
    all: Vec<Arc<KeyPairEs>>,
    /// What the directory looked like when read (names, sizes, mtimes).
    stamp: Vec<(std::ffi::OsString, u64, std::time::SystemTime)>,
}

/// Verification results and identity tokens are cached up to this many entries
/// each (then the cache starts over): an ECDSA check costs far more than a
/// request's other work, and a client sends the same token many times.
const CACHE_ENTRIES_MAX: usize = 20_000;
/// An identity token is reused while it has at least this long to live.
const IDENTITY_REUSE_MARGIN_S: u64 = 30;
/// The key directory is looked at for added or removed keys at most this often.
const KEY_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The token signing keys, from a directory of PEM files (PKCS#8, ECDSA P-256),
/// as a secret mount provides them. Rotation: put a new key file whose name
/// sorts last (`atlas pki jwt-key` names them by time); it signs from the next
/// second on, while tokens signed with the older keys still verify until their
/// files are removed (after the longest token lifetime, an hour).
pub struct TokenKeys {
    dir: std::path::PathBuf,
    set: std::sync::RwLock<Arc<KeySet>>,
    next_check: std::sync::Mutex<std::time::Instant>,
    verified: std::sync::Mutex<std::collections::HashMap<String, Verified>>,
    identities: std::sync::Mutex<std::collections::HashMap<Caller, (Arc<str>, u64)>>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("TokenKeys").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The file name a new key gets: the time, so that the newest sorts last.
pub fn new_key_file_name() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("jwt-{:012}-{:09}.pem", now.as_secs(), now.subsec_nanos())
}

/// Writes a new ES256 key (mode 0600) into `dir`; returns its path.
pub fn generate_key_file(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let path = dir.join(new_key_file_name());
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
    f.write_all(key.serialize_pem().as_bytes())?;
    f.sync_all()?;
    Ok(path)
}

fn load_key(path: &Path) -> anyhow::Result<KeyPairEs> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let pair = rcgen::KeyPair::from_pem(&pem)
        .map_err(|_| anyhow::anyhow!("{} is not a PKCS#8 private key", path.display()))?;
    anyhow::ensure!(
        pair.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256,
        "{} is not an ECDSA P-256 key (tokens are ES256)",
        path.display()
    );
    let point = pair.public_key_raw();
    anyhow::ensure!(point.len() == 65 && point[0] == 4, "{}: unexpected public key form", path.display());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (x, y) = (b64.encode(&point[1..33]), b64.encode(&point[33..]));
    // RFC 7638: the SHA-256 of the required members, in lexicographic order.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = b64.encode(sha2::Sha256::digest(canonical.as_bytes()));
    // PKCS#8, which `from_pem` has checked.
    let encoding = EncodingKey::from_ec_der(&pair.serialize_der());
    let decoding = DecodingKey::from_ec_components(&x, &y)
        .map_err(|_| anyhow::anyhow!("{}: unusable public key", path.display()))?;
    let jwk = Jwk { kty: "EC", crv: "P-256", x, y, kid: kid.clone(), alg: "ES256", usage: "sig" };
    Ok(KeyPairEs { kid, encoding, decoding, jwk })
}

/// The directory's key files (`*.pem`), sorted by name, with their sizes and
/// modification times.
fn key_files(dir: &Path) -> anyhow::Result<Vec<(std::ffi::OsString, u64, std::time::SystemTime)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_string_lossy().ends_with(".pem") {
            continue;
        }
        // Follows symbolic links: Kubernetes mounts secrets as links.
        let meta = std::fs::metadata(entry.path())?;
        if meta.is_file() {
            files.push((name, meta.len(), meta.modified()?));
        }
    }
    files.sort();
    Ok(files)
}

fn load_set(dir: &Path) -> anyhow::Result<KeySet> {
    let stamp = key_files(dir)?;
    let all = stamp
        .iter()
        .map(|(name, _, _)| load_key(&dir.join(name)).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let signing =
        all.last().cloned().with_context(|| format!("no signing key (*.pem) in {}", dir.display()))?;
    Ok(KeySet { signing, all, stamp })
}

impl TokenKeys {
    /// Loads the keys of `dir`, creating it with a first key if it has none.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<TokenKeys> {
        if !dir.exists() || key_files(dir)?.is_empty() {
            generate_key_file(dir)?;
        }
        let set = load_set(dir)?;
        Ok(TokenKeys {
            dir: dir.to_owned(),
            set: std::sync::RwLock::new(Arc::new(set)),
            next_check: std::sync::Mutex::new(std::time::Instant::now() + KEY_RECHECK),
            verified: Default::default(),
            identities: Default::default(),
        })
    }

    /// The current keys, re-read if the directory changed (checked at most once
    /// a second; a directory that does not load keeps the keys it had).
    fn keys(&self) -> Arc<KeySet> {
        let current = match self.set.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let due = match self.next_check.try_lock() {
            Ok(mut next) if std::time::Instant::now() >= *next => {
                *next = std::time::Instant::now() + KEY_RECHECK;
                true
            }
            _ => false,
        };
        if !due || key_files(&self.dir).is_ok_and(|s| s == current.stamp) {
            return current;
        }
        match load_set(&self.dir) {
            Ok(set) => {
                tracing::info!(dir = %self.dir.display(), keys = set.all.len(), signing = %set.signing.kid, "token signing keys reloaded");
                let set = Arc::new(set);
                match self.set.write() {
                    Ok(mut g) => *g = set.clone(),
                    Err(p) => *p.into_inner() = set.clone(),
                }
                // Tokens of a removed key must stop working now.
                lock(&self.verified).clear();
                lock(&self.identities).clear();
                set
            }
            Err(e) => {
                tracing::error!(error = %e, "token signing keys not reloaded; keeping the previous ones");
                current
            }
        }
    }

    /// The public keys, for `GET /atlas/internal/api/auth/jwks`.
    pub fn jwks(&self) -> Vec<Jwk> {
        self.keys().all.iter().map(|k| k.jwk.clone()).collect()
    }

    fn sign(&self, claims: &Claims) -> String {
        let keys = self.keys();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(keys.signing.kid.clone());
        // Signing our own claims with a key that loaded cannot fail.
        jsonwebtoken::encode(&header, claims, &keys.signing.encoding).unwrap_or_default()
    }

    /// Checks signature, algorithm, key id and issuer, then caches the result.
    /// Audience, expiry and the role's shape are checked by the caller on every
    /// use, cached or not.
    fn check(&self, token: &str) -> Result<Verified, ApiError> {
        let keys = self.keys();
        if let Some(v) = lock(&self.verified).get(token) {
            return Ok(*v);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| ApiError::unauthenticated())?;
        // Only our algorithm and our keys: `none`, RS/HS confusion and foreign keys fail here.
        let key = match (header.alg, header.kid.as_deref()) {
            (Algorithm::ES256, Some(kid)) => keys.all.iter().find(|k| k.kid == kid),
            _ => None,
        }
        .ok_or_else(ApiError::unauthenticated)?;
        let mut validation = Validation::new(Algorithm::ES256);
        // Audience and expiry are checked below, on every use.
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp", "aud", "iss"].iter().map(|s| (*s).to_owned()).collect();
        validation.set_issuer(&["atlas"]);
        let c = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|_| ApiError::unauthenticated())?
            .claims;
        let v = Verified {
            principal: Principal::parse(&c.sub).ok_or_else(ApiError::unauthenticated)?,
            role: c.role,
            pid: c.pid,
            aud: Aud::parse(&c.aud).ok_or_else(ApiError::unauthenticated)?,
            lst: match c.lst.as_deref() {
                None => None,
                Some("external") => Some(Audience::External),
                Some("internal") => Some(Audience::Internal),
                Some(_) => return Err(ApiError::unauthenticated()),
            },
            exp: c.exp,
        };
        if (v.role == Role::Broker) != v.pid.is_some() {
            return Err(ApiError::unauthenticated());
        }
        let mut cache = lock(&self.verified);
        if cache.len() >= CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(token.to_owned(), v);
        Ok(v)
    }

    fn check_for(&self, token: &str, aud: Aud) -> Result<Verified, ApiError> {
        const LEEWAY_S: u64 = 5;
        let v = self.check(token)?;
        if v.aud != aud || v.exp + LEEWAY_S < unix_now() {
            return Err(ApiError::unauthenticated());
        }
        Ok(v)
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
        let v = self.check_for(token, Aud::Listener(audience))?;
        Ok(Caller { principal: v.principal, role: v.role, participant: v.pid.map(ParticipantId), audience })
    }

    /// The gateway's identity token for the services: who is calling, through
    /// which listener, valid for a minute (reused while it has half of that left).
    pub fn identity(&self, caller: &Caller) -> Arc<str> {
        let now = unix_now();
        if let Some((token, exp)) = lock(&self.identities).get(caller)
            && *exp >= now + IDENTITY_REUSE_MARGIN_S
        {
            return token.clone();
        }
        let exp = now + IDENTITY_TOKEN_TTL_S;
        let token: Arc<str> = self
            .sign(&Claims {
                sub: caller.principal.subject(),
                role: caller.role,
                pid: caller.participant.map(|p| p.0),
                aud: SERVICE_AUDIENCE.to_owned(),
                iss: "atlas".to_owned(),
                iat: now,
                exp,
                lst: Some(audience_name(caller.audience).to_owned()),
            })
            .into();
        let mut cache = lock(&self.identities);
        if cache.len() >= CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(*caller, (token.clone(), exp));
        token
    }

    /// What a service reads from the identity token, and nothing else.
    pub fn verify_identity(&self, token: &str) -> Result<Caller, ApiError> {
        let v = self.check_for(token, Aud::Service)?;
        let audience = v.lst.ok_or_else(ApiError::unauthenticated)?;
        Ok(Caller { principal: v.principal, role: v.role, participant: v.pid.map(ParticipantId), audience })
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
