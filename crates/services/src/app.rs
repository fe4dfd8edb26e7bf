//! The state the services share in one process, and the routers of the two
//! listeners. Each service's handlers live in their own module and reach the
//! others only through `App` (the sequencer handle and the database), so each can
//! later run alone behind a remote client of the same shape.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use atlas_journal::SequencerHandle;
use atlas_store::{Db, ProductRow};
use atlas_types::ProductId;

use crate::auth::{Audience, HasTokens, TokenKeys};
use crate::error::ApiError;
use crate::{orders, participants, products, users};

/// Request bodies are at most this large.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// What every service shares.
pub struct App {
    /// The services' database pool.
    pub db: Db,
    /// The shard's sequencer.
    pub seq: SequencerHandle,
    /// Access token keys.
    pub tokens: TokenKeys,
    /// Set once the books are recovered and the products reconciled.
    pub ready: AtomicBool,
    /// Every product row (deleted ones too), read on each order: products change
    /// rarely and only through this process, which reloads it after each change.
    pub products: std::sync::RwLock<Arc<Vec<ProductRow>>>,
    /// Every participant's risk limits (the table's copy; the engine thread
    /// holds the stateful ones).
    pub risk: std::sync::RwLock<std::collections::HashMap<atlas_types::ParticipantId, atlas_store::RiskRow>>,
    /// Request rate limits.
    pub rate_limits: crate::limits::RateLimits,
    /// Failed-login back-off.
    pub logins: crate::limits::LoginThrottle,
    /// Disabled participants: their users' tokens stop working at once, not when
    /// they expire.
    pub disabled: std::sync::RwLock<std::collections::HashSet<atlas_types::ParticipantId>>,
    /// The external listener's firewall.
    pub waf_external: crate::waf::Waf,
    /// The internal listener's firewall.
    pub waf_internal: crate::waf::Waf,
    /// The market data hub (started once the App exists: it holds a weak
    /// reference to it).
    pub market: std::sync::OnceLock<crate::marketdata::MarketData>,
}

impl App {
    /// The firewall of a listener.
    pub fn waf(&self, listener: Audience) -> &crate::waf::Waf {
        match listener {
            Audience::External => &self.waf_external,
            Audience::Internal => &self.waf_internal,
        }
    }

    /// True if the participant has been disabled.
    pub fn is_disabled(&self, p: atlas_types::ParticipantId) -> bool {
        match self.disabled.read() {
            Ok(g) => g.contains(&p),
            Err(poisoned) => poisoned.into_inner().contains(&p),
        }
    }

    /// Marks a participant disabled.
    pub fn disable(&self, p: atlas_types::ParticipantId) {
        match self.disabled.write() {
            Ok(mut g) => {
                g.insert(p);
            }
            Err(poisoned) => {
                poisoned.into_inner().insert(p);
            }
        }
    }

    fn product_rows(&self) -> Arc<Vec<ProductRow>> {
        // A poisoned lock still holds a consistent Arc.
        match self.products.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// A listed (not deleted) product.
    pub fn product(&self, id: ProductId) -> Option<ProductRow> {
        self.product_rows().iter().find(|p| p.id == id && p.status != "DELETED").cloned()
    }

    /// A product, deleted or not (to show old orders and trades).
    pub fn product_any(&self, id: ProductId) -> Option<ProductRow> {
        self.product_rows().iter().find(|p| p.id == id).cloned()
    }

    /// A listed product by symbol.
    pub fn product_by_symbol(&self, symbol: &str) -> Option<ProductRow> {
        self.product_rows().iter().find(|p| p.symbol == symbol && p.status != "DELETED").cloned()
    }

    /// Every listed product, by id.
    pub fn listed_products(&self) -> Vec<ProductRow> {
        self.product_rows().iter().filter(|p| p.status != "DELETED").cloned().collect()
    }

    /// Reloads the product cache from the table (after any change to it).
    pub async fn reload_products(&self) -> Result<(), ApiError> {
        let rows = Arc::new(self.db.all_products().await?);
        match self.products.write() {
            Ok(mut g) => *g = rows,
            Err(p) => *p.into_inner() = rows,
        }
        Ok(())
    }
}

/// A router's state: the shared `App` and which listener it serves.
pub struct Ctx {
    /// Shared state.
    pub app: Arc<App>,
    /// The listener.
    pub audience: Audience,
}

impl HasTokens for Ctx {
    fn tokens(&self) -> &TokenKeys {
        &self.app.tokens
    }
}

/// The router state type.
pub type St = State<Arc<Ctx>>;

/// A health answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `UP` or `READY`.
    status: &'static str,
}

