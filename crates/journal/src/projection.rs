//! Order and trade rows derived from the journal: what the services will query.
//!
//! A pure fold over (entry, events): it keeps the rows of open orders (resting, or
//! stops waiting for their trigger) and, per batch, collects the final state of
//! every order the batch changed and every trade it printed. The storage backends
//! will write these in the same transaction as the batch's journal row, so the
//! query tables never run ahead of, or behind, the journal.

use std::collections::HashMap;

use atlas_engine::{CommandKind, Event, OrderType, SelfTradePrevention, TimeInForce};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Seq, Side, Timestamp, TradeId};

use crate::Entry;

/// An order's status, as the API reports it. Rejected orders are never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// A stop order waiting for its trigger.
    New,
    /// Resting, nothing traded yet.
    Booked,
    /// Resting, partly traded.
    PartiallyFilled,
    /// Traded completely.
    Filled,
    /// Done without trading (cancelled, or the unfilled rest of IOC/market/FOK).
    Cancelled,
    /// Done after trading part of it.
    PartiallyCancelled,
    /// A DAY order that reached the end of its trading day.
    Expired,
}

impl OrderStatus {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::New => "NEW",
            OrderStatus::Booked => "BOOKED",
            OrderStatus::PartiallyFilled => "PARTIALLY_FILLED",
            OrderStatus::Filled => "FILLED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::PartiallyCancelled => "PARTIALLY_CANCELLED",
            OrderStatus::Expired => "EXPIRED",
        }
    }
}

/// One order's state, as the orders table holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRow {
    /// The order.
    pub id: OrderId,
    /// The client's id for it, if given.
    pub client_order_id: Option<String>,
    /// The product.
    pub product: ProductId,
    /// The owner.
    pub participant: ParticipantId,
    /// Buy or sell.
    pub side: Side,
    /// Its type as entered.
    pub order_type: OrderType,
    /// Its time in force.
    pub time_in_force: TimeInForce,
    /// Post-only flag.
    pub post_only: bool,
    /// Self-trade prevention.
    pub self_trade_prevention: SelfTradePrevention,
    /// Limit price (after amends).
    pub price: Option<Price>,
    /// Stop price (after amends).
    pub stop_price: Option<Price>,
    /// Total quantity (after amends).
    pub original: Qty,
    /// Traded so far.
    pub traded: Qty,
    /// Cancelled (or expired) so far.
    pub cancelled: Qty,
    /// Still working: resting, or waiting as a stop.
    pub open: Qty,
    /// Sum of price × quantity over its trades, for the average price.
    pub notional: i128,
    /// Its status.
    pub status: OrderStatus,
    /// The entry that created it.
    pub entry_seq: Seq,
    /// When.
    pub entry_time: Timestamp,
    /// The last entry that changed it.
    pub update_seq: Seq,
    /// When.
    pub update_time: Timestamp,
    /// A stop that has been triggered.
    pub triggered: bool,
    /// Ended by the end of its trading day.
    pub expired: bool,
}

/// One trade, as the trades table holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TradeRow {
    /// The trade.
    pub id: TradeId,
    /// The product.
    pub product: ProductId,
    /// The maker's price.
    pub price: Price,
    /// Quantity.
    pub quantity: Qty,
    /// The resting order.
    pub maker_order: OrderId,
    /// Its owner.
    pub maker_participant: ParticipantId,
    /// The incoming order.
    pub taker_order: OrderId,
    /// Its owner.
    pub taker_participant: ParticipantId,
    /// The incoming order's side.
    pub aggressor: Side,
    /// The entry that printed it.
    pub seq: Seq,
    /// When.
    pub time: Timestamp,
}

/// What one batch changed in the query tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// The final state of every order the batch changed, once each (in the order
    /// the batch first changed them; within one entry by order id).
    pub orders: Vec<OrderRow>,
    /// Every trade the batch printed, in order.
    pub trades: Vec<TradeRow>,
    /// Trades the batch busted (possibly printed in this batch, possibly twice).
    pub busted: Vec<TradeId>,
    position: HashMap<OrderId, usize>,
}

