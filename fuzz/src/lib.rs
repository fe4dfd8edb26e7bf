//! Shared fuzz input: a compact, structured description of a command stream that
//! `arbitrary` builds from raw bytes, so the fuzzer explores engine states instead
//! of failing to decode.

use arbitrary::Arbitrary;
use atlas_engine::{
    Amend, Command, CommandKind, Engine, EngineConfig, Event, NewOrder, OrderType, ProductSpec,
    SelfTradePrevention, TimeInForce,
};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Seq, Side, Timestamp, TradeId};

/// One fuzzed operation.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// A new order; small fields keep prices crossing and ids colliding.
    New {
        product: u8,
        side: bool,
        kind: u8,
        tif: u8,
        qty: i16,
        price: i32,
        stop: i32,
        post_only: bool,
        stp: u8,
        id_back: u8,
    },
    /// Cancel an order some ids back.
    Cancel { back: u8, who: u8 },
    /// Amend an order some ids back.
    Amend { back: u8, who: u8, qty: Option<i16>, price: Option<i32>, stop: Option<i32> },
    /// Mass cancel.
    MassCancel { participant: u8, product: Option<u8> },
    /// Halt or resume.
    Halt { product: u8, on: bool },
    /// End of day.
    EndOfDay { product: Option<u8> },
    /// List a product.
    Add { product: u8, tick: u8, lot: u8 },
    /// Delist a product.
    Remove { product: u8 },
    /// Bust a trade (printed or not).
    Bust { trade: u8 },
}

/// Applies ops to `engine`, checking every invariant after every command.
pub fn run(engine: &mut Engine, ops: &[Op]) {
    let mut out: Vec<Event> = Vec::new();
    let mut next_id = engine.last_order_id() + 1;
    for op in ops {
        let kind = match *op {
            Op::New { product, side, kind, tif, qty, price, stop, post_only, stp, id_back } => {
                let id = next_id.saturating_sub(u64::from(id_back % 4 / 3)).max(1);
                next_id += 1;
                CommandKind::NewOrder(NewOrder {
                    order_id: OrderId(id),
                    participant: ParticipantId(u32::from(id as u8 % 3)),
                    product: ProductId(u32::from(product % 4)),
                    side: if side { Side::Buy } else { Side::Sell },
                    order_type: [OrderType::Limit, OrderType::Market, OrderType::Stop, OrderType::StopLimit]
                        [usize::from(kind % 4)],
                    time_in_force: [TimeInForce::Gtc, TimeInForce::Day, TimeInForce::Ioc, TimeInForce::Fok]
                        [usize::from(tif % 4)],
                    quantity: Qty(i64::from(qty)),
                    price: (price != 0).then_some(Price(i64::from(price))),
                    stop_price: (stop != 0).then_some(Price(i64::from(stop))),
                    post_only,
                    self_trade_prevention: [
                        SelfTradePrevention::None,
                        SelfTradePrevention::CancelNewest,
                        SelfTradePrevention::CancelOldest,
                        SelfTradePrevention::CancelBoth,
                        SelfTradePrevention::Decrement,
                    ][usize::from(stp % 5)],
                })
            }
            Op::Cancel { back, who } => {
                let id = next_id.saturating_sub(1 + u64::from(back)).max(1);
                CommandKind::Cancel {
                    order_id: OrderId(id),
                    participant: (who % 4 != 3).then_some(ParticipantId(u32::from(who % 3))),
                }
            }
            Op::Amend { back, who, qty, price, stop } => {
                let id = next_id.saturating_sub(1 + u64::from(back)).max(1);
                CommandKind::Amend(Amend {
                    order_id: OrderId(id),
                    participant: (who % 4 != 3).then_some(ParticipantId(u32::from(who % 3))),
                    quantity: qty.map(|q| Qty(i64::from(q))),
                    price: price.map(|p| Price(i64::from(p))),
                    stop_price: stop.map(|p| Price(i64::from(p))),
                })
            }
            Op::MassCancel { participant, product } => CommandKind::MassCancel {
                participant: ParticipantId(u32::from(participant % 3)),
                product: product.map(|p| ProductId(u32::from(p % 4))),
            },
            Op::Halt { product, on } => {
                let product = ProductId(u32::from(product % 4));
                if on { CommandKind::Halt { product } } else { CommandKind::Resume { product } }
            }
            Op::EndOfDay { product } => {
                CommandKind::EndOfDay { product: product.map(|p| ProductId(u32::from(p % 4))) }
            }
            Op::Add { product, tick, lot } => CommandKind::AddProduct(ProductSpec {
                id: ProductId(u32::from(product % 4)),
                tick: Price(i64::from(tick % 8)),
                lot: Qty(i64::from(lot % 8)),
            }),
            Op::Remove { product } => {
                CommandKind::RemoveProduct { product: ProductId(u32::from(product % 4)) }
            }
            Op::Bust { trade } => CommandKind::BustTrade { trade: TradeId(u64::from(trade)) },
        };
        let seq = engine.last_seq() + 1;
        out.clear();
        engine.apply(&Command { seq: Seq(seq), time: Timestamp(seq as i64), kind }, &mut out);
        if let Err(e) = engine.check_invariants() {
            panic!("invariant broken after {op:?}: {e}");
        }
    }
}

/// A small engine, so that capacity limits are reached too.
pub fn engine() -> Engine {
    Engine::new(EngineConfig { orders_max: 64, orders_reserved: 16 })
}
