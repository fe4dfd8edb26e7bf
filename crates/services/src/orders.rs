//! The order, order book and trade services. Orders go through the sequencer and
//! are answered after matching and commit; reads come from the tables the journal
//! writes (orders, trades) or from the engine by query (the book). A broker only
//! ever sees its own orders and fills: anyone else's id answers like an unknown one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use atlas_engine::{Amend, CommandKind, Event, NewOrder, OrderType, SelfTradePrevention, TimeInForce};
use atlas_journal::projection::{Effects, OrderRow, Projection, TradeRow};
use atlas_journal::{Actor, Entry, Receipt};
use atlas_store::{OrderFilter, PAGE_ROWS_MAX, ProductRow};
use atlas_types::{OrderId, ParticipantId, ProductId, Qty, Side, TradeId};

use crate::app::{App, St};
use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::{ApiError, Body, Id, Params};
use crate::model::{
    AmendBody, NewOrderBody, OrderReport, OwnTrade, PublicTrade, format_price, parse_price, reject,
};

/// Orders per list page by default.
const PAGE_ROWS_DEFAULT: u32 = 100;
/// Book levels per side by default, and at most.
const DEPTH_DEFAULT: usize = 50;
const DEPTH_MAX: usize = 1_000;
/// Resting orders per side in a level-3 book, at most.
const L3_ORDERS_MAX: usize = 10_000;

fn order_not_found() -> ApiError {
    ApiError::not_found("ORDER_NOT_FOUND", "no such order")
}

fn trade_not_found() -> ApiError {
    ApiError::not_found("TRADE_NOT_FOUND", "no such trade")
}

fn actor(caller: &Caller) -> Actor {
    Actor { user: caller.actor_user(), participant: caller.participant }
}

async fn product_for_order(app: &App, id: ProductId) -> Result<ProductRow, ApiError> {
    app.product_any(id).ok_or_else(ApiError::internal)
}

async fn await_receipt(ticket: atlas_journal::Ticket) -> Result<Receipt, ApiError> {
    Ok(ticket.await.map_err(|_| ApiError::storage_unavailable())??)
}

fn rejected(receipt: &Receipt) -> Option<ApiError> {
    match receipt.events.first() {
        Some(Event::Rejected { reason }) => Some(reject(*reason)),
        _ => None,
    }
}

/// An order's report as stored, with its fills.
async fn stored_report(app: &App, row: &OrderRow) -> Result<OrderReport, ApiError> {
    let product = product_for_order(app, row.product).await?;
    let trades = app.db.trades_of_order(row.id).await?;
    Ok(OrderReport::of(row, trades.iter().map(|(t, b)| (t, *b)), &product))
}

/// The caller's order, or 404 (also for another broker's order).
pub(crate) async fn own_order(app: &App, caller: &Caller, id: u64) -> Result<OrderRow, ApiError> {
    let me = caller.broker()?;
    match app.db.order(OrderId(id)).await? {
        Some(row) if row.participant == me => Ok(row),
        _ => Err(order_not_found()),
    }
}

/// The order a participant's client order id names: the day's, as the
/// journal keeps them (given by a new order or by a FIX replace, also one
/// committed a moment ago), else the newest order entered with it (an
/// earlier day's, from the tables).
pub(crate) async fn by_client_order_id(
    app: &App,
    me: ParticipantId,
    client: &str,
) -> Result<Option<OrderId>, atlas_store::DbError> {
    if let Ok(answer) = app.seq.client_order(me, client.to_owned())
        && let Ok(Some(id)) = answer.await
    {
        return Ok(Some(id));
    }
    Ok(app.db.order_by_client_id(me, client).await?.map(|row| row.id))
}