impl Effects {
    /// Empties it for the next batch (keeping its allocations).
    pub fn clear(&mut self) {
        self.orders.clear();
        self.trades.clear();
        self.busted.clear();
        self.position.clear();
    }

    /// Folds in the effects of the batch that followed, as if one batch had
    /// made both: each order's final state once, trades and busts in order.
    pub fn absorb(&mut self, later: Effects) {
        for row in later.orders {
            match self.position.get(&row.id) {
                Some(&i) => self.orders[i] = row,
                None => {
                    self.position.insert(row.id, self.orders.len());
                    self.orders.push(row);
                }
            }
        }
        self.trades.extend(later.trades);
        self.busted.extend(later.busted);
    }

    fn record(&mut self, row: &OrderRow) {
        match self.position.get(&row.id) {
            Some(&i) => self.orders[i] = row.clone(),
            None => {
                self.position.insert(row.id, self.orders.len());
                self.orders.push(row.clone());
            }
        }
    }
}

/// The rows of the orders still open.
#[derive(Clone, Debug, Default)]
pub struct Projection {
    open: HashMap<OrderId, OrderRow>,
    /// Open orders per participant (for the open-orders risk limit).
    per_participant: HashMap<ParticipantId, u32>,
}

fn status_of(r: &OrderRow) -> OrderStatus {
    let waiting_stop = matches!(r.order_type, OrderType::Stop | OrderType::StopLimit) && !r.triggered;
    if r.open.0 > 0 {
        if waiting_stop {
            OrderStatus::New
        } else if r.traded.0 > 0 {
            OrderStatus::PartiallyFilled
        } else {
            OrderStatus::Booked
        }
    } else if r.expired {
        OrderStatus::Expired
    } else if r.traded == r.original {
        OrderStatus::Filled
    } else if r.traded.0 > 0 {
        OrderStatus::PartiallyCancelled
    } else {
        OrderStatus::Cancelled
    }
}

impl Projection {
    /// Rows of the open orders (to reload after a restart, and for tests).
    pub fn open_orders(&self) -> impl Iterator<Item = &OrderRow> {
        self.open.values()
    }

    /// Starts from rows of open orders read back from storage.
    pub fn from_open(rows: impl IntoIterator<Item = OrderRow>) -> Projection {
        let open: HashMap<OrderId, OrderRow> = rows.into_iter().map(|r| (r.id, r)).collect();
        let mut per_participant: HashMap<ParticipantId, u32> = HashMap::new();
        for r in open.values() {
            *per_participant.entry(r.participant).or_default() += 1;
        }
        Projection { open, per_participant }
    }

    /// How many open orders (resting, or stops waiting) a participant has.
    pub fn open_orders_of(&self, participant: ParticipantId) -> u32 {
        self.per_participant.get(&participant).copied().unwrap_or(0)
    }

