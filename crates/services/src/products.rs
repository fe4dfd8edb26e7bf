//! The product service: listing equities, halting and resuming them. A product's
//! trading parameters go to the engine through the journal (`AddProduct`); its
//! symbol and description live in the `products` table.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use atlas_engine::{CommandKind, Event, ProductSpec};
use atlas_journal::{Actor, SequencerHandle};
use atlas_store::{Db, DbError, ProductRow};
use atlas_types::decimal::{SCALE_MAX, parse_units, scale_of};
use atlas_types::{Price, ProductId, Qty};

use crate::app::{App, Ctx, St};
use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::{ApiError, Body, Id, Params};
use crate::model::{Equity, now_ns, reject};

/// Decimal places a tick may have (prices are integers in 10^-scale units).
const PRICE_SCALE_MAX: u8 = 9;

/// A product to list.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"symbol": "ACME", "description": "Acme Corp", "productType": "EQUITY", "tickSize": "0.01", "lotSize": 1, "currency": "USD"}))]
pub struct CreateBody {
    /// Unique; 1 to 16 of A-Z, 0-9, '.', '_', starting with a letter.
    symbol: String,
    /// At most 256 characters.
    description: Option<String>,
    /// `EQUITY` (the default).
    product_type: Option<String>,
    /// A positive decimal with at most 9 decimal places (default `0.01`).
    tick_size: Option<String>,
    /// Positive (default 1).
    lot_size: Option<i64>,
    /// Three-letter ISO code (default `USD`).
    currency: Option<String>,
}

/// A product's new terms: the full shape is accepted, but only the description
/// may change (the rest must be as it is).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBody {
    symbol: Option<String>,
    description: Option<String>,
    product_type: Option<String>,
    tick_size: Option<String>,
    lot_size: Option<i64>,
    currency: Option<String>,
    id: Option<u32>,
    status: Option<String>,
}

/// Every listed product, or (with `symbol`) the one with that symbol.
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Products {
    /// Without `symbol`.
    All(Vec<Equity>),
    /// With `symbol`.
    One(Equity),
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only the product with this symbol (answered as one object, or 404).
    symbol: Option<String>,
}

fn check_symbol(s: &str) -> Result<(), ApiError> {
    let ok = (1..=16).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
        && s.as_bytes()[0].is_ascii_uppercase();
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation("symbol must be 1 to 16 of A-Z, 0-9, '.', '_', starting with a letter"))
    }
}

fn check_description(d: &str) -> Result<(), ApiError> {
    if d.len() > 256 || d.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "description must be at most 256 characters without control characters",
        ));
    }
    Ok(())
}

/// The tick as (decimal text, price scale, tick in price units).
fn parse_tick(tick: &str) -> Result<(String, u32, i64), ApiError> {
    let bad = || ApiError::validation("tickSize must be a positive decimal with at most 9 decimal places");
    let scale = scale_of(tick).map_err(|_| bad())?;
    if scale > PRICE_SCALE_MAX || scale > SCALE_MAX {
        return Err(bad());
    }
    let units = parse_units(tick, scale).map_err(|_| bad())?;
    if units <= 0 {
        return Err(bad());
    }
    Ok((tick.to_owned(), u32::from(scale), units))
}

/// Submits a product command and waits for its commit; engine refusals become errors.
pub async fn submit_product_command(
    seq: &SequencerHandle,
    caller: &Caller,
    cmd: CommandKind,
) -> Result<(), ApiError> {
    let actor = Actor { user: caller.actor_user(), participant: None };
    let receipt = seq.submit(actor, None, cmd)?.await.map_err(|_| ApiError::storage_unavailable())??;
    match receipt.events.first() {
        Some(Event::Rejected { reason }) => Err(reject(*reason)),
        _ => Ok(()),
    }
}