/// Place an order
///
/// Enters an order and answers after it has been matched and committed, with its
/// fills. A retry with the same `clientOrderId` (same participant, same trading
/// day) returns the original order as it stands now, with 200, and creates nothing.
#[utoipa::path(post, path = "/atlas/api/order", tag = "orders", request_body = NewOrderBody, security(("bearer" = []), ("apiKey" = [])),
    responses((status = 201, description = "Accepted (matched and committed)", body = OrderReport),
              (status = 200, description = "A retried `clientOrderId`: the original order", body = OrderReport),
              (status = 400, description = "Refused by the rules: `VALIDATION_FAILED`, `PRICE_NOT_ON_TICK`, `QUANTITY_NOT_ON_LOT`, `POST_ONLY_WOULD_TRADE`, `PRICE_REQUIRED`, ...", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 403, description = "`PARTICIPANT_BLOCKED` (kill switch) or `FORBIDDEN`", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 409, description = "`MARKET_HALTED`", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 422, description = "A risk limit: `RISK_MAX_QUANTITY`, `RISK_MAX_NOTIONAL`, `RISK_MAX_OPEN_ORDERS`, `RISK_PRICE_COLLAR`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(ctx): St,
    caller: Caller,
    Body(b): Body<NewOrderBody>,
) -> Result<impl IntoResponse, ApiError> {
    let me = caller.broker()?;
    if b.participant_id.is_some_and(|p| p != me.0) {
        return Err(ApiError::validation("participantId must be the caller's own"));
    }
    let app = &ctx.app;
    let product = app
        .product(ProductId(b.product_id))
        .ok_or_else(|| ApiError::not_found("PRODUCT_NOT_FOUND", "no such product"))?;
    let price = b.price.as_deref().map(|p| parse_price(p, &product, "price")).transpose()?;
    let stop_price = b.stop_price.as_deref().map(|p| parse_price(p, &product, "stopPrice")).transpose()?;
    let order = NewOrder {
        order_id: OrderId(0),
        participant: me,
        product: product.id,
        side: Side::from(b.side),
        order_type: OrderType::from(b.order_type),
        time_in_force: b.time_in_force.map_or(TimeInForce::Gtc, TimeInForce::from),
        quantity: Qty(b.quantity),
        price,
        stop_price,
        post_only: b.post_only.unwrap_or(false),
        self_trade_prevention: b
            .self_trade_prevention
            .map_or(SelfTradePrevention::None, SelfTradePrevention::from),
    };
    let (created, row, trades) = place(app, &caller, &product, order, b.client_order_id).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(OrderReport::of(&row, trades.iter().map(|(t, b)| (t, *b)), &product))))
}

/// Enters an order for the caller and waits for matching and commit. Returns
/// whether it is new (false: a retried client order id, answered with the
/// original as it stands), its row and its trades.
pub(crate) async fn place(
    app: &App,
    caller: &Caller,
    product: &ProductRow,
    order: NewOrder,
    client_order_id: Option<String>,
) -> Result<(bool, OrderRow, Vec<(TradeRow, bool)>), ApiError> {
    crate::risk::check_order(app, &order, product).await?;
    let ticket = app.seq.submit(actor(caller), client_order_id.clone(), CommandKind::NewOrder(order))?;
    let receipt = await_receipt(ticket).await?;
    let order_id = receipt.order_id.ok_or_else(ApiError::internal)?;
    if receipt.duplicate {
        crate::metrics::order("duplicate", 0);
        let row = app.db.order(order_id).await?.ok_or_else(order_not_found)?;
        let trades = app.db.trades_of_order(row.id).await?;
        return Ok((false, row, trades));
    }
    if let Some(e) = rejected(&receipt) {
        crate::metrics::order("rejected", 0);
        return Err(e);
    }
    // The order's row and trades, folded from what the engine reported (the same
    // fold that wrote the tables): no database read on the order-entry path.
    let entry = Entry {
        seq: receipt.seq,
        time: receipt.time,
        actor: actor(caller),
        client_order_id,
        command: CommandKind::NewOrder(NewOrder { order_id, ..order }),
    };
    let mut fx = Effects::default();
    Projection::default().apply(&entry, &receipt.events, &mut fx);
    let row = fx.orders.into_iter().find(|r| r.id == order_id).ok_or_else(ApiError::internal)?;
    crate::metrics::order("accepted", fx.trades.len());
    Ok((true, row, fx.trades.into_iter().map(|t| (t, false)).collect()))
}

