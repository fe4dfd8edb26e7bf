//! The order, order book and trade services. Orders go through the sequencer and
//! are answered after matching and commit; reads come from the tables the journal
//! writes (orders, trades) or from the engine by query (the book). A broker only
//! ever sees its own orders and fills: anyone else's id answers like an unknown one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use atlas_engine::{Amend, CommandKind, Event, NewOrder, OrderType, SelfTradePrevention, TimeInForce};
use atlas_journal::projection::{Effects, OrderRow, Projection, TradeRow};
use atlas_journal::{Actor, Entry, Receipt};
use atlas_store::{OrderFilter, PAGE_ROWS_MAX, ProductRow};
use atlas_types::{OrderId, ParticipantId, ProductId, Qty, Side, TradeId};

use crate::app::{App, St};
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

/// `POST /atlas/api/order`: enters an order and answers after matching.
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

pub async fn get_one(State(ctx): St, caller: Caller, Id(id): Id<u64>) -> Result<impl IntoResponse, ApiError> {
    let row = own_order(&ctx.app, &caller, id).await?;
    Ok(axum::Json(stored_report(&ctx.app, &row).await?))
}

pub async fn get_internal(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u64>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let row = ctx.app.db.order(OrderId(id)).await?.ok_or_else(order_not_found)?;
    Ok(axum::Json(stored_report(&ctx.app, &row).await?))
}

/// `PUT /atlas/api/order/{id}`: amends in place.
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
    let after = NewOrder {
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
    };
    crate::risk::check_order(app, &after, &product).await?;
    let receipt = await_receipt(app.seq.submit(actor(&caller), None, CommandKind::Amend(amend))?).await?;
    if let Some(e) = rejected(&receipt) {
        return Err(e);
    }
    let row = app.db.order(row.id).await?.ok_or_else(order_not_found)?;
    Ok(axum::Json(stored_report(app, &row).await?))
}

