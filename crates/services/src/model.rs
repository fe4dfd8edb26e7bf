//! The API's JSON shapes (API.md) and their conversions from the engine's and the
//! tables' types. Request DTOs refuse unknown fields and carry no server-owned
//! field; prices travel as decimal strings, quantities as integers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use atlas_engine::{OrderType, Reject, SelfTradePrevention, TimeInForce};
use atlas_journal::projection::{OrderRow, OrderStatus, TradeRow};
use atlas_store::{ParticipantRow, ProductRow};
use atlas_types::decimal::{format_units, parse_units};
use atlas_types::{Price, Side};

use crate::error::ApiError;

/// RFC 3339 UTC from nanoseconds since the epoch.
pub fn rfc3339(ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Nanoseconds since the epoch of an RFC 3339 time, if it is one.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A product as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Equity {
    id: u32,
    /// Unique; 1 to 16 of A-Z, 0-9, '.', '_', starting with a letter.
    #[schema(example = "ACME")]
    symbol: String,
    description: String,
    /// Always `EQUITY`.
    #[schema(example = "EQUITY")]
    product_type: String,
    /// Prices are positive multiples of this (decimal string).
    #[schema(example = "0.01")]
    tick_size: String,
    /// Quantities are positive multiples of this.
    lot_size: i64,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    currency: String,
    /// `ACTIVE`, `HALTED` or `DELETED`.
    #[schema(example = "ACTIVE")]
    status: String,
}

impl From<&ProductRow> for Equity {
    fn from(p: &ProductRow) -> Equity {
        Equity {
            id: p.id.0,
            symbol: p.symbol.clone(),
            description: p.description.clone(),
            product_type: p.product_type.clone(),
            tick_size: p.tick_size.clone(),
            lot_size: p.lot_size,
            currency: p.currency.clone(),
            status: p.status.clone(),
        }
    }
}

/// A participant as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Broker {
    id: u32,
    name: String,
    /// Always `BROKER`.
    #[schema(example = "BROKER")]
    participant_type: String,
    /// `ACTIVE` or `DISABLED`.
    #[schema(example = "ACTIVE")]
    status: String,
}

impl From<&ParticipantRow> for Broker {
    fn from(p: &ParticipantRow) -> Broker {
        Broker {
            id: p.id.0,
            name: p.name.clone(),
            participant_type: p.participant_type.clone(),
            status: p.status.clone(),
        }
    }
}

/// A new order (`POST /atlas/api/order`). Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 10, "price": "10.05", "clientOrderId": "my-order-1"}))]
pub struct NewOrderBody {
    pub product_id: u32,
    pub side: SideDto,
    #[serde(rename = "type")]
    pub order_type: OrderTypeDto,
    /// Positive multiple of the product's lot size.
    pub quantity: i64,
    /// Limit price (LIMIT, STOP_LIMIT), a decimal string on the product's tick.
    pub price: Option<String>,
    /// Trigger price (STOP, STOP_LIMIT).
    pub stop_price: Option<String>,
    /// Default GTC.
    pub time_in_force: Option<TimeInForceDto>,
    /// Rejected with `POST_ONLY_WOULD_TRADE` instead of trading on entry.
    pub post_only: Option<bool>,
    /// Default NONE.
    pub self_trade_prevention: Option<StpDto>,
    /// Up to 64 printable ASCII characters, unique per participant and trading day:
    /// a retry with the same id returns the original order (200) and creates nothing.
    pub client_order_id: Option<String>,
    /// Accepted only if it is the caller's own participant.
    pub participant_id: Option<u32>,
}

/// An amend (`PUT /atlas/api/order/{id}`): a smaller quantity keeps time priority;
/// a larger one or a new price loses it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AmendBody {
    /// New total quantity (must exceed what already traded).
    pub quantity: Option<i64>,
    pub price: Option<String>,
    pub stop_price: Option<String>,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = Side)]
pub enum SideDto {
    Buy,
    Sell,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = OrderType)]
pub enum OrderTypeDto {
    Limit,
    Market,
    Stop,
    StopLimit,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = TimeInForce)]
pub enum TimeInForceDto {
    Gtc,
    Day,
    Ioc,
    Fok,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = SelfTradePrevention)]
pub enum StpDto {
    None,
    CancelNewest,
    CancelOldest,
    CancelBoth,
    Decrement,
}

impl From<SideDto> for Side {
    fn from(s: SideDto) -> Side {
        match s {
            SideDto::Buy => Side::Buy,
            SideDto::Sell => Side::Sell,
        }
    }
}

impl From<OrderTypeDto> for OrderType {
    fn from(t: OrderTypeDto) -> OrderType {
        match t {
            OrderTypeDto::Limit => OrderType::Limit,
            OrderTypeDto::Market => OrderType::Market,
            OrderTypeDto::Stop => OrderType::Stop,
            OrderTypeDto::StopLimit => OrderType::StopLimit,
        }
    }
}