/// The order as it would stand after `amend` (for the risk checks an amend
/// must pass like a new order).
pub(crate) fn after_amend(row: &OrderRow, amend: &Amend) -> NewOrder {
    NewOrder {
        order_id: row.id,
        participant: row.participant,
        product: row.product,
        side: row.side,
        order_type: row.order_type,
        time_in_force: row.time_in_force,
        quantity: amend.quantity.unwrap_or(row.original),
        price: amend.price.or(row.price),
        stop_price: amend.stop_price.or(row.stop_price),
        post_only: row.post_only,
        self_trade_prevention: row.self_trade_prevention,
    }
}

/// Cancels one of the caller's orders; returns its final row.
pub(crate) async fn cancel_one(app: &App, caller: &Caller, id: u64) -> Result<OrderRow, ApiError> {
    let row = own_order(app, caller, id).await?;
    let cmd = CommandKind::Cancel { order_id: row.id, participant: Some(row.participant) };
    let receipt = await_receipt(app.seq.submit(actor(caller), None, cmd)?).await?;
    if let Some(e) = rejected(&receipt) {
        return Err(e);
    }
    app.db.order(row.id).await?.ok_or_else(order_not_found)
}

/// Cancels all the caller's open orders (of one product); returns their ids.
pub(crate) async fn cancel_many(
    app: &App,
    caller: &Caller,
    product: Option<ProductId>,
) -> Result<Vec<u64>, ApiError> {
    let me = caller.broker()?;
    let cmd = CommandKind::MassCancel { participant: me, product };
    let receipt = await_receipt(app.seq.submit(actor(caller), None, cmd)?).await?;
    if let Some(e) = rejected(&receipt) {
        return Err(e);
    }
    Ok(receipt
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Cancelled { order_id, .. } => Some(order_id.0),
            _ => None,
        })
        .collect())
}

/// One of the caller's orders
///
/// The order with its fills.
#[utoipa::path(get, path = "/atlas/api/order/{id}", tag = "orders", params(("id" = u64, Path, description = "Order id")), security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "The order", body = OrderReport), (status = 404, description = "`ORDER_NOT_FOUND` (also for another broker's order)", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn get_one(State(ctx): St, caller: Caller, Id(id): Id<u64>) -> Result<impl IntoResponse, ApiError> {
    let row = own_order(&ctx.app, &caller, id).await?;
    Ok(axum::Json(stored_report(&ctx.app, &row).await?))
}

/// Any order
#[utoipa::path(get, path = "/atlas/internal/api/order/{id}", tag = "orders", params(("id" = u64, Path, description = "Order id")), security(("bearer" = [])),
    responses((status = 200, description = "The order", body = OrderReport),
              (status = 404, description = "`ORDER_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn get_internal(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u64>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let row = ctx.app.db.order(OrderId(id)).await?.ok_or_else(order_not_found)?;
    Ok(axum::Json(stored_report(&ctx.app, &row).await?))
}

/// Amend an order
///
/// Changes quantity, price or stop price in place. A smaller quantity keeps time
/// priority; a larger one or a new price loses it (and a new price may trade).
#[utoipa::path(put, path = "/atlas/api/order/{id}", tag = "orders", params(("id" = u64, Path, description = "Order id")), request_body = AmendBody, security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "The order after the amend", body = OrderReport), (status = 404, description = "`ORDER_NOT_FOUND` (also for another broker's order)", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 400, description = "`NOTHING_TO_AMEND`, `QUANTITY_BELOW_EXECUTED`, `PRICE_NOT_ON_TICK`, ...", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 409, description = "`ORDER_NOT_OPEN`, `MARKET_HALTED`", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 422, description = "A risk limit", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn amend(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u64>,
    Body(b): Body<AmendBody>,
) -> Result<impl IntoResponse, ApiError> {
    let app = &ctx.app;
    let row = own_order(app, &caller, id).await?;
    let product = product_for_order(app, row.product).await?;
    let amend = Amend {
        order_id: row.id,
        participant: Some(row.participant),
        quantity: b.quantity.map(Qty),
        price: b.price.as_deref().map(|p| parse_price(p, &product, "price")).transpose()?,
        stop_price: b.stop_price.as_deref().map(|p| parse_price(p, &product, "stopPrice")).transpose()?,
    };
    // An amend must fit the same quantity and notional limits as a new order:
    // check the order as it would stand afterwards.
    let after = after_amend(&row, &amend);
    crate::risk::check_order(app, &after, &product).await?;
    let receipt = await_receipt(app.seq.submit(actor(&caller), None, CommandKind::Amend(amend))?).await?;
    if let Some(e) = rejected(&receipt) {
        return Err(e);
    }
    let row = app.db.order(row.id).await?.ok_or_else(order_not_found)?;
    Ok(axum::Json(stored_report(app, &row).await?))
}

