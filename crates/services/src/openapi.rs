//! The OpenAPI 3.1 descriptions of both listeners, generated from the code: every
//! documented route is registered through `utoipa_axum::routes!` from its
//! handler's `#[utoipa::path]` annotation (so the router and the description
//! cannot disagree on a path or method), and every body's schema comes from the
//! type that (de)serializes it. Served at `/atlas/api/openapi.json` (external) and
//! `/atlas/internal/api/openapi.json` (internal), each with a Swagger UI page that
//! is compiled into the binary and works offline.

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::{Modify, OpenApi as _};

/// Bearer access token (`POST …/auth/token`).
pub const BEARER: &str = "bearer";
/// API key with an HMAC signature (`ATLAS-KEY`, `ATLAS-TIMESTAMP`, `ATLAS-SIGN`).
pub const API_KEY: &str = "apiKey";

/// The external listener's description (before its routes are added).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Atlas exchange API",
        version = "1",
        description = "Order entry, order book, trades, products and participants for brokers, on the \
            external listener. Prices are decimal strings on the product's tick, quantities integers \
            in lots; times are RFC 3339 UTC. Errors are `application/problem+json` with a stable \
            `code`. Authenticate with a bearer token from `POST /atlas/api/auth/token`, or sign each \
            request with an API key: `ATLAS-KEY`, `ATLAS-TIMESTAMP` (Unix seconds, within 30 s) and \
            `ATLAS-SIGN` = base64(HMAC-SHA256(base64-decoded secret, timestamp + METHOD + \
            path-with-query + body)). Another broker's order or trade answers exactly like an unknown \
            one (404). Rate limits answer 429 `RATE_LIMITED` with `Retry-After`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&Common),
    components(schemas(crate::error::Problem)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "auth", description = "Logins and the caller's identity"),
        (name = "products", description = "Listed equities"),
        (name = "participants", description = "The caller's own participant record"),
        (name = "orders", description = "Order entry: place, amend, cancel, list; answered after matching and commit"),
        (name = "orderbook", description = "Aggregated price levels"),
        (name = "trades", description = "The public tape and the caller's own trades"),
    )
)]
pub struct ExternalDoc;

/// The internal listener's description (before its routes are added).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Atlas operator API",
        version = "1",
        description = "Administration on the internal listener, which requires a client certificate \
            issued by the exchange's CA (mutual TLS) and an admin or operator access token from \
            `POST /atlas/internal/api/auth/token`. A broker's token gets 403 here.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&Common),
    components(schemas(crate::error::Problem)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "auth", description = "Logins and users"),
        (name = "products", description = "Listing, changing, halting and delisting equities"),
        (name = "participants", description = "Brokers, their users, API keys, risk limits and kill switch"),
        (name = "orderbook", description = "Level-3 books and the end of the trading day"),
        (name = "orders", description = "Any participant's orders"),
        (name = "trades", description = "Any trade, with both parties; busts"),
        (name = "audit", description = "The hash-chained audit trail (admins)"),
    )
)]
pub struct InternalDoc;

/// The external description's starting point.
pub fn external() -> OpenApi {
    ExternalDoc::openapi()
}

/// The internal description's starting point.
pub fn internal() -> OpenApi {
    InternalDoc::openapi()
}

/// What every operation shares: the security schemes, and the error answers
/// that the gateway and the extractors give on any route (a 401 where a
/// credential is needed, 400 where there is input to refuse, 429 from the rate
/// limits, 503 when storage is down), so that each handler's annotation lists
/// only its own outcomes.
struct Common;

fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", Content::new(Some(Ref::from_schema_name("Problem"))))
        .into()
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses.responses.entry(status.to_owned()).or_insert_with(|| problem(description));
}

impl Modify for Common {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from `…/auth/token` (one hour)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "ATLAS-KEY",
                "An API key, with `ATLAS-TIMESTAMP` and `ATLAS-SIGN` headers (see the description above).",
            ))),
        );
    }
}

/// Adds the shared error answers to every operation of a finished description
/// (run after the routes are in).
pub fn finish(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            // Handler names repeat across services (`list`, `get_one`): prefix the tag.
            if let (Some(id), Some(tag)) = (&op.operation_id, op.tags.as_ref().and_then(|t| t.first())) {
                op.operation_id = Some(format!("{tag}_{id}"));
            }
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_input =
                op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            if has_input {
                add(op, "400", "Malformed input: `VALIDATION_FAILED` (unknown fields, bad values)");
            }
            if op.request_body.is_some() {
                add(op, "413", "The body is over 64 KiB: `PAYLOAD_TOO_LARGE`");
                add(op, "415", "The body is not `application/json`: `UNSUPPORTED_MEDIA_TYPE`");
            }
            if secured {
                add(op, "401", "No valid credential: `UNAUTHENTICATED`");
                add(op, "403", "The credential's role may not do this: `FORBIDDEN`");
            }
            add(op, "429", "A rate limit: `RATE_LIMITED`, with `Retry-After`");
            add(
                op,
                "503",
                "Storage unavailable or the exchange busy: `STORAGE_UNAVAILABLE`, `OVERLOADED`, with `Retry-After`",
            );
        }
    }
}

/// The routes serving a description and its Swagger UI page under `base`
/// (`{base}/openapi.json`, `{base}/docs/`). The page's assets are compiled in,
/// and it is configured not to call out (no online validator), so it works on a
/// machine without internet access.
pub fn serve<S: Clone + Send + Sync + 'static>(base: &str, doc: OpenApi) -> axum::Router<S> {
    let config = utoipa_swagger_ui::Config::new([format!("{base}/openapi.json")])
        .validator_url("none")
        .try_it_out_enabled(false)
        .display_request_duration(true);
    let ui = utoipa_swagger_ui::SwaggerUi::new(format!("{base}/docs"))
        .url(format!("{base}/openapi.json"), doc)
        .config(config);
    axum::Router::from(ui)
}
