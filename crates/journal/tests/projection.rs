//! The order and trade rows folded from the journal agree with the engine: after
//! every command, every open order's row matches the engine's view of it, and
//! every finished order's last row is terminal and adds up.
#![allow(clippy::unwrap_used)]

use atlas_engine::{
    Amend, CommandKind, Engine, Event, NewOrder, OrderType, OrderView, ProductSpec, SelfTradePrevention,
    TimeInForce,
};
use atlas_journal::projection::{Effects, OrderStatus, Projection};
use atlas_journal::{Actor, Entry};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Seq, Side, Timestamp};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    New { buy: bool, kind: u8, tif: u8, qty: i64, price: i64, stop: i64, who: u32, stp: u8 },
    Cancel { back: u64 },
    Amend { back: u64, qty: Option<i64>, price: Option<i64> },
    Mass { who: u32 },
    EndOfDay,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<bool>(), 0u8..8, 0u8..6, 1i64..10, 1i64..10, 1i64..10, 1u32..4, 0u8..8)
            .prop_map(|(buy, kind, tif, qty, price, stop, who, stp)| Op::New { buy, kind, tif, qty, price, stop, who, stp }),
        2 => (0u64..6).prop_map(|back| Op::Cancel { back }),
        2 => (0u64..6, prop::option::of(1i64..12), prop::option::of(1i64..10))
            .prop_map(|(back, qty, price)| Op::Amend { back, qty, price }),
        1 => (1u32..4).prop_map(|who| Op::Mass { who }),
        1 => Just(Op::EndOfDay),
    ]
}

fn check(engine: &Engine, projection: &Projection) -> Result<(), TestCaseError> {
    let rows: Vec<_> = projection.open_orders().collect();
    prop_assert_eq!(rows.len(), engine.open_orders());
    for p in 1..4u32 {
        let n = rows.iter().filter(|r| r.participant == ParticipantId(p)).count();
        prop_assert_eq!(projection.open_orders_of(ParticipantId(p)) as usize, n, "participant {}", p);
    }
    for r in rows {
        match engine.order(r.id) {
            Some(OrderView::Resting(o)) => {
                prop_assert_eq!(
                    (r.open, r.traded, r.cancelled, r.original),
                    (o.open, o.traded, o.cancelled, o.original)
                );
                prop_assert_eq!(r.price, Some(o.price));
                let want = if o.traded.0 > 0 { OrderStatus::PartiallyFilled } else { OrderStatus::Booked };
                prop_assert_eq!(r.status, want);
            }
            Some(OrderView::Stop(s)) => {
                prop_assert_eq!(
                    (r.open, r.original, r.stop_price, r.price),
                    (s.quantity, s.quantity, Some(s.stop_price), s.price)
                );
                prop_assert_eq!(r.status, OrderStatus::New);
            }
            None => {
                return Err(TestCaseError::fail(format!("row for order {} the engine does not hold", r.id)));
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn rows_agree_with_the_engine(ops in prop::collection::vec(op(), 1..250)) {
        let mut engine = Engine::default();
        let mut projection = Projection::default();
        let mut fx = Effects::default();
        let mut events = Vec::new();
        let mut seq = 0u64;
        let mut next_id = 1u64;
        let mut trades_seen = 0usize;
        let mut trades_rows = 0usize;
        let mut step = |kind: CommandKind, client: Option<String>, engine: &mut Engine, projection: &mut Projection, fx: &mut Effects, events: &mut Vec<Event>| {
            seq += 1;
            let entry = Entry { seq: Seq(seq), time: Timestamp(seq as i64), actor: Actor::SYSTEM, client_order_id: client, command: kind };
            events.clear();
            engine.apply(&entry.to_command(), events);
            fx.clear();
            projection.apply(&entry, events, fx);
        };
        step(CommandKind::AddProduct(ProductSpec { id: ProductId(1), tick: Price(1), lot: Qty(1) }), None, &mut engine, &mut projection, &mut fx, &mut events);
        for op in ops {
            let kind = match op {
                Op::New { buy, kind, tif, qty, price, stop, who, stp } => {
                    let order_type = [OrderType::Limit, OrderType::Limit, OrderType::Limit, OrderType::Limit,
                                      OrderType::Market, OrderType::Stop, OrderType::StopLimit, OrderType::Limit][usize::from(kind)];
                    let id = next_id;
                    next_id += 1;
                    CommandKind::NewOrder(NewOrder {
                        order_id: OrderId(id),
                        participant: ParticipantId(who),
                        product: ProductId(1),
                        side: if buy { Side::Buy } else { Side::Sell },
                        order_type,
                        time_in_force: [TimeInForce::Gtc, TimeInForce::Gtc, TimeInForce::Day, TimeInForce::Ioc,
                                        TimeInForce::Fok, TimeInForce::Gtc][usize::from(tif)],
                        quantity: Qty(qty),
                        price: matches!(order_type, OrderType::Limit | OrderType::StopLimit).then_some(Price(price)),
                        stop_price: matches!(order_type, OrderType::Stop | OrderType::StopLimit).then_some(Price(stop)),
                        post_only: false,
                        self_trade_prevention: [SelfTradePrevention::None, SelfTradePrevention::None,
                                                SelfTradePrevention::None, SelfTradePrevention::None,
                                                SelfTradePrevention::CancelNewest, SelfTradePrevention::CancelOldest,
                                                SelfTradePrevention::CancelBoth, SelfTradePrevention::Decrement][usize::from(stp)],
                    })
                }
                Op::Cancel { back } => CommandKind::Cancel { order_id: OrderId(next_id.saturating_sub(1 + back).max(1)), participant: None },
                Op::Amend { back, qty, price } => CommandKind::Amend(Amend {
                    order_id: OrderId(next_id.saturating_sub(1 + back).max(1)),
                    participant: None,
                    quantity: qty.map(Qty),
                    price: price.map(Price),
                    stop_price: None,
                }),
                Op::Mass { who } => CommandKind::MassCancel { participant: ParticipantId(who), product: None },
                Op::EndOfDay => CommandKind::EndOfDay { product: None },
            };
            step(kind, Some(format!("c{next_id}")), &mut engine, &mut projection, &mut fx, &mut events);
            trades_seen += events.iter().filter(|e| matches!(e, Event::Trade { .. })).count();
            trades_rows += fx.trades.len();
            for r in &fx.orders {
                // The tables' CHECK constraints hold this for every row.
                prop_assert_eq!(r.traded + r.cancelled + r.open, r.original, "{:?}", r);
                if r.open.0 == 0 {
                    prop_assert!(matches!(r.status, OrderStatus::Filled | OrderStatus::Cancelled
                        | OrderStatus::PartiallyCancelled | OrderStatus::Expired), "{:?}", r);
                    prop_assert_eq!(r.traded + r.cancelled, r.original, "{:?}", r);
                    prop_assert!(engine.order(r.id).is_none());
                }
                if r.traded.0 > 0 {
                    prop_assert!(r.notional > 0);
                }
            }
            check(&engine, &projection)?;
        }
        prop_assert_eq!(trades_rows, trades_seen);
    }
}