/// Cancel an order
#[utoipa::path(delete, path = "/atlas/api/order/{id}", tag = "orders", params(("id" = u64, Path, description = "Order id")), security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "The cancelled order", body = OrderReport), (status = 404, description = "`ORDER_NOT_FOUND` (also for another broker's order)", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 409, description = "`ORDER_NOT_OPEN`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn cancel(State(ctx): St, caller: Caller, Id(id): Id<u64>) -> Result<impl IntoResponse, ApiError> {
    let row = cancel_one(&ctx.app, &caller, id).await?;
    Ok(axum::Json(stored_report(&ctx.app, &row).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CancelAllParams {
    /// Only this product's orders.
    product_id: Option<u32>,
}

/// The ids of the orders a mass cancel cancelled.
#[derive(Serialize, ToSchema)]
pub struct Cancelled {
    cancelled: Vec<u64>,
}

/// Cancel all the caller's open orders
#[utoipa::path(delete, path = "/atlas/api/order", tag = "orders", params(CancelAllParams), security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "What was cancelled", body = Cancelled)))]
pub async fn cancel_all(
    State(ctx): St,
    caller: Caller,
    Params(p): Params<CancelAllParams>,
) -> Result<impl IntoResponse, ApiError> {
    let cancelled = cancel_many(&ctx.app, &caller, p.product_id.map(ProductId)).await?;
    Ok(axum::Json(Cancelled { cancelled }))
}

/// Which orders to list.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusFilter {
    /// Working (resting, or stops waiting).
    Open,
    /// Finished.
    Done,
    /// Both (the default).
    All,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Default ALL.
    #[param(inline)]
    status: Option<StatusFilter>,
    product_id: Option<u32>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    cursor: Option<u64>,
}

/// A page of orders.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    /// Newest first, without fills.
    orders: Vec<OrderReport>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<u64>,
}

/// The caller's orders
///
/// Newest first; `nextCursor` pages on. List items carry no fills (fetch the order
/// for them).
#[utoipa::path(get, path = "/atlas/api/order", tag = "orders", params(ListParams), security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "A page of orders", body = OrderPage)))]
pub async fn list(
    State(ctx): St,
    caller: Caller,
    Params(p): Params<ListParams>,
) -> Result<impl IntoResponse, ApiError> {
    let me = caller.broker()?;
    let limit = p.limit.unwrap_or(PAGE_ROWS_DEFAULT);
    if limit == 0 || limit > PAGE_ROWS_MAX {
        return Err(ApiError::validation(format!("limit must be 1 to {PAGE_ROWS_MAX}")));
    }
    let filter = match p.status.unwrap_or(StatusFilter::All) {
        StatusFilter::Open => OrderFilter::Open,
        StatusFilter::Done => OrderFilter::Done,
        StatusFilter::All => OrderFilter::All,
    };
    let app = &ctx.app;
    let rows = app.db.orders(me, filter, p.product_id.map(ProductId), p.cursor.map(OrderId), limit).await?;
    let mut products: Vec<ProductRow> = Vec::new();
    let mut reports = Vec::with_capacity(rows.len());
    for row in &rows {
        if !products.iter().any(|x| x.id == row.product) {
            products.push(product_for_order(app, row.product).await?);
        }
        let product = products.iter().find(|x| x.id == row.product).ok_or_else(ApiError::internal)?;
        reports.push(OrderReport::of(row, [], product).without_trades());
    }
    let next = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.id.0)).flatten();
    Ok(axum::Json(OrderPage { orders: reports, next_cursor: next }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BookParams {
    /// Levels per side, 1 to 1000 (default 10).
    depth: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InternalBookParams {
    /// Levels per side for level 2, 1 to 1000 (default 10).
    depth: Option<usize>,
    /// 2 (aggregated, the default) or 3 (every resting order).
    level: Option<u8>,
}

/// One aggregated price level.
#[derive(Serialize, ToSchema)]
pub struct Level {
    price: String,
    /// Total open quantity at the price.
    quantity: i64,
    /// Orders at the price.
    orders: u32,
}

/// A product's aggregated book, best prices first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Book {
    product_id: u32,
    symbol: String,
    /// The product's level2 feed sequence number of the state shown (the last
    /// `l2update` it reflects).
    sequence: u64,
    bids: Vec<Level>,
    offers: Vec<Level>,
}

/// One resting order in a level-3 book.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookOrder {
    order_id: u64,
    participant_id: u32,
    price: String,
    quantity: i64,
}

/// A product's level-3 book: every resting order in priority order (at most
/// 1000 per side).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookL3 {
    product_id: u32,
    symbol: String,
    sequence: u64,
    bids: Vec<BookOrder>,
    offers: Vec<BookOrder>,
}