impl From<TimeInForceDto> for TimeInForce {
    fn from(t: TimeInForceDto) -> TimeInForce {
        match t {
            TimeInForceDto::Gtc => TimeInForce::Gtc,
            TimeInForceDto::Day => TimeInForce::Day,
            TimeInForceDto::Ioc => TimeInForce::Ioc,
            TimeInForceDto::Fok => TimeInForce::Fok,
        }
    }
}

impl From<StpDto> for SelfTradePrevention {
    fn from(s: StpDto) -> SelfTradePrevention {
        match s {
            StpDto::None => SelfTradePrevention::None,
            StpDto::CancelNewest => SelfTradePrevention::CancelNewest,
            StpDto::CancelOldest => SelfTradePrevention::CancelOldest,
            StpDto::CancelBoth => SelfTradePrevention::CancelBoth,
            StpDto::Decrement => SelfTradePrevention::Decrement,
        }
    }
}

/// Parses a price in the product's scale. Too many decimals cannot be on the
/// tick; anything else malformed is a validation error.
pub fn parse_price(text: &str, product: &ProductRow, field: &str) -> Result<Price, ApiError> {
    let scale = u8::try_from(product.price_scale).map_err(|_| ApiError::internal())?;
    match parse_units(text, scale) {
        Ok(units) if units > 0 => Ok(Price(units)),
        Ok(_) => Err(ApiError::validation(format!("{field} must be positive"))),
        Err(atlas_types::decimal::DecimalError::TooPrecise(_)) => Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "PRICE_NOT_ON_TICK",
            format!("{field} is not a multiple of the tick size {}", product.tick_size),
        )),
        Err(e) => Err(ApiError::validation(format!("{field}: {e}"))),
    }
}

/// Formats a price in the product's scale.
pub fn format_price(p: Price, product: &ProductRow) -> String {
    format_units(p.0, u8::try_from(product.price_scale).unwrap_or(0))
}

/// An engine rejection as an API error.
pub fn reject(r: Reject) -> ApiError {
    use axum::http::StatusCode;
    let status = match r {
        Reject::UnknownProduct | Reject::UnknownOrder | Reject::UnknownTrade => StatusCode::NOT_FOUND,
        Reject::OrderNotOpen | Reject::ProductExists | Reject::DuplicateOrderId => StatusCode::CONFLICT,
        Reject::MarketHalted => StatusCode::CONFLICT,
        Reject::CapacityExhausted => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let detail = match r {
        Reject::UnknownProduct => "no such product",
        Reject::UnknownOrder => "no such order",
        Reject::UnknownTrade => "no such trade",
        Reject::OrderNotOpen => "the order is no longer open",
        Reject::MarketHalted => "trading in this product is halted",
        Reject::QuantityNotOnLot => "quantity is not a multiple of the lot size",
        Reject::PriceNotOnTick => "price is not a multiple of the tick size",
        Reject::PostOnlyWouldTrade => "a post-only order would have traded",
        Reject::CapacityExhausted => "the book is full",
        // The engine's own words, which name the reason (a replace's stop
        // price, a quantity below what executed, ...).
        other => return ApiError::new(status, r.code(), other.to_string()),
    };
    ApiError::new(status, r.code(), detail)
}

/// A fill as the OrderReport lists it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fill {
    /// The trade id.
    id: u64,
    price: String,
    quantity: i64,
    /// RFC 3339 UTC.
    time: String,
    #[schema(value_type = Liquidity)]
    liquidity: &'static str,
    /// An operator busted the trade.
    busted: bool,
}

/// Which side of a trade an order was on.
#[derive(ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
pub enum Liquidity {
    /// The resting order.
    MAKER,
    /// The incoming order.
    TAKER,
}

/// An order's status.
#[derive(ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms, non_camel_case_types)]
pub enum Status {
    /// A stop order waiting for its trigger.
    NEW,
    /// Resting, nothing traded yet.
    BOOKED,
    /// Resting, partly traded.
    PARTIALLY_FILLED,
    /// Traded completely.
    FILLED,
    /// Done without trading.
    CANCELLED,
    /// Done after trading part of it.
    PARTIALLY_CANCELLED,
    /// Never stored: rejected orders answer with an error.
    REJECTED,
    /// A DAY order that reached the end of its trading day.
    EXPIRED,
}

/// An order as it stands after matching and commit.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderReport {
    id: u64,
    client_order_id: Option<String>,
    product_id: u32,
    participant_id: u32,
    #[schema(value_type = SideDto)]
    side: &'static str,
    #[serde(rename = "type")]
    #[schema(value_type = OrderTypeDto)]
    order_type: &'static str,
    #[schema(value_type = TimeInForceDto)]
    time_in_force: &'static str,
    post_only: bool,
    #[schema(value_type = StpDto)]
    self_trade_prevention: &'static str,
    price: Option<String>,
    stop_price: Option<String>,
    /// Total quantity (after amends).
    original_quantity: i64,
    traded_quantity: i64,
    /// Resting in the book now (0 for a stop waiting for its trigger).
    booked_quantity: i64,
    cancelled_quantity: i64,
    /// Volume-weighted price of the fills.
    average_price: Option<String>,
    #[schema(value_type = Status)]
    status: &'static str,
    /// RFC 3339 UTC.
    entry_time: String,
    update_time: String,
    /// The fills (absent in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    trades: Option<Vec<Fill>>,
}

