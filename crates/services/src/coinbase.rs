//! The Coinbase-Exchange-compatible REST surface under `/coinbase` on the external
//! listener: the subset `ccxt`'s `coinbaseexchange` uses, with Coinbase's field
//! names, product ids (`SYMBOL-CURRENCY`), errors (`{"message"}`) and request
//! signing (`CB-ACCESS-*`, checked by the gateway). It is a translation layer:
//! every order goes through the same services, identities and checks as the
//! native API.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use atlas_engine::{NewOrder, OrderType, SelfTradePrevention, TimeInForce};
use atlas_journal::projection::{OrderRow, OrderStatus, TradeRow};
use atlas_store::{OrderFilter, ProductRow};
use atlas_types::{OrderId, Qty, Side};

use crate::app::{App, St};
use crate::auth::Caller;
use crate::error::{ApiError, Params};
use crate::model::{format_price, now_ns, parse_price, parse_rfc3339, rfc3339};
use crate::orders;

/// An error in Coinbase's shape: the status and `{"message": …}`.
pub struct CbError(ApiError);

impl From<ApiError> for CbError {
    fn from(e: ApiError) -> CbError {
        CbError(e)
    }
}

impl From<atlas_journal::SubmitError> for CbError {
    fn from(e: atlas_journal::SubmitError) -> CbError {
        CbError(e.into())
    }
}

impl From<atlas_store::DbError> for CbError {
    fn from(e: atlas_store::DbError) -> CbError {
        CbError(e.into())
    }
}

impl IntoResponse for CbError {
    fn into_response(self) -> Response {
        let mut r = (self.0.status, axum::Json(json!({"message": self.0.detail}))).into_response();
        if let Some(s) = self.0.retry_after_s {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(s));
        }
        r
    }
}

type CbResult<T> = Result<T, CbError>;

fn bad(message: &str) -> CbError {
    CbError(ApiError::validation(message))
}

fn product_id(p: &ProductRow) -> String {
    format!("{}-{}", p.symbol, p.currency)
}

async fn product_by_cb_id(app: &App, id: &str) -> CbResult<ProductRow> {
    let not_found = || CbError(ApiError::not_found("PRODUCT_NOT_FOUND", "NotFound"));
    let (symbol, currency) = id.rsplit_once('-').ok_or_else(not_found)?;
    let p = app.product_by_symbol(symbol).ok_or_else(not_found)?;
    if p.currency == currency { Ok(p) } else { Err(not_found()) }
}

fn product_json(p: &ProductRow) -> Value {
    let tradable = p.status == "ACTIVE";
    json!({
        "id": product_id(p),
        "base_currency": p.symbol,
        "quote_currency": p.currency,
        "quote_increment": p.tick_size,
        "base_increment": p.lot_size.to_string(),
        "base_min_size": p.lot_size.to_string(),
        "display_name": format!("{}/{}", p.symbol, p.currency),
        "min_market_funds": "0",
        "margin_enabled": false,
        "fx_stablecoin": false,
        "post_only": false,
        "limit_only": false,
        "cancel_only": !tradable,
        "trading_disabled": !tradable,
        "status": if tradable { "online" } else { "offline" },
        "status_message": if tradable { "" } else { "halted" },
        "auction_mode": false,
    })
}

/// `GET /coinbase/products`.
pub async fn products(State(ctx): St) -> CbResult<impl IntoResponse> {
    let rows = ctx.app.listed_products();
    Ok(axum::Json(rows.iter().map(product_json).collect::<Vec<_>>()))
}