async fn aggregated_book(app: &App, product: &ProductRow, depth: usize) -> Result<Book, ApiError> {
    if depth == 0 || depth > DEPTH_MAX {
        return Err(ApiError::validation(format!("depth must be 1 to {DEPTH_MAX}")));
    }
    let id = product.id;
    // The product's level2 sequence at the same point: the feed's update this
    // book reflects (a feed client that sees a gap resynchronizes from here).
    let (seq, book) = app
        .seq
        .query_market(move |e, m| (m.get(id), e.depth(id, depth)))?
        .await
        .map_err(|_| ApiError::storage_unavailable())?;
    let book = book.ok_or_else(|| ApiError::not_found("PRODUCT_NOT_FOUND", "no such product"))?;
    let side = |levels: &[atlas_engine::LevelView]| {
        levels
            .iter()
            .map(|l| Level {
                price: format_price(l.price, product),
                quantity: l.quantity.0,
                orders: l.orders,
            })
            .collect::<Vec<_>>()
    };
    Ok(Book {
        product_id: product.id.0,
        symbol: product.symbol.clone(),
        sequence: seq,
        bids: side(&book.bids),
        offers: side(&book.asks),
    })
}

async fn listed_product(app: &App, id: u32) -> Result<ProductRow, ApiError> {
    app.product(ProductId(id)).ok_or_else(|| ApiError::not_found("PRODUCT_NOT_FOUND", "no such product"))
}

