//! Shared test helpers: a harness that stamps sequence numbers and checks every
//! invariant after every command, and terse order builders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

/// Levels as (price, quantity, orders), best first.
pub type Levels = Vec<(i64, i64, u32)>;

pub mod reference;

use atlas_engine::*;
use atlas_types::*;

/// Product 1: tick 1, lot 1. Product 2: tick 5, lot 10.
pub const P1: ProductId = ProductId(1);
pub const P2: ProductId = ProductId(2);

pub struct Harness {
    pub engine: Engine,
    pub seq: u64,
}

impl Harness {
    /// An engine with products 1 and 2 listed.
    pub fn new() -> Harness {
        let mut h = Harness { engine: Engine::default(), seq: 0 };
        h.run(CommandKind::AddProduct(ProductSpec { id: P1, tick: Price(1), lot: Qty(1) }));
        h.run(CommandKind::AddProduct(ProductSpec { id: P2, tick: Price(5), lot: Qty(10) }));
        h
    }

    /// Applies one command and returns its events, after checking every invariant.
    pub fn run(&mut self, kind: CommandKind) -> Vec<Event> {
        let out = self.run_unchecked(kind);
        self.engine.check_invariants().unwrap();
        out
    }

    /// Applies one command without the invariant check, which walks the whole
    /// book: for runs of hundreds of thousands of commands (check at the end).
    pub fn run_unchecked(&mut self, kind: CommandKind) -> Vec<Event> {
        self.seq += 1;
        let mut out = Vec::new();
        self.engine.apply(&Command { seq: Seq(self.seq), time: Timestamp(self.seq as i64), kind }, &mut out);
        out
    }

    pub fn order(&mut self, o: NewOrder) -> Vec<Event> {
        self.run(CommandKind::NewOrder(o))
    }

    pub fn cancel(&mut self, id: u64, participant: u32) -> Vec<Event> {
        self.run(CommandKind::Cancel { order_id: OrderId(id), participant: Some(ParticipantId(participant)) })
    }

    pub fn amend(
        &mut self,
        id: u64,
        participant: u32,
        quantity: Option<i64>,
        price: Option<i64>,
    ) -> Vec<Event> {
        self.run(CommandKind::Amend(Amend {
            order_id: OrderId(id),
            participant: Some(ParticipantId(participant)),
            quantity: quantity.map(Qty),
            price: price.map(Price),
            stop_price: None,
        }))
    }

    /// (price, quantity, orders) per level, best first.
    pub fn depth(&self, product: ProductId) -> (Levels, Levels) {
        let d = self.engine.depth(product, usize::MAX).unwrap();
        let f = |v: &[LevelView]| v.iter().map(|l| (l.price.0, l.quantity.0, l.orders)).collect();
        (f(&d.bids), f(&d.asks))
    }

    /// Everything a client could observe, for "nothing changed" checks.
    pub fn observable(&self) -> String {
        let mut s =
            format!("last_order_id={} open={}\n", self.engine.last_order_id(), self.engine.open_orders());
        for p in self.engine.products().collect::<Vec<_>>() {
            s += &format!("{:?}\n", self.engine.product(p));
            for side in [Side::Buy, Side::Sell] {
                s += &format!("{:?}\n", self.engine.orders_by_priority(p, side));
            }
            s += &format!("{:?}\n", self.engine.stop_orders(p));
        }
        s
    }
}

/// A GTC limit order on product 1 without flags.
pub fn lim(id: u64, participant: u32, side: Side, quantity: i64, price: i64) -> NewOrder {
    NewOrder {
        order_id: OrderId(id),
        participant: ParticipantId(participant),
        product: P1,
        side,
        order_type: OrderType::Limit,
        time_in_force: TimeInForce::Gtc,
        quantity: Qty(quantity),
        price: Some(Price(price)),
        stop_price: None,
        post_only: false,
        self_trade_prevention: SelfTradePrevention::None,
    }
}

/// A market order on product 1.
pub fn mkt(id: u64, participant: u32, side: Side, quantity: i64) -> NewOrder {
    NewOrder { order_type: OrderType::Market, price: None, ..lim(id, participant, side, quantity, 0) }
}

/// A stop (market) order on product 1.
pub fn stop(id: u64, participant: u32, side: Side, quantity: i64, stop_price: i64) -> NewOrder {
    NewOrder {
        order_type: OrderType::Stop,
        price: None,
        stop_price: Some(Price(stop_price)),
        ..lim(id, participant, side, quantity, 0)
    }
}

/// The trades in a list of events, as (maker, taker, price, quantity).
pub fn trades(events: &[Event]) -> Vec<(u64, u64, i64, i64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Trade { maker_order, taker_order, price, quantity, .. } => {
                Some((maker_order.0, taker_order.0, price.0, quantity.0))
            }
            _ => None,
        })
        .collect()
}

/// The single rejection reason, if the command was rejected.
pub fn rejected(events: &[Event]) -> Option<Reject> {
    match events {
        [Event::Rejected { reason }] => Some(*reason),
        _ => None,
    }
}
