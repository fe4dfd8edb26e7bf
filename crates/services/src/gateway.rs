//! The gateway layer in front of every route: it turns the caller's credential
//! (a bearer access token, or an API key's HMAC signature) into a short-lived
//! identity token for the services, which authorize from that token alone. Any
//! identity header a client sends is dropped first.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::app::{BODY_BYTES_MAX, Ctx};
use crate::auth::{Audience, AuthFailure, Caller, IDENTITY_HEADER, Principal, Role, bearer};
use crate::error::ApiError;

/// A signed request's timestamp may be this far from the server's clock.
pub const SIGNATURE_WINDOW_S: i64 = 30;

/// The header names of one signing scheme.
struct Scheme {
    key: &'static str,
    timestamp: &'static str,
    sign: &'static str,
    passphrase: Option<&'static str>,
}

/// Atlas's own API-key headers.
const ATLAS: Scheme =
    Scheme { key: "atlas-key", timestamp: "atlas-timestamp", sign: "atlas-sign", passphrase: None };
/// Coinbase Exchange's, for the compatible surface (the passphrase is required).
const COINBASE: Scheme = Scheme {
    key: "cb-access-key",
    timestamp: "cb-access-timestamp",
    sign: "cb-access-sign",
    passphrase: Some("cb-access-passphrase"),
};

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

fn unix_now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Seconds from a timestamp header: an integer, or Coinbase's decimal seconds.
fn timestamp_s(text: &str) -> Option<i64> {
    let int = text
        .split_once('.')
        .map_or(text, |(i, f)| if f.bytes().all(|b| b.is_ascii_digit()) { i } else { "" });
    if int.is_empty() || int.len() > 12 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    int.parse().ok()
}

/// Checks an API-key signature over timestamp + METHOD + path-with-query + body.
async fn api_key(ctx: &Ctx, scheme: &Scheme, parts: &Parts, body: &[u8]) -> Result<Caller, AuthFailure> {
    let unauthenticated = AuthFailure::Unauthenticated;
    let key = header(parts, scheme.key).ok_or(unauthenticated)?;
    let ts_text = header(parts, scheme.timestamp).ok_or(unauthenticated)?;
    let sign = header(parts, scheme.sign).ok_or(unauthenticated)?;
    let passphrase = match scheme.passphrase {
        Some(name) => Some(header(parts, name).ok_or(unauthenticated)?),
        None => None,
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    // Coinbase clients sign the path as Coinbase's host sees it: without the
    // `/coinbase` prefix under which Atlas serves that surface.
    let path = match scheme.passphrase {
        Some(_) => path.strip_prefix("/coinbase").unwrap_or(path),
        None => path,
    };
    let signed = Signed { key, timestamp: ts_text, signature: sign, passphrase };
    verify_signed(&ctx.app, &signed, parts.method.as_str(), path, body).await
}

/// An API-key signature's parts, from headers or from a feed message.
pub struct Signed<'a> {
    /// The API key.
    pub key: &'a str,
    /// Unix seconds as the client sent them (an integer or decimal seconds).
    pub timestamp: &'a str,
    /// Base64 HMAC-SHA256 under the base64-decoded secret.
    pub signature: &'a str,
    /// Required by the Coinbase schemes (checked when given).
    pub passphrase: Option<&'a str>,
}

/// Checks a signature over timestamp + `method` + `path` + `body` and returns
/// the broker it authenticates (the key must be live, its participant active,
/// the timestamp within [`SIGNATURE_WINDOW_S`] of the server's clock).
pub async fn verify_signed(
    app: &crate::app::App,
    s: &Signed<'_>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Caller, AuthFailure> {
    let unauthenticated = AuthFailure::Unauthenticated;
    let ts = timestamp_s(s.timestamp).ok_or(unauthenticated)?;
    if (unix_now_s() - ts).abs() > SIGNATURE_WINDOW_S || s.key.len() > 64 {
        return Err(unauthenticated);
    }
    let row = match app.db.api_key(s.key).await {
        Ok(Some(row)) if !row.revoked => row,
        Ok(_) => return Err(unauthenticated),
        Err(_) => return Err(AuthFailure::Unavailable),
    };
    if let Some(given) = s.passphrase {
        let digest = Sha256::digest(given.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        if hex != row.passphrase_sha256 {
            return Err(unauthenticated);
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let secret = b64.decode(&row.secret).map_err(|_| unauthenticated)?;
    let signature = b64.decode(s.signature).map_err(|_| unauthenticated)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).map_err(|_| unauthenticated)?;
    mac.update(s.timestamp.as_bytes());
    mac.update(method.as_bytes());
    mac.update(path.as_bytes());
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&signature).map_err(|_| unauthenticated)?;
    let participant = match app.db.participant(row.participant).await {
        Ok(Some(p)) if p.status == "ACTIVE" => p.id,
        Ok(_) => return Err(unauthenticated),
        Err(_) => return Err(AuthFailure::Unavailable),
    };
    Ok(Caller {
        principal: Principal::Key(row.id),
        role: Role::Broker,
        participant: Some(participant),
        audience: Audience::External,
    })
}

/// Path and query together, at most (bytes).
pub const URI_BYTES_MAX: usize = 4_096;
/// Headers per request, at most (HTTP/1 stops more in the parser; this covers
/// HTTP/2 too).
pub const HEADERS_MAX: usize = 64;

/// How long a client may take to send a request body.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn too_large() -> Response {
    ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "the body is too large")
        .into_response()
}