/// A product's order book
///
/// Aggregated price levels, best first, as of the journal sequence shown.
#[utoipa::path(get, path = "/atlas/api/orderBook/{product}", tag = "orderbook",
    params(("product" = u32, Path, description = "Product id"), BookParams), security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "The book", body = Book), (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn book(
    State(ctx): St,
    _caller: Caller,
    Id(id): Id<u32>,
    Params(p): Params<BookParams>,
) -> Result<impl IntoResponse, ApiError> {
    let product = listed_product(&ctx.app, id).await?;
    Ok(axum::Json(aggregated_book(&ctx.app, &product, p.depth.unwrap_or(DEPTH_DEFAULT)).await?))
}

/// A product's order book, level 2 or 3
///
/// Level 3 lists every resting order with its id and participant.
#[utoipa::path(get, path = "/atlas/internal/api/orderBook/{product}", tag = "orderbook",
    params(("product" = u32, Path, description = "Product id"), InternalBookParams), security(("bearer" = [])),
    responses((status = 200, description = "The book (`Book` for level 2, `BookL3` for level 3)", body = BookL3), (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn book_internal(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u32>,
    Params(p): Params<InternalBookParams>,
) -> Result<axum::response::Response, ApiError> {
    caller.operator()?;
    let app = &ctx.app;
    let product = listed_product(app, id).await?;
    match p.level.unwrap_or(2) {
        2 => Ok(axum::Json(aggregated_book(app, &product, p.depth.unwrap_or(DEPTH_DEFAULT)).await?)
            .into_response()),
        3 => {
            let pid = product.id;
            let (seq, bids, asks) = app
                .seq
                .query(move |e| {
                    let take = |side| {
                        e.orders_by_priority(pid, side).map(|mut v| {
                            v.truncate(L3_ORDERS_MAX);
                            v
                        })
                    };
                    (e.last_seq(), take(Side::Buy), take(Side::Sell))
                })?
                .await
                .map_err(|_| ApiError::storage_unavailable())?;
            let side = |orders: Option<Vec<atlas_engine::RestingView>>| {
                orders
                    .unwrap_or_default()
                    .iter()
                    .map(|o| BookOrder {
                        order_id: o.id.0,
                        participant_id: o.participant.0,
                        price: format_price(o.price, &product),
                        quantity: o.open.0,
                    })
                    .collect::<Vec<_>>()
            };
            Ok(axum::Json(BookL3 {
                product_id: product.id.0,
                symbol: product.symbol.clone(),
                sequence: seq,
                bids: side(bids),
                offers: side(asks),
            })
            .into_response())
        }
        _ => Err(ApiError::validation("level must be 2 or 3")),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TapeParams {
    product_id: u32,
    /// Only trades with a greater id.
    since: Option<u64>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
}

/// The public tape
///
/// A product's trades, anonymous; busted trades are left out.
#[utoipa::path(get, path = "/atlas/api/trade", tag = "trades", params(TapeParams), security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "Trades", body = Vec<PublicTrade>), (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn tape(
    State(ctx): St,
    _caller: Caller,
    Params(p): Params<TapeParams>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = p.limit.unwrap_or(PAGE_ROWS_DEFAULT);
    if limit == 0 || limit > PAGE_ROWS_MAX {
        return Err(ApiError::validation(format!("limit must be 1 to {PAGE_ROWS_MAX}")));
    }
    let app = &ctx.app;
    let product = listed_product(app, p.product_id).await?;
    let trades = app.db.tape(product.id, p.since.map(TradeId), limit).await?;
    let out: Vec<_> =
        trades.iter().filter(|(_, busted)| !busted).map(|(t, _)| PublicTrade::of(t, &product)).collect();
    Ok(axum::Json(out))
}

fn party(t: &atlas_journal::projection::TradeRow, me: ParticipantId) -> bool {
    t.maker_participant == me || t.taker_participant == me
}

/// One of the caller's trades
///
/// Only a trade the caller is party to, as its side saw it.
#[utoipa::path(get, path = "/atlas/api/trade/{id}", tag = "trades", params(("id" = u64, Path, description = "Trade id")), security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "The trade", body = OwnTrade), (status = 404, description = "`TRADE_NOT_FOUND` (also for a trade the caller is not party to)", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn trade(State(ctx): St, caller: Caller, Id(id): Id<u64>) -> Result<impl IntoResponse, ApiError> {
    let me = caller.broker()?;
    let app = &ctx.app;
    let (t, busted) =
        app.db.trade(TradeId(id)).await?.filter(|(t, _)| party(t, me)).ok_or_else(trade_not_found)?;
    let product = product_for_order(app, t.product).await?;
    Ok(axum::Json(OwnTrade::of(&t, busted, me, &product)))
}

/// Any trade, with both parties
#[utoipa::path(get, path = "/atlas/internal/api/trade/{id}", tag = "trades", params(("id" = u64, Path, description = "Trade id")), security(("bearer" = [])),
    responses((status = 200, description = "The trade", body = TradeParties),
              (status = 404, description = "`TRADE_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn trade_internal(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u64>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let (t, busted) = ctx.app.db.trade(TradeId(id)).await?.ok_or_else(trade_not_found)?;
    Ok(axum::Json(internal_trade(&ctx.app, &t, busted).await?))
}

/// A trade with both its parties.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TradeParties {
    trade: PublicTrade,
    maker_order_id: u64,
    maker_participant_id: u32,
    taker_order_id: u64,
    taker_participant_id: u32,
    busted: bool,
}

async fn internal_trade(app: &App, t: &TradeRow, busted: bool) -> Result<TradeParties, ApiError> {
    let product = product_for_order(app, t.product).await?;
    Ok(TradeParties {
        trade: PublicTrade::of(t, &product),
        maker_order_id: t.maker_order.0,
        maker_participant_id: t.maker_participant.0,
        taker_order_id: t.taker_order.0,
        taker_participant_id: t.taker_participant.0,
        busted,
    })
}

/// Bust a trade
///
/// The bust is a journaled command (sequenced, with the operator as its actor);
/// the trade then carries `busted: true`, leaves the tape, volume and Coinbase
/// fills, and the orders that made it stand as matched.
#[utoipa::path(delete, path = "/atlas/internal/api/trade/{id}", tag = "trades", params(("id" = u64, Path, description = "Trade id")), security(("bearer" = [])),
    responses((status = 200, description = "The busted trade", body = TradeParties),
              (status = 404, description = "`TRADE_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json"),
              (status = 409, description = "`TRADE_ALREADY_BUSTED`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn bust(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Id(id): Id<u64>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let app = &ctx.app;
    let (t, busted) = app.db.trade(TradeId(id)).await?.ok_or_else(trade_not_found)?;
    if busted {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "TRADE_ALREADY_BUSTED",
            "the trade is already busted",
        ));
    }
    let receipt =
        await_receipt(app.seq.submit(actor(&caller), None, CommandKind::BustTrade { trade: t.id })?).await?;
    if let Some(e) = rejected(&receipt) {
        return Err(e);
    }
    let detail =
        serde_json::json!({"sequence": receipt.seq.0, "productId": t.product.0, "quantity": t.quantity.0});
    audit::by(app, &caller, origin, "TRADE_BUSTED", format!("trade:{id}"), detail).await?;
    Ok(axum::Json(internal_trade(app, &t, true).await?))
}

/// The trades of one of the caller's orders
#[utoipa::path(get, path = "/atlas/api/trade/order/{order}", tag = "trades",
    params(("order" = u64, Path, description = "Order id")), security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "Its trades", body = Vec<OwnTrade>), (status = 404, description = "`ORDER_NOT_FOUND` (also for another broker's order)", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn trades_of_order(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u64>,
) -> Result<impl IntoResponse, ApiError> {
    let me = caller.broker()?;
    let app = &ctx.app;
    let row = own_order(app, &caller, id).await?;
    let product = product_for_order(app, row.product).await?;
    let trades = app.db.trades_of_order(row.id).await?;
    Ok(axum::Json(trades.iter().map(|(t, b)| OwnTrade::of(t, *b, me, &product)).collect::<Vec<_>>()))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EndOfDayParams {
    /// Only this product's DAY orders.
    product_id: Option<u32>,
}

/// What an end of day did.
#[derive(Serialize, ToSchema)]
pub struct EndOfDay {
    /// DAY orders expired.
    expired: usize,
    /// Its journal sequence number.
    sequence: u64,
}

/// End the trading day
///
/// Expires every DAY order (of one product, or all).
#[utoipa::path(post, path = "/atlas/internal/api/orderBook/endOfDay", tag = "orderbook", params(EndOfDayParams), security(("bearer" = [])),
    responses((status = 200, description = "Done", body = EndOfDay), (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn end_of_day(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Params(p): Params<EndOfDayParams>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let product = p.product_id.map(ProductId);
    let receipt =
        await_receipt(ctx.app.seq.submit(actor(&caller), None, CommandKind::EndOfDay { product })?).await?;
    if let Some(e) = rejected(&receipt) {
        return Err(e);
    }
    let expired = receipt.events.iter().filter(|e| matches!(e, Event::Expired { .. })).count();
    let detail = serde_json::json!({"expired": expired, "sequence": receipt.seq.0});
    let target = product.map(|p| format!("product:{}", p.0));
    audit::by(&ctx.app, &caller, origin, "END_OF_DAY", target, detail).await?;
    Ok(axum::Json(EndOfDay { expired, sequence: receipt.seq.0 }))
}