    /// Folds one journaled entry and the events it produced into the rows,
    /// recording every change in `fx`.
    pub fn apply(&mut self, entry: &Entry, events: &[Event], fx: &mut Effects) {
        if events.first() != Some(&Event::Accepted) {
            return;
        }
        let mut touched: Vec<OrderId> = Vec::new();
        if let CommandKind::NewOrder(o) = &entry.command {
            let stop = matches!(o.order_type, OrderType::Stop | OrderType::StopLimit);
            self.open.insert(
                o.order_id,
                OrderRow {
                    id: o.order_id,
                    client_order_id: entry.client_order_id.clone(),
                    product: o.product,
                    participant: o.participant,
                    side: o.side,
                    order_type: o.order_type,
                    time_in_force: o.time_in_force,
                    post_only: o.post_only,
                    self_trade_prevention: o.self_trade_prevention,
                    price: o.price,
                    stop_price: o.stop_price,
                    original: o.quantity,
                    traded: Qty::ZERO,
                    cancelled: Qty::ZERO,
                    open: o.quantity,
                    notional: 0,
                    status: if stop { OrderStatus::New } else { OrderStatus::Booked },
                    entry_seq: entry.seq,
                    entry_time: entry.time,
                    update_seq: entry.seq,
                    update_time: entry.time,
                    triggered: false,
                    expired: false,
                },
            );
            *self.per_participant.entry(o.participant).or_default() += 1;
            touched.push(o.order_id);
        }
        for e in events {
            match *e {
                Event::Trade {
                    trade_id,
                    product,
                    price,
                    quantity,
                    maker_order,
                    maker_participant,
                    maker_open,
                    taker_order,
                    taker_participant,
                    aggressor,
                } => {
                    let notional = i128::from(price.0) * i128::from(quantity.0);
                    if let Some(m) = self.open.get_mut(&maker_order) {
                        m.traded += quantity;
                        m.open = maker_open;
                        m.notional += notional;
                    }
                    if let Some(t) = self.open.get_mut(&taker_order) {
                        t.traded += quantity;
                        t.open -= quantity;
                        t.notional += notional;
                    }
                    touched.extend([maker_order, taker_order]);
                    fx.trades.push(TradeRow {
                        id: trade_id,
                        product,
                        price,
                        quantity,
                        maker_order,
                        maker_participant,
                        taker_order,
                        taker_participant,
                        aggressor,
                        seq: entry.seq,
                        time: entry.time,
                    });
                }
                Event::Booked { order_id, open, .. } => {
                    if let Some(r) = self.open.get_mut(&order_id) {
                        r.open = open;
                    }
                    touched.push(order_id);
                }
                Event::Cancelled { order_id, quantity, open, .. } => {
                    if let Some(r) = self.open.get_mut(&order_id) {
                        r.cancelled += quantity;
                        r.open = open;
                    }
                    touched.push(order_id);
                }
                Event::Expired { order_id, quantity } => {
                    if let Some(r) = self.open.get_mut(&order_id) {
                        r.cancelled += quantity;
                        r.open = Qty::ZERO;
                        r.expired = true;
                    }
                    touched.push(order_id);
                }
                Event::Amended { order_id, quantity, open, price, stop_price, .. } => {
                    if let Some(r) = self.open.get_mut(&order_id) {
                        r.original = quantity;
                        r.open = open;
                        r.price = price;
                        if stop_price.is_some() {
                            r.stop_price = stop_price;
                        }
                    }
                    touched.push(order_id);
                }
                Event::StopTriggered { order_id } => {
                    if let Some(r) = self.open.get_mut(&order_id) {
                        r.triggered = true;
                    }
                    touched.push(order_id);
                }
                Event::TradeBusted { trade_id } => fx.busted.push(trade_id),
                Event::Accepted
                | Event::Rejected { .. }
                | Event::ProductStatus { .. }
                | Event::Level { .. } => {}
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for id in touched {
            let Some(r) = self.open.get_mut(&id) else { continue };
            r.update_seq = entry.seq;
            r.update_time = entry.time;
            r.status = status_of(r);
            fx.record(r);
            if r.open.0 == 0 {
                let participant = r.participant;
                self.open.remove(&id);
                if let Some(n) = self.per_participant.get_mut(&participant) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.per_participant.remove(&participant);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let row = |t: OrderType,
                   original: i64,
                   traded: i64,
                   cancelled: i64,
                   open: i64,
                   triggered: bool,
                   expired: bool| {
            OrderRow {
                id: OrderId(1),
                client_order_id: None,
                product: ProductId(1),
                participant: ParticipantId(1),
                side: Side::Buy,
                order_type: t,
                time_in_force: TimeInForce::Gtc,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::None,
                price: None,
                stop_price: None,
                original: Qty(original),
                traded: Qty(traded),
                cancelled: Qty(cancelled),
                open: Qty(open),
                notional: 0,
                status: OrderStatus::New,
                entry_seq: Seq(1),
                entry_time: Timestamp(0),
                update_seq: Seq(1),
                update_time: Timestamp(0),
                triggered,
                expired,
            }
        };
        use OrderStatus::*;
        use OrderType::{Limit, Market, Stop, StopLimit};
        let table = [
            (row(Limit, 10, 0, 0, 10, false, false), Booked),
            (row(Limit, 10, 4, 0, 6, false, false), PartiallyFilled),
            (row(Limit, 10, 10, 0, 0, false, false), Filled),
            (row(Limit, 10, 0, 10, 0, false, false), Cancelled),
            (row(Limit, 10, 4, 6, 0, false, false), PartiallyCancelled),
            (row(Limit, 10, 4, 6, 0, false, true), Expired),
            (row(Market, 10, 0, 10, 0, false, false), Cancelled),
            (row(Stop, 10, 0, 0, 10, false, false), New),
            (row(StopLimit, 10, 0, 0, 10, true, false), Booked),
            (row(StopLimit, 10, 0, 10, 0, false, false), Cancelled),
            (row(Stop, 10, 0, 10, 0, false, true), Expired),
        ];
        for (r, want) in table {
            assert_eq!(status_of(&r), want, "{r:?}");
        }
        assert_eq!(PartiallyCancelled.as_str(), "PARTIALLY_CANCELLED");
    }
}

/// The stored spellings of the row enums (the API's), and their parsers.
pub mod codes {
    use super::*;

    /// `BUY` / `SELL`.
    pub fn side(s: Side) -> &'static str {
        s.as_str()
    }
    /// Parses [`side`].
    pub fn parse_side(s: &str) -> Option<Side> {
        [Side::Buy, Side::Sell].into_iter().find(|&x| side(x) == s)
    }
    /// `LIMIT`, `MARKET`, `STOP`, `STOP_LIMIT`.
    pub fn order_type(t: OrderType) -> &'static str {
        match t {
            OrderType::Limit => "LIMIT",
            OrderType::Market => "MARKET",
            OrderType::Stop => "STOP",
            OrderType::StopLimit => "STOP_LIMIT",
        }
    }
    /// Parses [`order_type`].
    pub fn parse_order_type(s: &str) -> Option<OrderType> {
        [OrderType::Limit, OrderType::Market, OrderType::Stop, OrderType::StopLimit]
            .into_iter()
            .find(|&x| order_type(x) == s)
    }
    /// `GTC`, `DAY`, `IOC`, `FOK`.
    pub fn time_in_force(t: TimeInForce) -> &'static str {
        match t {
            TimeInForce::Gtc => "GTC",
            TimeInForce::Day => "DAY",
            TimeInForce::Ioc => "IOC",
            TimeInForce::Fok => "FOK",
        }
    }
    /// Parses [`time_in_force`].
    pub fn parse_time_in_force(s: &str) -> Option<TimeInForce> {
        [TimeInForce::Gtc, TimeInForce::Day, TimeInForce::Ioc, TimeInForce::Fok]
            .into_iter()
            .find(|&x| time_in_force(x) == s)
    }
    /// `NONE`, `CANCEL_NEWEST`, `CANCEL_OLDEST`, `CANCEL_BOTH`, `DECREMENT`.
    pub fn stp(s: SelfTradePrevention) -> &'static str {
        match s {
            SelfTradePrevention::None => "NONE",
            SelfTradePrevention::CancelNewest => "CANCEL_NEWEST",
            SelfTradePrevention::CancelOldest => "CANCEL_OLDEST",
            SelfTradePrevention::CancelBoth => "CANCEL_BOTH",
            SelfTradePrevention::Decrement => "DECREMENT",
        }
    }
    /// Parses [`stp`].
    pub fn parse_stp(s: &str) -> Option<SelfTradePrevention> {
        [
            SelfTradePrevention::None,
            SelfTradePrevention::CancelNewest,
            SelfTradePrevention::CancelOldest,
            SelfTradePrevention::CancelBoth,
            SelfTradePrevention::Decrement,
        ]
        .into_iter()
        .find(|&x| stp(x) == s)
    }
    /// Parses [`OrderStatus::as_str`].
    pub fn parse_status(s: &str) -> Option<OrderStatus> {
        use OrderStatus::*;
        [New, Booked, PartiallyFilled, Filled, Cancelled, PartiallyCancelled, Expired]
            .into_iter()
            .find(|&x| x.as_str() == s)
    }
}