/// List a product
///
/// Lists an equity: the engine opens its (empty, active) book.
#[utoipa::path(post, path = "/atlas/internal/api/product/equity", tag = "products", request_body = CreateBody,
    security(("bearer" = [])),
    responses((status = 201, description = "Listed", body = Equity),
              (status = 409, description = "`DUPLICATE_SYMBOL`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Body(b): Body<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    check_symbol(&b.symbol)?;
    let description = b.description.unwrap_or_default();
    check_description(&description)?;
    if b.product_type.as_deref().is_some_and(|t| t != "EQUITY") {
        return Err(ApiError::validation("productType must be EQUITY"));
    }
    let (tick_text, scale, tick_units) = parse_tick(b.tick_size.as_deref().unwrap_or("0.01"))?;
    let lot = b.lot_size.unwrap_or(1);
    if lot < 1 {
        return Err(ApiError::validation("lotSize must be a positive integer"));
    }
    let currency = b.currency.unwrap_or_else(|| "USD".to_owned());
    if currency.len() != 3 || !currency.bytes().all(|c| c.is_ascii_uppercase()) {
        return Err(ApiError::validation("currency must be a three-letter ISO code"));
    }
    let app = &ctx.app;
    let row = match app
        .db
        .insert_product(&b.symbol, &description, &tick_text, scale, lot, &currency, now_ns())
        .await
    {
        Ok(r) => r,
        Err(DbError::Duplicate) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "DUPLICATE_SYMBOL",
                "a product with this symbol exists",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let spec = ProductSpec { id: row.id, tick: Price(tick_units), lot: Qty(lot) };
    if let Err(e) = submit_product_command(&app.seq, &caller, CommandKind::AddProduct(spec)).await {
        // The engine never listed it: take the row back (best effort; start-up
        // reconciles whatever is left).
        let _ = app.db.delete_product_row(row.id).await;
        return Err(e);
    }
    app.reload_products().await?;
    let detail = serde_json::json!({"symbol": row.symbol, "tickSize": row.tick_size, "lotSize": row.lot_size, "currency": row.currency});
    audit::by(app, &caller, origin, "PRODUCT_CREATED", format!("product:{}", row.id.0), detail).await?;
    Ok((StatusCode::CREATED, axum::Json(Equity::from(&row))))
}

async fn find(db: &Db, id: u32) -> Result<ProductRow, ApiError> {
    db.product(ProductId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("PRODUCT_NOT_FOUND", "no such product"))
}

async fn list_products(app: &Arc<App>, p: ListParams) -> Result<axum::response::Response, ApiError> {
    match p.symbol {
        Some(symbol) => {
            let row = app
                .db
                .product_by_symbol(&symbol)
                .await?
                .ok_or_else(|| ApiError::not_found("PRODUCT_NOT_FOUND", "no such product"))?;
            Ok(axum::Json(Equity::from(&row)).into_response())
        }
        None => {
            let rows = app.db.products().await?;
            Ok(axum::Json(rows.iter().map(Equity::from).collect::<Vec<_>>()).into_response())
        }
    }
}

/// The listed products
///
/// Every listed product, or with `symbol` the one product with that symbol.
#[utoipa::path(get, path = "/atlas/api/product/equity", tag = "products", params(ListParams),
    security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "Products (an array; one object with `symbol`)", body = Products),
              (status = 404, description = "`PRODUCT_NOT_FOUND` (with `symbol`)", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(ctx): St,
    _caller: Caller,
    Params(p): Params<ListParams>,
) -> Result<impl IntoResponse, ApiError> {
    list_products(&ctx.app, p).await
}

/// The listed products
#[utoipa::path(get, path = "/atlas/internal/api/product/equity", tag = "products", params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, description = "Products (an array; one object with `symbol`)", body = Products),
              (status = 404, description = "`PRODUCT_NOT_FOUND` (with `symbol`)", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn list_internal(
    State(ctx): St,
    caller: Caller,
    Params(p): Params<ListParams>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    list_products(&ctx.app, p).await
}

/// A product
#[utoipa::path(get, path = "/atlas/api/product/equity/{id}", tag = "products", params(("id" = u32, Path, description = "Product id")),
    security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "The product", body = Equity),
              (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(ctx): St,
    _caller: Caller,
    Id(id): Id<u32>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(Equity::from(&find(&ctx.app.db, id).await?)))
}