/// `GET /coinbase/products/{id}`.
pub async fn product(
    State(ctx): St,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> CbResult<impl IntoResponse> {
    Ok(axum::Json(product_json(&product_by_cb_id(&ctx.app, &id).await?)))
}

/// `GET /coinbase/currencies`: the quote currencies and the listed equities.
pub async fn currencies(State(ctx): St) -> CbResult<impl IntoResponse> {
    let rows = ctx.app.listed_products();
    let mut out: Vec<Value> = Vec::new();
    let mut quotes: Vec<&str> = rows.iter().map(|p| p.currency.as_str()).collect();
    quotes.sort_unstable();
    quotes.dedup();
    for q in quotes {
        out.push(json!({"id": q, "name": q, "min_size": "0.01", "status": "online", "message": "",
            "max_precision": "0.01", "convertible_to": [], "details": {"type": "fiat"}}));
    }
    for p in &rows {
        out.push(json!({"id": p.symbol, "name": p.description, "min_size": p.lot_size.to_string(), "status": "online",
            "message": "", "max_precision": p.lot_size.to_string(), "convertible_to": [], "details": {"type": "equity"}}));
    }
    Ok(axum::Json(out))
}

/// `GET /coinbase/time`.
pub async fn time() -> impl IntoResponse {
    let ns = now_ns();
    axum::Json(json!({"iso": rfc3339(ns), "epoch": ns as f64 / 1e9}))
}

/// `GET /coinbase/accounts`: Atlas matches and records trades but holds no
/// balances (clearing and custody are outside the exchange), so a caller has no
/// accounts here.
pub async fn accounts(caller: Result<Caller, ApiError>) -> CbResult<impl IntoResponse> {
    caller?.broker()?;
    Ok(axum::Json(Vec::<Value>::new()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookParams {
    level: Option<u8>,
}

/// `GET /coinbase/products/{id}/book?level=1|2|3`.
pub async fn book(
    State(ctx): St,
    axum::extract::Path(id): axum::extract::Path<String>,
    Params(p): Params<BookParams>,
) -> CbResult<impl IntoResponse> {
    let app = &ctx.app;
    let product = product_by_cb_id(app, &id).await?;
    let pid = product.id;
    let level = p.level.unwrap_or(1);
    let unavailable = |_| CbError(ApiError::storage_unavailable());
    match level {
        1 | 2 => {
            let depth = if level == 1 { 1 } else { 50 };
            let (seq, book) =
                app.seq.query(move |e| (e.last_seq(), e.depth(pid, depth)))?.await.map_err(unavailable)?;
            let book = book.ok_or_else(|| bad("product not in the book"))?;
            let side = |levels: &[atlas_engine::LevelView]| {
                levels
                    .iter()
                    .map(|l| json!([format_price(l.price, &product), l.quantity.0.to_string(), l.orders]))
                    .collect::<Vec<_>>()
            };
            Ok(axum::Json(json!({"sequence": seq, "bids": side(&book.bids), "asks": side(&book.asks),
                "auction_mode": false, "auction": null, "time": rfc3339(now_ns())})))
        }
        3 => {
            let (seq, bids, asks) = app
                .seq
                .query(move |e| {
                    (
                        e.last_seq(),
                        e.orders_by_priority(pid, Side::Buy),
                        e.orders_by_priority(pid, Side::Sell),
                    )
                })?
                .await
                .map_err(unavailable)?;
            // Level 3 is anonymous: order ids, no participants.
            let side = |orders: Option<Vec<atlas_engine::RestingView>>| {
                orders
                    .unwrap_or_default()
                    .iter()
                    .take(10_000)
                    .map(|o| {
                        json!([format_price(o.price, &product), o.open.0.to_string(), o.id.0.to_string()])
                    })
                    .collect::<Vec<_>>()
            };
            Ok(axum::Json(json!({"sequence": seq, "bids": side(bids), "asks": side(asks)})))
        }
        _ => Err(bad("level must be 1, 2 or 3")),
    }
}

/// `GET /coinbase/products/{id}/ticker`.
pub async fn ticker(
    State(ctx): St,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> CbResult<impl IntoResponse> {
    let app = &ctx.app;
    let product = product_by_cb_id(app, &id).await?;
    let pid = product.id;
    let best =
        app.seq.query(move |e| e.best(pid))?.await.map_err(|_| CbError(ApiError::storage_unavailable()))?;
    let (bid, ask) = best.unwrap_or((None, None));
    let (last, volume) = crate::marketdata::last_trade_and_volume(app, pid).await?;
    let last = last.as_ref();
    Ok(axum::Json(json!({
        "trade_id": last.map(|t| t.id.0),
        "price": last.map(|t| format_price(t.price, &product)),
        "size": last.map(|t| t.quantity.0.to_string()),
        "time": last.map(|t| rfc3339(t.time.0)),
        "bid": bid.map(|l| format_price(l.price, &product)),
        "ask": ask.map(|l| format_price(l.price, &product)),
        "volume": volume.to_string(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradesParams {
    limit: Option<u32>,
    before: Option<u64>,
    after: Option<u64>,
}

/// `GET /coinbase/products/{id}/trades`: newest first; `side` is the maker's.
pub async fn trades(
    State(ctx): St,
    axum::extract::Path(id): axum::extract::Path<String>,
    Params(p): Params<TradesParams>,
) -> CbResult<impl IntoResponse> {
    let app = &ctx.app;
    let product = product_by_cb_id(app, &id).await?;
    if p.before.is_some() || p.after.is_some() {
        return Err(bad("before/after paging is not supported here; use limit"));
    }
    let rows = app.db.latest_trades(product.id, p.limit.unwrap_or(100).clamp(1, 1_000)).await?;
    Ok(axum::Json(
        rows.iter()
            .map(|t| {
                json!({"time": rfc3339(t.time.0), "trade_id": t.id.0, "price": format_price(t.price, &product),
                    "size": t.quantity.0.to_string(), "side": side(t.aggressor.opposite())})
            })
            .collect::<Vec<_>>(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandleParams {
    granularity: Option<i64>,
    start: Option<String>,
    end: Option<String>,
}

/// Candles per request, at most (Coinbase's limit too).
const CANDLES_MAX: i64 = 300;
/// Trades read for one candle request, at most.
const CANDLE_TRADES_MAX: u32 = 200_000;

/// `GET /coinbase/products/{id}/candles?granularity=&start=&end=`:
/// `[time, low, high, open, close, volume]`, newest first, from the trades table.
pub async fn candles(
    State(ctx): St,
    axum::extract::Path(id): axum::extract::Path<String>,
    Params(p): Params<CandleParams>,
) -> CbResult<impl IntoResponse> {
    let app = &ctx.app;
    let product = product_by_cb_id(app, &id).await?;
    let granularity = p.granularity.unwrap_or(60);
    if ![60, 300, 900, 3600, 21600, 86400].contains(&granularity) {
        return Err(bad("granularity must be one of 60, 300, 900, 3600, 21600, 86400"));
    }
    let step_ns = granularity * 1_000_000_000;
    let end = match &p.end {
        Some(e) => parse_rfc3339(e).ok_or_else(|| bad("end must be RFC 3339"))?,
        None => now_ns(),
    };
    let start = match &p.start {
        Some(s) => parse_rfc3339(s).ok_or_else(|| bad("start must be RFC 3339"))?,
        None => end - CANDLES_MAX * step_ns,
    };
    if start >= end || (end - start) / step_ns > CANDLES_MAX {
        return Err(bad("the range must be positive and hold at most 300 candles"));
    }
    let start = start - start.rem_euclid(step_ns);
    let rows = app.db.trades_between(product.id, start, end, CANDLE_TRADES_MAX).await?;
    let fmt = |p: i64| format_price(atlas_types::Price(p), &product);
    let out: Vec<Value> = crate::marketdata::candle_buckets(&rows, step_ns)
        .iter()
        .rev()
        .map(|(b, c)| {
            json!([
                b / 1_000_000_000,
                fmt(c.low),
                fmt(c.high),
                fmt(c.open),
                fmt(c.close),
                c.volume.to_string()
            ])
        })
        .collect();
    Ok(axum::Json(out))
}

fn side(s: Side) -> &'static str {
    match s {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// An order in Coinbase's shape.
fn order_json(row: &OrderRow, trades: &[TradeRow], product: &ProductRow) -> Value {
    let executed: i128 = trades
        .iter()
        .filter(|t| t.maker_order == row.id || t.taker_order == row.id)
        .map(|t| i128::from(t.price.0) * i128::from(t.quantity.0))
        .sum();
    let executed = if trades.is_empty() { row.notional } else { executed };
    let scale = u8::try_from(product.price_scale).unwrap_or(0);
    let executed_value = i64::try_from(executed)
        .map_or_else(|_| "0".to_owned(), |v| atlas_types::decimal::format_units(v, scale));
    let (status, done_reason) = match row.status {
        OrderStatus::New => ("active", None),
        OrderStatus::Booked | OrderStatus::PartiallyFilled => ("open", None),
        OrderStatus::Filled => ("done", Some("filled")),
        OrderStatus::Cancelled | OrderStatus::PartiallyCancelled | OrderStatus::Expired => {
            ("done", Some("canceled"))
        }
    };
    let order_type = match row.order_type {
        OrderType::Limit | OrderType::StopLimit => "limit",
        OrderType::Market | OrderType::Stop => "market",
    };
    let tif = match row.time_in_force {
        TimeInForce::Gtc | TimeInForce::Day => "GTC",
        TimeInForce::Ioc => "IOC",
        TimeInForce::Fok => "FOK",
    };
    let mut o = json!({
        "id": row.id.0.to_string(),
        "product_id": product_id(product),
        "side": side(row.side),
        "type": order_type,
        "size": row.original.0.to_string(),
        "time_in_force": tif,
        "post_only": row.post_only,
        "created_at": rfc3339(row.entry_time.0),
        "fill_fees": "0",
        "filled_size": row.traded.0.to_string(),
        "executed_value": executed_value,
        "status": status,
        "settled": status == "done",
    });
    if let Some(p) = row.price {
        o["price"] = json!(format_price(p, product));
    }
    if let Some(p) = row.stop_price {
        o["stop_price"] = json!(format_price(p, product));
        o["stop"] = json!(if row.side == Side::Buy { "entry" } else { "loss" });
    }
    if let Some(c) = &row.client_order_id {
        o["client_oid"] = json!(c);
    }
    if let Some(reason) = done_reason {
        o["done_at"] = json!(rfc3339(row.update_time.0));
        o["done_reason"] = json!(reason);
    }
    o
}

/// `POST /coinbase/orders`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CbNewOrder {
    product_id: String,
    side: String,
    #[serde(rename = "type")]
    order_type: Option<String>,
    size: Option<String>,
    price: Option<String>,
    funds: Option<String>,
    client_oid: Option<String>,
    time_in_force: Option<String>,
    cancel_after: Option<String>,
    post_only: Option<bool>,
    stop: Option<String>,
    stop_price: Option<String>,
    stp: Option<String>,
    profile_id: Option<String>,
}

pub async fn create_order(
    State(ctx): St,
    caller: Result<Caller, ApiError>,
    body: Result<axum::Json<CbNewOrder>, axum::extract::rejection::JsonRejection>,
) -> CbResult<impl IntoResponse> {
    let caller = caller?;
    let me = caller.broker()?;
    let axum::Json(b) = body.map_err(|e| bad(&e.body_text()))?;
    let app = &ctx.app;
    let product = product_by_cb_id(app, &b.product_id).await?;
    if b.funds.is_some() {
        return Err(bad("funds is not supported: give size (a quantity)"));
    }
    if b.cancel_after.is_some() || b.time_in_force.as_deref() == Some("GTT") {
        return Err(bad("GTT orders are not supported"));
    }
    let _ = (&b.stop, &b.profile_id);
    let side = match b.side.as_str() {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        _ => return Err(bad("side must be buy or sell")),
    };
    let size = b.size.as_deref().ok_or_else(|| bad("size is required"))?;
    let quantity: i64 = size.parse().map_err(|_| bad("size must be a whole number of shares"))?;
    let stop_price = b.stop_price.as_deref().map(|p| parse_price(p, &product, "stop_price")).transpose()?;
    let order_type = match (b.order_type.as_deref().unwrap_or("limit"), stop_price.is_some()) {
        ("limit", false) => OrderType::Limit,
        ("limit", true) => OrderType::StopLimit,
        ("market", false) => OrderType::Market,
        ("market", true) => OrderType::Stop,
        _ => return Err(bad("type must be limit or market")),
    };
    let time_in_force = match b.time_in_force.as_deref().unwrap_or("GTC") {
        "GTC" => TimeInForce::Gtc,
        "IOC" => TimeInForce::Ioc,
        "FOK" => TimeInForce::Fok,
        _ => return Err(bad("time_in_force must be GTC, IOC or FOK")),
    };
    let self_trade_prevention = match b.stp.as_deref() {
        None => SelfTradePrevention::None,
        Some("dc") => SelfTradePrevention::Decrement,
        Some("co") => SelfTradePrevention::CancelOldest,
        Some("cn") => SelfTradePrevention::CancelNewest,
        Some("cb") => SelfTradePrevention::CancelBoth,
        Some(_) => return Err(bad("stp must be dc, co, cn or cb")),
    };
    let price = match order_type {
        OrderType::Limit | OrderType::StopLimit => {
            Some(parse_price(b.price.as_deref().ok_or_else(|| bad("price is required"))?, &product, "price")?)
        }
        _ => None,
    };
    let order = NewOrder {
        order_id: OrderId(0),
        participant: me,
        product: product.id,
        side,
        order_type,
        time_in_force,
        quantity: Qty(quantity),
        price,
        stop_price,
        post_only: b.post_only.unwrap_or(false),
        self_trade_prevention,
    };
    let (_, row, trades) = orders::place(app, &caller, &product, order, b.client_oid).await?;
    let trades: Vec<TradeRow> = trades.into_iter().map(|(t, _)| t).collect();
    Ok(axum::Json(order_json(&row, &trades, &product)))
}

async fn order_out(app: &App, row: &OrderRow) -> CbResult<Value> {
    let product = app.product_any(row.product).ok_or_else(|| CbError(ApiError::internal()))?;
    let trades: Vec<TradeRow> = app.db.trades_of_order(row.id).await?.into_iter().map(|(t, _)| t).collect();
    Ok(order_json(row, &trades, &product))
}

fn order_not_found() -> CbError {
    CbError(ApiError::not_found("ORDER_NOT_FOUND", "NotFound"))
}

/// `GET /coinbase/orders/{id}` and `GET /coinbase/orders/client:{client_oid}`.
pub async fn get_order(
    State(ctx): St,
    caller: Result<Caller, ApiError>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> CbResult<impl IntoResponse> {
    let caller = caller?;
    let me = caller.broker()?;
    let app = &ctx.app;
    let row = match id.strip_prefix("client:") {
        Some(client) => {
            let id = orders::by_client_order_id(app, me, client).await?.ok_or_else(order_not_found)?;
            orders::own_order(app, &caller, id.0).await?
        }
        None => orders::own_order(app, &caller, id.parse().map_err(|_| order_not_found())?).await?,
    };
    Ok(axum::Json(order_out(app, &row).await?))
}

/// `DELETE /coinbase/orders/{id}`: answers the id, as Coinbase does.
pub async fn cancel_order(
    State(ctx): St,
    caller: Result<Caller, ApiError>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> CbResult<impl IntoResponse> {
    let caller = caller?;
    let me = caller.broker()?;
    let app = &ctx.app;
    let order_id = match id.strip_prefix("client:") {
        Some(client) => orders::by_client_order_id(app, me, client).await?.ok_or_else(order_not_found)?.0,
        None => id.parse().map_err(|_| order_not_found())?,
    };
    let row = orders::cancel_one(app, &caller, order_id).await?;
    Ok(axum::Json(json!(row.id.0.to_string())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelAllParams {
    product_id: Option<String>,
    profile_id: Option<String>,
}

/// `DELETE /coinbase/orders`: the ids cancelled.
pub async fn cancel_all(
    State(ctx): St,
    caller: Result<Caller, ApiError>,
    Params(p): Params<CancelAllParams>,
) -> CbResult<impl IntoResponse> {
    let caller = caller?;
    let _ = p.profile_id;
    let app = &ctx.app;
    let product = match &p.product_id {
        Some(id) => Some(product_by_cb_id(app, id).await?.id),
        None => None,
    };
    let ids = orders::cancel_many(app, &caller, product).await?;
    Ok(axum::Json(ids.iter().map(u64::to_string).collect::<Vec<_>>()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    product_id: Option<String>,
    limit: Option<u32>,
    profile_id: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

/// `GET /coinbase/orders?status=open|pending|active|done|all&product_id=`.
pub async fn list_orders(
    State(ctx): St,
    caller: Result<Caller, ApiError>,
    Params(p): Params<ListParams>,
) -> CbResult<impl IntoResponse> {
    let caller = caller?;
    let me = caller.broker()?;
    let _ = &p.profile_id;
    if p.before.is_some() {
        return Err(bad("before is not supported; page with after"));
    }
    let app = &ctx.app;
    let filter = match p.status.as_deref().unwrap_or("open") {
        "open" | "pending" | "active" => OrderFilter::Open,
        "done" => OrderFilter::Done,
        "all" => OrderFilter::All,
        _ => return Err(bad("status must be open, pending, active, done or all")),
    };
    let product = match &p.product_id {
        Some(id) => Some(product_by_cb_id(app, id).await?.id),
        None => None,
    };
    let before = p
        .after
        .as_deref()
        .map(|a| a.parse().map(OrderId))
        .transpose()
        .map_err(|_| bad("after must be an order id"))?;
    let rows = app.db.orders(me, filter, product, before, p.limit.unwrap_or(100).clamp(1, 1_000)).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(order_out(app, row).await?);
    }
    Ok(axum::Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillsParams {
    product_id: Option<String>,
    order_id: Option<String>,
    limit: Option<u32>,
    profile_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

/// `GET /coinbase/fills?product_id=|order_id=`: the caller's fills, newest first.
pub async fn fills(
    State(ctx): St,
    caller: Result<Caller, ApiError>,
    Params(p): Params<FillsParams>,
) -> CbResult<impl IntoResponse> {
    let caller = caller?;
    let me = caller.broker()?;
    let _ = &p.profile_id;
    if p.before.is_some() || p.after.is_some() {
        return Err(bad("before/after paging is not supported here; use limit and dates"));
    }
    let app = &ctx.app;
    let since = p
        .start_date
        .as_deref()
        .map(|d| parse_rfc3339(d).ok_or_else(|| bad("start_date must be RFC 3339")))
        .transpose()?;
    let until = p
        .end_date
        .as_deref()
        .map(|d| parse_rfc3339(d).ok_or_else(|| bad("end_date must be RFC 3339")))
        .transpose()?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1_000);
    let trades: Vec<TradeRow> = match (&p.order_id, &p.product_id) {
        (Some(order), _) => {
            let row = orders::own_order(app, &caller, order.parse().map_err(|_| order_not_found())?).await?;
            app.db
                .trades_of_order(row.id)
                .await?
                .into_iter()
                .filter(|(_, busted)| !busted)
                .map(|(t, _)| t)
                .collect()
        }
        (None, Some(product)) => {
            let id = product_by_cb_id(app, product).await?.id;
            app.db
                .fills(me, Some(id), limit)
                .await?
                .into_iter()
                .filter(|(_, busted)| !busted)
                .map(|(t, _)| t)
                .collect()
        }
        (None, None) => return Err(bad("product_id or order_id is required")),
    };
    let mut products: Vec<ProductRow> = Vec::new();
    let mut out = Vec::new();
    for t in
        trades.iter().filter(|t| since.is_none_or(|s| t.time.0 >= s) && until.is_none_or(|u| t.time.0 < u))
    {
        if !products.iter().any(|p| p.id == t.product) {
            products.push(app.product_any(t.product).ok_or_else(|| CbError(ApiError::internal()))?);
        }
        let product =
            products.iter().find(|p| p.id == t.product).ok_or_else(|| CbError(ApiError::internal()))?;
        let maker = t.maker_participant == me;
        let (order, my_side) =
            if maker { (t.maker_order, t.aggressor.opposite()) } else { (t.taker_order, t.aggressor) };
        out.push(json!({
            "created_at": rfc3339(t.time.0),
            "trade_id": t.id.0,
            "product_id": product_id(product),
            "order_id": order.0.to_string(),
            "liquidity": if maker { "M" } else { "T" },
            "price": format_price(t.price, product),
            "size": t.quantity.0.to_string(),
            "fee": "0",
            "side": side(my_side),
            "settled": true,
        }));
    }
    Ok(axum::Json(out))
}

/// Routes `/coinbase/**`.
pub fn routes() -> axum::Router<std::sync::Arc<crate::app::Ctx>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/coinbase/products", get(products))
        .route("/coinbase/products/{id}", get(product))
        .route("/coinbase/products/{id}/book", get(book))
        .route("/coinbase/products/{id}/ticker", get(ticker))
        .route("/coinbase/products/{id}/trades", get(trades))
        .route("/coinbase/products/{id}/candles", get(candles))
        .route("/coinbase/currencies", get(currencies))
        .route("/coinbase/time", get(time))
        .route("/coinbase/accounts", get(accounts))
        .route("/coinbase/orders", get(list_orders).post(create_order).delete(cancel_all))
        .route("/coinbase/orders/{id}", get(get_order).delete(cancel_order))
        .route("/coinbase/fills", get(fills))
}