/// `DELETE /atlas/api/order/{id}`.
pub async fn cancel(State(ctx): St, caller: Caller, Id(id): Id<u64>) -> Result<impl IntoResponse, ApiError> {
    let row = cancel_one(&ctx.app, &caller, id).await?;
    Ok(axum::Json(stored_report(&ctx.app, &row).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelAllParams {
    product_id: Option<u32>,
}

/// `DELETE /atlas/api/order[?productId=]`: cancels all the caller's open orders.
pub async fn cancel_all(
    State(ctx): St,
    caller: Caller,
    Params(p): Params<CancelAllParams>,
) -> Result<impl IntoResponse, ApiError> {
    let cancelled = cancel_many(&ctx.app, &caller, p.product_id.map(ProductId)).await?;
    Ok(axum::Json(serde_json::json!({ "cancelled": cancelled })))
}

#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusFilter {
    Open,
    Done,
    All,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListParams {
    status: Option<StatusFilter>,
    product_id: Option<u32>,
    limit: Option<u32>,
    cursor: Option<u64>,
}

/// `GET /atlas/api/order`: the caller's orders, newest first; `nextCursor` pages on.
/// List items carry no fills (fetch the order for them).
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
    Ok(axum::Json(serde_json::json!({ "orders": reports, "nextCursor": next })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookParams {
    depth: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalBookParams {
    depth: Option<usize>,
    level: Option<u8>,
}

async fn aggregated_book(
    app: &App,
    product: &ProductRow,
    depth: usize,
) -> Result<serde_json::Value, ApiError> {
    if depth == 0 || depth > DEPTH_MAX {
        return Err(ApiError::validation(format!("depth must be 1 to {DEPTH_MAX}")));
    }
    let id = product.id;
    let (seq, book) = app
        .seq
        .query(move |e| (e.last_seq(), e.depth(id, depth)))?
        .await
        .map_err(|_| ApiError::storage_unavailable())?;
    let book = book.ok_or_else(|| ApiError::not_found("PRODUCT_NOT_FOUND", "no such product"))?;
    let side = |levels: &[atlas_engine::LevelView]| {
        levels
            .iter()
            .map(|l| serde_json::json!({"price": format_price(l.price, product), "quantity": l.quantity.0, "orders": l.orders}))
            .collect::<Vec<_>>()
    };
    Ok(serde_json::json!({
        "productId": product.id.0,
        "symbol": product.symbol,
        "sequence": seq,
        "bids": side(&book.bids),
        "offers": side(&book.asks),
    }))
}

async fn listed_product(app: &App, id: u32) -> Result<ProductRow, ApiError> {
    app.product(ProductId(id)).ok_or_else(|| ApiError::not_found("PRODUCT_NOT_FOUND", "no such product"))
}

/// `GET /atlas/api/orderBook/{productId}?depth=N`.
pub async fn book(
    State(ctx): St,
    _caller: Caller,
    Id(id): Id<u32>,
    Params(p): Params<BookParams>,
) -> Result<impl IntoResponse, ApiError> {
    let product = listed_product(&ctx.app, id).await?;
    Ok(axum::Json(aggregated_book(&ctx.app, &product, p.depth.unwrap_or(DEPTH_DEFAULT)).await?))
}

/// `GET /atlas/internal/api/orderBook/{productId}?level=2|3`.
pub async fn book_internal(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u32>,
    Params(p): Params<InternalBookParams>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let app = &ctx.app;
    let product = listed_product(app, id).await?;
    match p.level.unwrap_or(2) {
        2 => Ok(axum::Json(aggregated_book(app, &product, p.depth.unwrap_or(DEPTH_DEFAULT)).await?)),
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
                    .map(|o| {
                        serde_json::json!({
                            "orderId": o.id.0,
                            "participantId": o.participant.0,
                            "price": format_price(o.price, &product),
                            "quantity": o.open.0,
                        })
                    })
                    .collect::<Vec<_>>()
            };
            Ok(axum::Json(serde_json::json!({
                "productId": product.id.0,
                "symbol": product.symbol,
                "sequence": seq,
                "bids": side(bids),
                "offers": side(asks),
            })))
        }
        _ => Err(ApiError::validation("level must be 2 or 3")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TapeParams {
    product_id: u32,
    since: Option<u64>,
    limit: Option<u32>,
}

/// `GET /atlas/api/trade?productId=&since=&limit=`: the public tape, anonymous.
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

/// `GET /atlas/api/trade/{id}`: only a trade the caller is party to.
pub async fn trade(State(ctx): St, caller: Caller, Id(id): Id<u64>) -> Result<impl IntoResponse, ApiError> {
    let me = caller.broker()?;
    let app = &ctx.app;
    let (t, busted) =
        app.db.trade(TradeId(id)).await?.filter(|(t, _)| party(t, me)).ok_or_else(trade_not_found)?;
    let product = product_for_order(app, t.product).await?;
    Ok(axum::Json(OwnTrade::of(&t, busted, me, &product)))
}

/// `GET /atlas/internal/api/trade/{id}`: any trade, with both parties.
pub async fn trade_internal(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u64>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let (t, busted) = ctx.app.db.trade(TradeId(id)).await?.ok_or_else(trade_not_found)?;
    Ok(axum::Json(internal_trade(&ctx.app, &t, busted).await?))
}

async fn internal_trade(app: &App, t: &TradeRow, busted: bool) -> Result<serde_json::Value, ApiError> {
    let product = product_for_order(app, t.product).await?;
    Ok(serde_json::json!({
        "trade": PublicTrade::of(t, &product),
        "makerOrderId": t.maker_order.0,
        "makerParticipantId": t.maker_participant.0,
        "takerOrderId": t.taker_order.0,
        "takerParticipantId": t.taker_participant.0,
        "busted": busted,
    }))
}

/// `DELETE /atlas/internal/api/trade/{id}`: busts a trade. The bust is a journaled
/// command (sequenced, with the operator as its actor); the trade then carries
/// `busted: true`, leaves the tape, volume and Coinbase fills, and the orders that
/// made it stand as matched.
pub async fn bust(State(ctx): St, caller: Caller, Id(id): Id<u64>) -> Result<impl IntoResponse, ApiError> {
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
    Ok(axum::Json(internal_trade(app, &t, true).await?))
}

/// `GET /atlas/api/trade/order/{orderId}`: the fills of one of the caller's orders.
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndOfDayParams {
    product_id: Option<u32>,
}

/// `POST /atlas/internal/api/orderBook/endOfDay[?productId=]`: expires DAY orders.
pub async fn end_of_day(
    State(ctx): St,
    caller: Caller,
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
    Ok(axum::Json(serde_json::json!({ "expired": expired, "sequence": receipt.seq.0 })))
}