/// 429 with `Retry-After` and the IETF draft's `RateLimit-*` fields (as
/// GitHub's and Cloudflare's APIs send them).
fn rate_limited(limited: &crate::limits::Limited) -> Response {
    let secs = u32::try_from(limited.retry_after.as_secs()).unwrap_or(u32::MAX).saturating_add(1);
    let mut r = ApiError {
        retry_after_s: Some(secs),
        ..ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "too many requests; slow down",
        )
    }
    .into_response();
    let h = r.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(limited.per_second));
    h.insert("ratelimit-remaining", HeaderValue::from(0u32));
    h.insert("ratelimit-reset", HeaderValue::from(secs));
    h.insert(
        "ratelimit-policy",
        HeaderValue::from_str(&format!("{};w=1", limited.per_second)).unwrap_or(HeaderValue::from_static("")),
    );
    r
}

/// The middleware.
pub async fn authenticate(State(ctx): State<Arc<Ctx>>, req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > URI_BYTES_MAX {
        return ApiError::new(
            axum::http::StatusCode::URI_TOO_LONG,
            "URI_TOO_LONG",
            format!("the path and query are over {URI_BYTES_MAX} bytes"),
        )
        .into_response();
    }
    if req.headers().len() > HEADERS_MAX {
        return ApiError::new(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "TOO_MANY_HEADERS",
            format!("a request may carry at most {HEADERS_MAX} headers"),
        )
        .into_response();
    }
    let waf = ctx.app.waf(ctx.audience);
    let ip = req.extensions().get::<crate::tls::Peer>().map(|p| p.0);
    if let Some(hit) = waf.check_peer(ip) {
        crate::waf::record(ctx.audience, hit, true, ip, req.method(), req.uri().path());
        return ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "IP_NOT_ALLOWED",
            "requests from this address are not admitted on this listener",
        )
        .into_response();
    }
    // Rate limits: per client IP first, before the body is read or a
    // signature checked (a client over its limit costs neither), then per
    // credential once known. Health and metrics are for the infrastructure
    // and exempt.
    let limited_kind = (!matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics"))
        .then(|| crate::limits::Kind::of(req.method(), req.uri().path()));
    if let (Some(kind), Some(ip)) = (limited_kind, ip)
        && let Err(limited) = ctx.app.rate_limits.check_ip(kind, ip)
    {
        return rate_limited(&limited);
    }
    let (mut parts, body) = req.into_parts();
    parts.headers.remove(IDENTITY_HEADER);
    if let Some(hit) = waf.check_head(&parts)
        && let Some(blocked) = crate::waf::act(ctx.audience, waf, hit, ip, &parts)
    {
        return blocked;
    }
    // The body, when there is one, is read here (bounded in size and time): the
    // firewall inspects it and an API key's signature covers it.
    let bytes = if http_body::Body::is_end_stream(&body) {
        axum::body::Bytes::new()
    } else {
        match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, BODY_BYTES_MAX)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return too_large(),
            Err(_) => {
                return ApiError::new(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    "REQUEST_TIMEOUT",
                    "the request body did not arrive in time",
                )
                .into_response();
            }
        }
    };
    match waf.check_body(&bytes) {
        Ok(None) => {}
        Ok(Some(hit)) => {
            if let Some(blocked) = crate::waf::act(ctx.audience, waf, hit, ip, &parts) {
                return blocked;
            }
        }
        Err(crate::waf::TooDeep) => {
            return ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "JSON_TOO_DEEP",
                format!("JSON bodies may nest at most {} levels", crate::waf::JSON_DEPTH_MAX),
            )
            .into_response();
        }
    }
    let scheme = [&ATLAS, &COINBASE].into_iter().find(|s| parts.headers.contains_key(s.key));
    let outcome = if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        Some(match value.to_str() {
            Ok(v) => bearer(&ctx.app.tokens, v, ctx.audience).and_then(|c| {
                // A disabled participant's tokens are dead at once.
                match c.participant {
                    Some(p) if ctx.app.is_disabled(p) => Err(AuthFailure::Unauthenticated),
                    _ => Ok(c),
                }
            }),
            Err(_) => Err(AuthFailure::Unauthenticated),
        })
    } else if let Some(scheme) = scheme {
        if ctx.audience != Audience::External {
            // Programs trade on the external listener; operators log in.
            Some(Err(AuthFailure::Unauthenticated))
        } else {
            Some(api_key(&ctx, scheme, &parts, &bytes).await)
        }
    } else {
        None
    };
    if let (Some(kind), Some(Ok(caller))) = (limited_kind, &outcome)
        && let Err(limited) = ctx.app.rate_limits.check_credential(kind, caller.principal)
    {
        return rate_limited(&limited);
    }
    let mut req = Request::from_parts(parts, Body::from(bytes));
    match outcome {
        Some(Ok(caller)) => match HeaderValue::from_str(&ctx.app.tokens.identity(&caller)) {
            Ok(v) => {
                req.headers_mut().insert(IDENTITY_HEADER, v);
            }
            Err(_) => return ApiError::internal().into_response(),
        },
        Some(Err(failure)) => {
            req.extensions_mut().insert(failure);
        }
        None => {}
    }
    next.run(req).await
}
