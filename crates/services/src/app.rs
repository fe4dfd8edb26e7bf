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
use axum::routing::{get, post};

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
    /// Disabled participants: their users' tokens stop working at once, not when
    /// they expire.
    pub disabled: std::sync::RwLock<std::collections::HashSet<atlas_types::ParticipantId>>,
}

impl App {
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

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(serde_json::json!({"status": "UP"})))
}

async fn readyz(State(ctx): St) -> Result<impl IntoResponse, ApiError> {
    let app = &ctx.app;
    if app.ready.load(Ordering::Acquire) && app.seq.available() && app.db.ping().await {
        Ok((StatusCode::OK, axum::Json(serde_json::json!({"status": "READY"}))))
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

/// The external listener's routes: `/atlas/api/**` and the health endpoints.
/// Nothing under `/atlas/internal` is routed, so it answers 404.
pub fn external(app: Arc<App>) -> Router {
    let ctx = Arc::new(Ctx { app, audience: Audience::External });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/atlas/api/auth/token", post(users::token))
        .route("/atlas/api/auth/whoami", get(users::whoami))
        .route("/atlas/api/product/equity", get(products::list))
        .route("/atlas/api/product/equity/{id}", get(products::get_one))
        .route("/atlas/api/participant/broker/{id}", get(participants::get_own))
        .route("/atlas/api/order", post(orders::create).get(orders::list).delete(orders::cancel_all))
        .route("/atlas/api/order/{id}", get(orders::get_one).put(orders::amend).delete(orders::cancel))
        .route("/atlas/api/orderBook/{product}", get(orders::book))
        .route("/atlas/api/trade", get(orders::tape))
        .route("/atlas/api/trade/{id}", get(orders::trade))
        .route("/atlas/api/trade/order/{order}", get(orders::trades_of_order))
        .merge(crate::coinbase::routes())
        .route_layer(axum::middleware::from_fn_with_state(ctx.clone(), crate::metrics::track))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), crate::gateway::authenticate))
        .with_state(ctx)
}

/// The internal listener's routes (behind mutual TLS): `/atlas/internal/api/**`
/// and the health endpoints.
pub fn internal(app: Arc<App>) -> Router {
    let ctx = Arc::new(Ctx { app, audience: Audience::Internal });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/atlas/internal/api/auth/token", post(users::token))
        .route("/atlas/internal/api/auth/whoami", get(users::whoami))
        .route("/atlas/internal/api/user", post(users::create_internal))
        .route("/atlas/internal/api/product/equity", post(products::create).get(products::list_internal))
        .route(
            "/atlas/internal/api/product/equity/{id}",
            get(products::get_internal).put(products::update).delete(products::delete),
        )
        .route("/atlas/internal/api/product/equity/{id}/halt", post(products::halt))
        .route("/atlas/internal/api/product/equity/{id}/resume", post(products::resume))
        .route("/atlas/internal/api/participant/broker", post(participants::create).get(participants::list))
        .route(
            "/atlas/internal/api/participant/broker/{id}",
            get(participants::get_internal).put(participants::update).delete(participants::disable),
        )
        .route("/atlas/internal/api/participant/broker/{id}/user", post(users::create_broker_user))
        .route("/atlas/internal/api/participant/broker/{id}/apikey", post(users::create_api_key))
        .route(
            "/atlas/internal/api/participant/broker/{id}/limits",
            get(crate::risk::get_limits).put(crate::risk::put_limits),
        )
        .route("/atlas/internal/api/participant/broker/{id}/killSwitch", post(crate::risk::kill_switch))
        .route(
            "/atlas/internal/api/participant/broker/{id}/apikey/{key}",
            axum::routing::delete(users::revoke_api_key),
        )
        .route("/atlas/internal/api/orderBook/endOfDay", post(orders::end_of_day))
        .route("/atlas/internal/api/orderBook/{product}", get(orders::book_internal))
        .route("/atlas/internal/api/order/{id}", get(orders::get_internal))
        .route("/atlas/internal/api/trade/{id}", get(orders::trade_internal).delete(orders::bust))
        .route("/metrics", get(crate::metrics::render))
        .route_layer(axum::middleware::from_fn_with_state(ctx.clone(), crate::metrics::track))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), crate::gateway::authenticate))
        .with_state(ctx)
}