/// A product
#[utoipa::path(get, path = "/atlas/internal/api/product/equity/{id}", tag = "products", params(("id" = u32, Path, description = "Product id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The product", body = Equity),
              (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn get_internal(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u32>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    Ok(axum::Json(Equity::from(&find(&ctx.app.db, id).await?)))
}

/// Change a product's description
///
/// Tick, lot, symbol, type and currency cannot change once listed; status
/// changes through halt, resume and delete.
#[utoipa::path(put, path = "/atlas/internal/api/product/equity/{id}", tag = "products", params(("id" = u32, Path, description = "Product id")),
    request_body = UpdateBody, security(("bearer" = [])),
    responses((status = 200, description = "The product", body = Equity),
              (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Id(id): Id<u32>,
    Body(b): Body<UpdateBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let row = find(&ctx.app.db, id).await?;
    let immutable = |name: &str, same: bool| {
        if same {
            Ok(())
        } else {
            Err(ApiError::validation(format!("{name} cannot change; list a new product")))
        }
    };
    immutable("id", b.id.is_none_or(|v| v == row.id.0))?;
    immutable("symbol", b.symbol.as_ref().is_none_or(|v| *v == row.symbol))?;
    immutable("productType", b.product_type.as_ref().is_none_or(|v| *v == row.product_type))?;
    immutable("tickSize", b.tick_size.as_ref().is_none_or(|v| *v == row.tick_size))?;
    immutable("lotSize", b.lot_size.is_none_or(|v| v == row.lot_size))?;
    immutable("currency", b.currency.as_ref().is_none_or(|v| *v == row.currency))?;
    immutable("status (use halt and resume)", b.status.as_ref().is_none_or(|v| *v == row.status))?;
    if let Some(d) = &b.description {
        check_description(d)?;
    }
    ctx.app.db.update_product(row.id, b.description.as_deref(), None, now_ns()).await?;
    ctx.app.reload_products().await?;
    let detail = serde_json::json!({"description": b.description});
    audit::by(&ctx.app, &caller, origin, "PRODUCT_UPDATED", format!("product:{id}"), detail).await?;
    Ok(axum::Json(Equity::from(&find(&ctx.app.db, id).await?)))
}

async fn set_status(
    ctx: &Ctx,
    caller: &Caller,
    id: u32,
    cmd: CommandKind,
    status: &str,
) -> Result<ProductRow, ApiError> {
    caller.operator()?;
    let row = find(&ctx.app.db, id).await?;
    submit_product_command(&ctx.app.seq, caller, cmd).await?;
    ctx.app.db.update_product(row.id, None, Some(status), now_ns()).await?;
    ctx.app.reload_products().await?;
    Ok(ProductRow { status: status.to_owned(), ..row })
}

/// Halt a product
///
/// No new orders or amends until it resumes; cancels still work.
#[utoipa::path(post, path = "/atlas/internal/api/product/equity/{id}/halt", tag = "products", params(("id" = u32, Path, description = "Product id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Halted", body = Equity),
              (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn halt(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Id(id): Id<u32>,
) -> Result<impl IntoResponse, ApiError> {
    let row = set_status(&ctx, &caller, id, CommandKind::Halt { product: ProductId(id) }, "HALTED").await?;
    audit::by(&ctx.app, &caller, origin, "PRODUCT_HALTED", format!("product:{id}"), serde_json::json!({}))
        .await?;
    Ok(axum::Json(Equity::from(&row)))
}

/// Resume a halted product
#[utoipa::path(post, path = "/atlas/internal/api/product/equity/{id}/resume", tag = "products", params(("id" = u32, Path, description = "Product id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Trading", body = Equity),
              (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn resume(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Id(id): Id<u32>,
) -> Result<impl IntoResponse, ApiError> {
    let row = set_status(&ctx, &caller, id, CommandKind::Resume { product: ProductId(id) }, "ACTIVE").await?;
    audit::by(&ctx.app, &caller, origin, "PRODUCT_RESUMED", format!("product:{id}"), serde_json::json!({}))
        .await?;
    Ok(axum::Json(Equity::from(&row)))
}

/// Delist a product
///
/// The engine cancels its open orders and drops its book; its orders and trades
/// stay readable.
#[utoipa::path(delete, path = "/atlas/internal/api/product/equity/{id}", tag = "products", params(("id" = u32, Path, description = "Product id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Delisted"),
              (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Id(id): Id<u32>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let row = find(&ctx.app.db, id).await?;
    // The table first: a crash before the engine's removal leaves a deleted row
    // over a listed book, which start-up reconciliation finishes removing (while
    // a listed row over no book means a listing to finish).
    ctx.app.db.update_product(row.id, None, Some("DELETED"), now_ns()).await?;
    ctx.app.reload_products().await?;
    let removed =
        submit_product_command(&ctx.app.seq, &caller, CommandKind::RemoveProduct { product: row.id }).await;
    if let Err(e) = removed {
        let _ = ctx.app.db.update_product_status_any(row.id, &row.status, now_ns()).await;
        let _ = ctx.app.reload_products().await;
        return Err(e);
    }
    let detail = serde_json::json!({"symbol": row.symbol});
    audit::by(&ctx.app, &caller, origin, "PRODUCT_DELETED", format!("product:{id}"), detail).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Brings the engine in line with the products table after a start: lists what
/// a crash left unlisted, halts what should be halted, delists deleted ones.
pub async fn reconcile(app: &App) -> anyhow::Result<()> {
    let in_engine = app
        .seq
        .query(|e| e.products().filter_map(|p| e.product(p).map(|v| (p, v.status))).collect::<Vec<_>>())?
        .await?;
    let system = Caller {
        principal: crate::auth::Principal::User(0),
        role: crate::auth::Role::Admin,
        participant: None,
        audience: crate::auth::Audience::Internal,
    };
    for row in app.db.all_products().await? {
        let engine_status = in_engine.iter().find(|(p, _)| *p == row.id).map(|(_, s)| *s);
        let cmd = match (row.status.as_str(), engine_status) {
            ("DELETED", Some(_)) => Some(CommandKind::RemoveProduct { product: row.id }),
            ("DELETED", None) => None,
            (_, None) => {
                let (_, _, tick) = parse_tick(&row.tick_size).map_err(|e| anyhow::anyhow!(e.detail))?;
                let spec = ProductSpec { id: row.id, tick: Price(tick), lot: Qty(row.lot_size) };
                submit_product_command(&app.seq, &system, CommandKind::AddProduct(spec))
                    .await
                    .map_err(|e| anyhow::anyhow!(e.detail))?;
                (row.status == "HALTED").then_some(CommandKind::Halt { product: row.id })
            }
            // Halts go to the engine first: the journal is right, the table follows.
            ("HALTED", Some(atlas_engine::ProductStatus::Active)) => {
                app.db.update_product(row.id, None, Some("ACTIVE"), now_ns()).await?;
                None
            }
            ("ACTIVE", Some(atlas_engine::ProductStatus::Halted)) => {
                app.db.update_product(row.id, None, Some("HALTED"), now_ns()).await?;
                None
            }
            _ => None,
        };
        if let Some(cmd) = cmd {
            submit_product_command(&app.seq, &system, cmd).await.map_err(|e| anyhow::anyhow!(e.detail))?;
        }
    }
    app.reload_products().await.map_err(|e| anyhow::anyhow!(e.detail))?;
    Ok(())
}