/// Alive
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Health)))]
async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(Health { status: "UP" }))
}

/// Ready
///
/// Storage reachable, books recovered, products reconciled.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready to trade", body = Health),
              (status = 503, description = "`NOT_READY`, with `Retry-After`", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn readyz(State(ctx): St) -> Result<impl IntoResponse, ApiError> {
    let app = &ctx.app;
    if app.ready.load(Ordering::Acquire) && app.seq.available() && app.db.ping().await {
        Ok((StatusCode::OK, axum::Json(Health { status: "READY" })))
    } else {
        Err(ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "NOT_READY", "not ready")
        })
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("NOT_FOUND", "no such resource")
}

/// The external listener's documented routes and their OpenAPI description.
pub fn external_api() -> (Router<Arc<Ctx>>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(crate::openapi::external())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(users::token_external))
        .routes(routes!(users::whoami_external))
        .routes(routes!(products::list))
        .routes(routes!(products::get_one))
        .routes(routes!(participants::get_own))
        .routes(routes!(orders::create, orders::list, orders::cancel_all))
        .routes(routes!(orders::get_one, orders::amend, orders::cancel))
        .routes(routes!(orders::book))
        .routes(routes!(crate::marketdata::ticker))
        .routes(routes!(crate::marketdata::candles))
        .routes(routes!(orders::tape))
        .routes(routes!(orders::trade))
        .routes(routes!(orders::trades_of_order))
        .split_for_parts();
    crate::openapi::finish(&mut doc);
    (router, doc)
}

/// The internal listener's documented routes and their OpenAPI description.
pub fn internal_api() -> (Router<Arc<Ctx>>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(crate::openapi::internal())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(users::token_internal))
        .routes(routes!(users::whoami_internal))
        .routes(routes!(users::jwks))
        .routes(routes!(users::create_internal))
        .routes(routes!(products::create, products::list_internal))
        .routes(routes!(products::get_internal, products::update, products::delete))
        .routes(routes!(products::halt))
        .routes(routes!(products::resume))
        .routes(routes!(participants::create, participants::list))
        .routes(routes!(participants::get_internal, participants::update, participants::disable))
        .routes(routes!(users::create_broker_user))
        .routes(routes!(users::create_api_key))
        .routes(routes!(users::revoke_api_key))
        .routes(routes!(crate::risk::get_limits, crate::risk::put_limits))
        .routes(routes!(crate::risk::kill_switch))
        .routes(routes!(orders::end_of_day))
        .routes(routes!(orders::book_internal))
        .routes(routes!(orders::get_internal))
        .routes(routes!(orders::trade_internal, orders::bust))
        .routes(routes!(crate::audit::list))
        .split_for_parts();
    crate::openapi::finish(&mut doc);
    (router, doc)
}

/// The external listener's routes: `/atlas/api/**` (with its OpenAPI description
/// and docs page), the Coinbase-compatible surface and the health endpoints.
/// Nothing under `/atlas/internal` is routed, so it answers 404.
pub fn external(app: Arc<App>) -> Router {
    let ctx = Arc::new(Ctx { app, audience: Audience::External });
    let (api, doc) = external_api();
    api.route("/atlas/api/ws", get(crate::marketdata::ws_atlas))
        .route("/coinbase/ws", get(crate::marketdata::ws_coinbase))
        .merge(crate::coinbase::routes())
        .merge(crate::openapi::serve("/atlas/api", doc))
        .route_layer(axum::middleware::from_fn_with_state(ctx.clone(), crate::metrics::track))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), crate::gateway::authenticate))
        .with_state(ctx)
}

/// The internal listener's routes (behind mutual TLS): `/atlas/internal/api/**`
/// (with its OpenAPI description and docs page), metrics and the health endpoints.
pub fn internal(app: Arc<App>) -> Router {
    let ctx = Arc::new(Ctx { app, audience: Audience::Internal });
    let (api, doc) = internal_api();
    api.route("/metrics", get(crate::metrics::render))
        .merge(crate::openapi::serve("/atlas/internal/api", doc))
        .route_layer(axum::middleware::from_fn_with_state(ctx.clone(), crate::metrics::track))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), crate::gateway::authenticate))
        .with_state(ctx)
}