/// Digits beyond the price scale in an average price.
const AVERAGE_EXTRA_DIGITS: u32 = 4;

fn average(row: &OrderRow, product: &ProductRow) -> Option<String> {
    if row.traded.0 <= 0 {
        return None;
    }
    let units = row.notional * 10i128.pow(AVERAGE_EXTRA_DIGITS) / i128::from(row.traded.0);
    let units = i64::try_from(units).ok()?;
    let text = format_units(units, u8::try_from(product.price_scale + AVERAGE_EXTRA_DIGITS).ok()?);
    // Trailing zeros beyond the price scale say nothing.
    let scale = product.price_scale as usize;
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let keep = frac.trim_end_matches('0').len().max(scale);
    Some(if keep == 0 { int.to_owned() } else { format!("{int}.{}", &frac[..keep]) })
}

impl OrderReport {
    /// Builds the report of `row` with its `trades` (each with its busted flag).
    pub fn of<'t>(
        row: &OrderRow,
        trades: impl IntoIterator<Item = (&'t TradeRow, bool)>,
        product: &ProductRow,
    ) -> OrderReport {
        use atlas_journal::projection::codes;
        let fills = trades
            .into_iter()
            .filter(|(t, _)| t.maker_order == row.id || t.taker_order == row.id)
            .map(|(t, busted)| Fill {
                id: t.id.0,
                price: format_price(t.price, product),
                quantity: t.quantity.0,
                time: rfc3339(t.time.0),
                liquidity: if t.maker_order == row.id { "MAKER" } else { "TAKER" },
                busted,
            })
            .collect();
        let waiting_stop = row.status == OrderStatus::New;
        OrderReport {
            id: row.id.0,
            client_order_id: row.client_order_id.clone(),
            product_id: row.product.0,
            participant_id: row.participant.0,
            side: codes::side(row.side),
            order_type: codes::order_type(row.order_type),
            time_in_force: codes::time_in_force(row.time_in_force),
            post_only: row.post_only,
            self_trade_prevention: codes::stp(row.self_trade_prevention),
            price: row.price.map(|p| format_price(p, product)),
            stop_price: row.stop_price.map(|p| format_price(p, product)),
            original_quantity: row.original.0,
            traded_quantity: row.traded.0,
            booked_quantity: if waiting_stop { 0 } else { row.open.0 },
            cancelled_quantity: row.cancelled.0,
            average_price: average(row, product),
            status: row.status.as_str(),
            entry_time: rfc3339(row.entry_time.0),
            update_time: rfc3339(row.update_time.0),
            trades: Some(fills),
        }
    }

    /// The report without its fills (list items).
    pub fn without_trades(self) -> OrderReport {
        OrderReport { trades: None, ..self }
    }
}

/// A trade on the public tape (anonymous).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicTrade {
    id: u64,
    product_id: u32,
    price: String,
    quantity: i64,
    time: String,
    /// The incoming order's side.
    #[schema(value_type = SideDto)]
    aggressor_side: &'static str,
}

impl PublicTrade {
    /// The tape's view of a trade.
    pub fn of(t: &TradeRow, product: &ProductRow) -> PublicTrade {
        PublicTrade {
            id: t.id.0,
            product_id: t.product.0,
            price: format_price(t.price, product),
            quantity: t.quantity.0,
            time: rfc3339(t.time.0),
            aggressor_side: atlas_journal::projection::codes::side(t.aggressor),
        }
    }
}

/// A trade as one of its parties sees it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnTrade {
    id: u64,
    product_id: u32,
    price: String,
    quantity: i64,
    time: String,
    #[schema(value_type = SideDto)]
    aggressor_side: &'static str,
    /// The caller's order in it.
    order_id: u64,
    /// The caller's side.
    #[schema(value_type = SideDto)]
    side: &'static str,
    #[schema(value_type = Liquidity)]
    liquidity: &'static str,
    /// An operator busted the trade.
    busted: bool,
}

impl OwnTrade {
    /// `t` as `participant` sees it (who must be a party to it).
    pub fn of(
        t: &TradeRow,
        busted: bool,
        participant: atlas_types::ParticipantId,
        product: &ProductRow,
    ) -> OwnTrade {
        let maker = t.maker_participant == participant;
        let my_side = if maker { t.aggressor.opposite() } else { t.aggressor };
        OwnTrade {
            id: t.id.0,
            product_id: t.product.0,
            price: format_price(t.price, product),
            quantity: t.quantity.0,
            time: rfc3339(t.time.0),
            aggressor_side: atlas_journal::projection::codes::side(t.aggressor),
            order_id: if maker { t.maker_order.0 } else { t.taker_order.0 },
            side: atlas_journal::projection::codes::side(my_side),
            liquidity: if maker { "MAKER" } else { "TAKER" },
            busted,
        }
    }
}
