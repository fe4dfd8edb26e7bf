//! Table-driven tests of every matching rule, including the cases AtlasCX got wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use atlas_engine::*;
use atlas_types::*;
use common::*;

use Side::{Buy, Sell};

#[test]
fn better_price_beats_earlier_time() {
    // AtlasCX matched by time only: it traded the older 10@11 sell.
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 10, 11));
    h.order(lim(2, 2, Sell, 10, 10));
    let ev = h.order(lim(3, 3, Buy, 10, 11));
    assert_eq!(trades(&ev), vec![(2, 3, 10, 10)]);
    assert_eq!(h.depth(P1), (vec![], vec![(11, 10, 1)]));
}

#[test]
fn trades_print_at_the_resting_price() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Buy, 5, 100));
    let ev = h.order(lim(2, 2, Sell, 5, 90));
    assert_eq!(trades(&ev), vec![(1, 2, 100, 5)]);
}

#[test]
fn earlier_order_first_within_a_price() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 5, 10));
    h.order(lim(2, 2, Sell, 5, 10));
    h.order(lim(3, 3, Sell, 5, 10));
    let ev = h.order(lim(4, 4, Buy, 12, 10));
    assert_eq!(trades(&ev), vec![(1, 4, 10, 5), (2, 4, 10, 5), (3, 4, 10, 2)]);
    assert_eq!(h.depth(P1), (vec![], vec![(10, 3, 1)]));
}

#[test]
fn sweep_across_levels_then_book_the_rest() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 5, 10));
    h.order(lim(2, 1, Sell, 5, 11));
    h.order(lim(3, 1, Sell, 5, 13));
    let ev = h.order(lim(4, 2, Buy, 12, 12));
    assert_eq!(trades(&ev), vec![(1, 4, 10, 5), (2, 4, 11, 5)]);
    assert!(ev.contains(&Event::Booked { order_id: OrderId(4), price: Price(12), open: Qty(2) }));
    assert_eq!(h.depth(P1), (vec![(12, 2, 1)], vec![(13, 5, 1)]));
    // L2 changes come last: bids (best first), then asks (best first).
    let levels: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Level { side, price, quantity, .. } => Some((*side, price.0, quantity.0)),
            _ => None,
        })
        .collect();
    assert_eq!(levels, vec![(Buy, 12, 2), (Sell, 10, 0), (Sell, 11, 0)]);
    assert!(matches!(ev.last(), Some(Event::Level { .. })));
}

#[test]
fn market_order_after_full_fill_prints_no_zero_trade() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 10, 10));
    let ev = h.order(mkt(2, 2, Buy, 10));
    assert_eq!(trades(&ev), vec![(1, 2, 10, 10)]);
    let ev = h.order(mkt(3, 2, Buy, 5));
    assert!(trades(&ev).is_empty());
    assert_eq!(
        ev,
        vec![
            Event::Accepted,
            Event::Cancelled {
                order_id: OrderId(3),
                quantity: Qty(5),
                open: Qty(0),
                reason: CancelReason::Unfilled
            }
        ]
    );
    assert!(h.engine.order(OrderId(3)).is_none());
}

#[test]
fn market_and_ioc_remainders_are_cancelled_never_booked() {
    for o in [mkt(2, 2, Buy, 8), NewOrder { time_in_force: TimeInForce::Ioc, ..lim(2, 2, Buy, 8, 10) }] {
        let mut h = Harness::new();
        h.order(lim(1, 1, Sell, 5, 10));
        let ev = h.order(o);
        assert_eq!(trades(&ev), vec![(1, 2, 10, 5)]);
        assert!(ev.contains(&Event::Cancelled {
            order_id: OrderId(2),
            quantity: Qty(3),
            open: Qty(0),
            reason: CancelReason::Unfilled
        }));
        assert_eq!(h.depth(P1), (vec![], vec![]));
    }
}

#[test]
fn fill_or_kill_is_all_or_nothing() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 5, 10));
    h.order(lim(2, 1, Sell, 5, 11));
    // 11 wanted, 10 available up to 11: killed, and no trade printed at all.
    let ev = h.order(NewOrder { time_in_force: TimeInForce::Fok, ..lim(3, 2, Buy, 11, 11) });
    assert_eq!(
        ev,
        vec![
            Event::Accepted,
            Event::Cancelled {
                order_id: OrderId(3),
                quantity: Qty(11),
                open: Qty(0),
                reason: CancelReason::FillOrKill
            }
        ]
    );
    // Price limit matters: 10 available only up to 11, not at 10.
    let ev = h.order(NewOrder { time_in_force: TimeInForce::Fok, ..lim(4, 2, Buy, 10, 10) });
    assert!(trades(&ev).is_empty());
    let ev = h.order(NewOrder { time_in_force: TimeInForce::Fok, ..lim(5, 2, Buy, 10, 11) });
    assert_eq!(trades(&ev), vec![(1, 5, 10, 5), (2, 5, 11, 5)]);
    // A market FOK with nothing left is killed.
    let ev = h.order(NewOrder { time_in_force: TimeInForce::Fok, ..mkt(6, 2, Buy, 1) });
    assert!(trades(&ev).is_empty());
}

#[test]
fn fill_or_kill_does_not_count_own_orders_it_would_not_trade() {
    let mut h = Harness::new();
    h.order(lim(1, 2, Sell, 5, 10)); // own
    h.order(lim(2, 1, Sell, 5, 10));
    let fok = |id, stp| NewOrder {
        time_in_force: TimeInForce::Fok,
        self_trade_prevention: stp,
        ..lim(id, 2, Buy, 5, 10)
    };
    // CANCEL_NEWEST would stop at the own order first: kill, and the own order stays.
    let ev = h.order(fok(3, SelfTradePrevention::CancelNewest));
    assert!(trades(&ev).is_empty());
    assert_eq!(h.depth(P1).1, vec![(10, 10, 2)]);
    // CANCEL_OLDEST skips (cancels) the own order and fills from order 2.
    let ev = h.order(fok(4, SelfTradePrevention::CancelOldest));
    assert_eq!(trades(&ev), vec![(2, 4, 10, 5)]);
    assert_eq!(h.depth(P1).1, vec![]);
}

#[test]
fn post_only_rejects_instead_of_trading() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 5, 10));
    let before = h.observable();
    let ev = h.order(NewOrder { post_only: true, ..lim(2, 2, Buy, 5, 10) });
    assert_eq!(rejected(&ev), Some(Reject::PostOnlyWouldTrade));
    assert_eq!(h.observable(), before);
    let ev = h.order(NewOrder { post_only: true, ..lim(3, 2, Buy, 5, 9) });
    assert!(ev.contains(&Event::Booked { order_id: OrderId(3), price: Price(9), open: Qty(5) }));
    // Re-pricing a post-only order through the market is refused too.
    let ev = h.amend(3, 2, None, Some(10));
    assert_eq!(rejected(&ev), Some(Reject::PostOnlyWouldTrade));
    assert_eq!(h.depth(P1), (vec![(9, 5, 1)], vec![(10, 5, 1)]));
}

#[test]
fn cancel_really_removes() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Buy, 5, 10));
    h.order(lim(2, 1, Buy, 7, 10));
    let ev = h.cancel(1, 1);
    assert_eq!(
        ev,
        vec![
            Event::Accepted,
            Event::Cancelled {
                order_id: OrderId(1),
                quantity: Qty(5),
                open: Qty(0),
                reason: CancelReason::Requested
            },
            Event::Level { product: P1, side: Buy, price: Price(10), quantity: Qty(7) },
        ]
    );
    assert!(h.engine.order(OrderId(1)).is_none());
    assert_eq!(h.depth(P1), (vec![(10, 7, 1)], vec![]));
    // A sell at 10 now trades with order 2 only.
    let ev = h.order(lim(3, 2, Sell, 20, 10));
    assert_eq!(trades(&ev), vec![(2, 3, 10, 7)]);
    // Cancelling again: not open any more.
    assert_eq!(rejected(&h.cancel(1, 1)), Some(Reject::OrderNotOpen));
    assert_eq!(rejected(&h.cancel(99, 1)), Some(Reject::UnknownOrder));
}

#[test]
fn another_participants_order_looks_unknown() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Buy, 5, 10));
    let before = h.observable();
    assert_eq!(rejected(&h.cancel(1, 2)), Some(Reject::UnknownOrder));
    assert_eq!(rejected(&h.amend(1, 2, Some(1), None)), Some(Reject::UnknownOrder));
    assert_eq!(h.observable(), before);
    // An operator (no participant) may cancel anyone's order.
    let ev = h.run(CommandKind::Cancel { order_id: OrderId(1), participant: None });
    assert!(matches!(ev[1], Event::Cancelled { reason: CancelReason::Operator, .. }));
}

#[test]
fn amend_down_keeps_priority() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 10, 10));
    h.order(lim(2, 2, Sell, 10, 10));
    let ev = h.amend(1, 1, Some(4), None);
    assert_eq!(
        ev[1],
        Event::Amended {
            order_id: OrderId(1),
            quantity: Qty(4),
            open: Qty(4),
            price: Some(Price(10)),
            stop_price: None,
            priority_kept: true
        }
    );
    assert_eq!(h.depth(P1).1, vec![(10, 14, 2)]);
    let ev = h.order(lim(3, 3, Buy, 5, 10));
    assert_eq!(trades(&ev), vec![(1, 3, 10, 4), (2, 3, 10, 1)]);
}

#[test]
fn amend_up_loses_priority() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 10, 10));
    h.order(lim(2, 2, Sell, 10, 10));
    let ev = h.amend(1, 1, Some(12), None);
    assert!(matches!(ev[1], Event::Amended { priority_kept: false, open: Qty(12), .. }));
    let ev = h.order(lim(3, 3, Buy, 11, 10));
    assert_eq!(trades(&ev), vec![(2, 3, 10, 10), (1, 3, 10, 1)]);
}

#[test]
fn amend_price_loses_priority_and_may_trade() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 10, 11));
    h.order(lim(2, 2, Sell, 10, 10));
    h.order(lim(3, 3, Sell, 10, 10));
    // Order 2 moves away and back: it is now behind order 3.
    h.amend(2, 2, None, Some(12));
    h.amend(2, 2, None, Some(10));
    let ev = h.order(lim(4, 4, Buy, 10, 10));
    assert_eq!(trades(&ev), vec![(3, 4, 10, 10)]);
    // A bid re-priced through the offer trades as an incoming order.
    h.order(lim(5, 5, Buy, 3, 9));
    let ev = h.amend(5, 5, None, Some(11));
    assert_eq!(trades(&ev), vec![(2, 5, 10, 3)]);
    assert!(h.engine.order(OrderId(5)).is_none());
}

#[test]
fn amend_keeps_what_already_traded() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 10, 10));
    h.order(lim(2, 2, Buy, 6, 10));
    // 6 of 10 traded: the total may not go to 6 or below.
    assert_eq!(rejected(&h.amend(1, 1, Some(6), None)), Some(Reject::QuantityBelowExecuted));
    let ev = h.amend(1, 1, Some(8), None);
    assert!(matches!(ev[1], Event::Amended { quantity: Qty(8), open: Qty(2), priority_kept: true, .. }));
    match h.engine.order(OrderId(1)) {
        Some(OrderView::Resting(o)) => {
            assert_eq!((o.original.0, o.open.0, o.traded.0), (8, 2, 6));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rejected(&h.amend(1, 1, None, None)), Some(Reject::NothingToAmend));
}

fn stp_case(stp: SelfTradePrevention) -> (Vec<Event>, Harness) {
    let mut h = Harness::new();
    h.order(lim(1, 7, Sell, 5, 10)); // the incoming order's own
    h.order(lim(2, 1, Sell, 5, 10));
    let ev = h.order(NewOrder { self_trade_prevention: stp, ..lim(3, 7, Buy, 8, 10) });
    (ev, h)
}

#[test]
fn self_trade_prevention_modes() {
    use SelfTradePrevention::{CancelBoth, CancelNewest, CancelOldest, Decrement};
    let cancelled = |ev: &[Event]| -> Vec<(u64, i64, i64)> {
        ev.iter()
            .filter_map(|e| match e {
                Event::Cancelled { order_id, quantity, open, reason: CancelReason::SelfTrade } => {
                    Some((order_id.0, quantity.0, open.0))
                }
                _ => Option::None,
            })
            .collect()
    };
    let (ev, h) = stp_case(SelfTradePrevention::None);
    assert_eq!(trades(&ev), vec![(1, 3, 10, 5), (2, 3, 10, 3)]);
    assert_eq!(h.depth(P1).1, vec![(10, 2, 1)]);

    let (ev, h) = stp_case(CancelNewest);
    assert_eq!(trades(&ev), vec![]);
    assert_eq!(cancelled(&ev), vec![(3, 8, 0)]);
    assert_eq!(h.depth(P1), (vec![], vec![(10, 10, 2)]));

    let (ev, h) = stp_case(CancelOldest);
    assert_eq!(cancelled(&ev), vec![(1, 5, 0)]);
    assert_eq!(trades(&ev), vec![(2, 3, 10, 5)]);
    assert_eq!(h.depth(P1), (vec![(10, 3, 1)], vec![]));

    let (ev, h) = stp_case(CancelBoth);
    assert_eq!(cancelled(&ev), vec![(1, 5, 0), (3, 8, 0)]);
    assert_eq!(h.depth(P1), (vec![], vec![(10, 5, 1)]));

    let (ev, h) = stp_case(Decrement);
    // 5 of the incoming 8 and all of order 1 are decremented away; 3 trade with 2.
    assert_eq!(cancelled(&ev), vec![(1, 5, 0), (3, 5, 3)]);
    assert_eq!(trades(&ev), vec![(2, 3, 10, 3)]);
    assert_eq!(h.depth(P1), (vec![], vec![(10, 2, 1)]));
}

#[test]
fn stop_orders_wait_then_trigger_in_arrival_order_and_cascade() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 5, 10));
    h.order(lim(2, 1, Sell, 5, 11));
    h.order(lim(3, 1, Sell, 5, 12));
    // Buy stops at 10 (arrives later) and 9 (arrives earlier): both wait, NEW.
    h.order(stop(4, 2, Buy, 5, 9));
    h.order(stop(5, 2, Buy, 5, 10));
    // A stop-limit that triggers at 11 and buys up to 12.
    h.order(NewOrder {
        order_type: OrderType::StopLimit,
        stop_price: Some(Price(11)),
        ..lim(6, 3, Buy, 2, 12)
    });
    assert!(matches!(h.engine.order(OrderId(4)), Some(OrderView::Stop(_))));
    assert_eq!(h.depth(P1).1.len(), 3);
    // A trade at 10 triggers 4 and 5 (4 first: it arrived first); 4 trades at 11,
    // which triggers 6 in the next round.
    h.order(lim(7, 9, Buy, 1, 1)); // unrelated bid, no trade
    let ev = h.order(lim(8, 4, Buy, 5, 10));
    let triggered: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::StopTriggered { order_id } => Some(order_id.0),
            _ => None,
        })
        .collect();
    assert_eq!(triggered, vec![4, 5, 6]);
    assert_eq!(trades(&ev), vec![(1, 8, 10, 5), (2, 4, 11, 5), (3, 5, 12, 5)]);
    // Order 6 (limit 12) found nothing left at or below 12 and rests.
    assert!(ev.contains(&Event::Booked { order_id: OrderId(6), price: Price(12), open: Qty(2) }));
    assert_eq!(h.depth(P1), (vec![(12, 2, 1), (1, 1, 1)], vec![]));
}

#[test]
fn sell_stop_triggers_on_print_at_or_below() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Buy, 5, 10));
    h.order(lim(2, 1, Buy, 5, 8));
    h.order(stop(3, 2, Sell, 5, 9));
    let ev = h.order(lim(4, 3, Sell, 5, 10)); // prints at 10: above 9, no trigger
    assert!(!ev.iter().any(|e| matches!(e, Event::StopTriggered { .. })));
    h.order(lim(5, 1, Buy, 1, 9));
    let ev = h.order(lim(6, 3, Sell, 1, 9)); // prints at 9: triggers
    assert!(ev.contains(&Event::StopTriggered { order_id: OrderId(3) }));
    assert_eq!(trades(&ev), vec![(5, 6, 9, 1), (2, 3, 8, 5)]);
}

#[test]
fn amend_and_cancel_stops() {
    let mut h = Harness::new();
    h.order(stop(1, 2, Buy, 5, 20));
    let ev = h.run(CommandKind::Amend(Amend {
        order_id: OrderId(1),
        participant: Some(ParticipantId(2)),
        quantity: Some(Qty(3)),
        price: None,
        stop_price: Some(Price(15)),
    }));
    assert!(matches!(ev[1], Event::Amended { quantity: Qty(3), stop_price: Some(Price(15)), .. }));
    assert_eq!(rejected(&h.amend(1, 2, None, Some(16))), Some(Reject::UnexpectedPrice));
    let ev = h.cancel(1, 2);
    assert!(matches!(ev[1], Event::Cancelled { quantity: Qty(3), .. }));
    assert_eq!(h.engine.stop_orders(P1).unwrap(), vec![]);
}

#[test]
fn halt_blocks_orders_and_amends_but_not_cancels() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Buy, 5, 10));
    let ev = h.run(CommandKind::Halt { product: P1 });
    assert!(ev.contains(&Event::ProductStatus { product: P1, status: ProductStatus::Halted }));
    assert_eq!(rejected(&h.order(lim(2, 1, Sell, 5, 10))), Some(Reject::MarketHalted));
    assert_eq!(rejected(&h.amend(1, 1, Some(2), None)), Some(Reject::MarketHalted));
    assert_eq!(h.cancel(1, 1)[0], Event::Accepted);
    h.run(CommandKind::Resume { product: P1 });
    assert_eq!(h.order(lim(3, 1, Sell, 5, 10))[0], Event::Accepted);
}

#[test]
fn end_of_day_expires_day_orders_only() {
    let mut h = Harness::new();
    h.order(NewOrder { time_in_force: TimeInForce::Day, ..lim(1, 1, Buy, 5, 10) });
    h.order(lim(2, 1, Buy, 5, 10));
    h.order(NewOrder { time_in_force: TimeInForce::Day, ..stop(3, 1, Buy, 5, 20) });
    let ev = h.run(CommandKind::EndOfDay { product: None });
    assert_eq!(
        ev,
        vec![
            Event::Accepted,
            Event::Expired { order_id: OrderId(1), quantity: Qty(5) },
            Event::Expired { order_id: OrderId(3), quantity: Qty(5) },
            Event::Level { product: P1, side: Buy, price: Price(10), quantity: Qty(5) },
        ]
    );
    assert_eq!(h.engine.open_orders(), 1);
}

#[test]
fn mass_cancel_by_participant_and_product() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Buy, 5, 10));
    h.order(lim(2, 2, Buy, 5, 10));
    h.order(NewOrder { product: P2, ..lim(3, 1, Buy, 10, 10) });
    h.order(stop(4, 1, Sell, 5, 5));
    let ev = h.run(CommandKind::MassCancel { participant: ParticipantId(1), product: Some(P1) });
    let ids: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Cancelled { order_id, reason: CancelReason::MassCancel, .. } => Some(order_id.0),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![1, 4]);
    assert_eq!(h.engine.open_orders(), 2);
    h.run(CommandKind::MassCancel { participant: ParticipantId(1), product: None });
    assert_eq!(h.engine.open_orders(), 1);
}

#[test]
fn remove_product_cancels_its_orders() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Buy, 5, 10));
    h.order(NewOrder { product: P2, ..lim(2, 1, Buy, 10, 10) });
    let ev = h.run(CommandKind::RemoveProduct { product: P1 });
    assert!(ev.contains(&Event::Cancelled {
        order_id: OrderId(1),
        quantity: Qty(5),
        open: Qty(0),
        reason: CancelReason::ProductRemoved
    }));
    assert!(ev.contains(&Event::ProductStatus { product: P1, status: ProductStatus::Removed }));
    assert!(h.engine.product(P1).is_none());
    assert_eq!(h.engine.open_orders(), 1);
    assert_eq!(rejected(&h.order(lim(3, 1, Buy, 5, 10))), Some(Reject::UnknownProduct));
    // It can be listed again, empty.
    h.run(CommandKind::AddProduct(ProductSpec { id: P1, tick: Price(1), lot: Qty(1) }));
    assert_eq!(h.depth(P1), (vec![], vec![]));
}

/// Every rejection, each from a state where it is the only thing wrong, and each
/// leaves everything observable unchanged.
#[test]
fn every_rejection_changes_nothing() {
    let spec = |id, tick, lot| {
        CommandKind::AddProduct(ProductSpec { id: ProductId(id), tick: Price(tick), lot: Qty(lot) })
    };
    let o = |f: fn(NewOrder) -> NewOrder| CommandKind::NewOrder(f(lim(100, 1, Buy, 10, 10)));
    let amend = |qty: Option<i64>, price: Option<i64>, stop: Option<i64>, id: u64| {
        CommandKind::Amend(Amend {
            order_id: OrderId(id),
            participant: Some(ParticipantId(1)),
            quantity: qty.map(Qty),
            price: price.map(Price),
            stop_price: stop.map(Price),
        })
    };
    let table: Vec<(CommandKind, Reject)> = vec![
        (o(|x| NewOrder { product: ProductId(9), ..x }), Reject::UnknownProduct),
        (spec(1, 1, 1), Reject::ProductExists),
        (spec(9, 0, 1), Reject::InvalidProductSpec),
        (spec(9, 1, -1), Reject::InvalidProductSpec),
        (o(|x| NewOrder { product: ProductId(3), ..x }), Reject::MarketHalted),
        (o(|x| NewOrder { quantity: Qty(0), ..x }), Reject::InvalidQuantity),
        (o(|x| NewOrder { quantity: Qty(-5), ..x }), Reject::InvalidQuantity),
        (o(|x| NewOrder { quantity: Qty(Qty::MAX.0 + 1), ..x }), Reject::InvalidQuantity),
        (
            o(|x| NewOrder { product: P2, quantity: Qty(15), price: Some(Price(10)), ..x }),
            Reject::QuantityNotOnLot,
        ),
        (o(|x| NewOrder { price: Some(Price(0)), ..x }), Reject::InvalidPrice),
        (o(|x| NewOrder { price: Some(Price(Price::MAX.0 + 1)), ..x }), Reject::InvalidPrice),
        (o(|x| NewOrder { product: P2, price: Some(Price(12)), ..x }), Reject::PriceNotOnTick),
        (o(|x| NewOrder { price: None, ..x }), Reject::MissingPrice),
        (o(|x| NewOrder { order_type: OrderType::Market, ..x }), Reject::UnexpectedPrice),
        (o(|x| NewOrder { order_type: OrderType::Stop, price: None, ..x }), Reject::MissingStopPrice),
        (o(|x| NewOrder { stop_price: Some(Price(10)), ..x }), Reject::UnexpectedStopPrice),
        (o(|x| NewOrder { post_only: true, time_in_force: TimeInForce::Ioc, ..x }), Reject::InvalidPostOnly),
        (o(|x| NewOrder { post_only: true, price: Some(Price(20)), ..x }), Reject::PostOnlyWouldTrade),
        (o(|x| NewOrder { order_id: OrderId(2), ..x }), Reject::DuplicateOrderId),
        (
            CommandKind::Cancel { order_id: OrderId(500), participant: Some(ParticipantId(1)) },
            Reject::UnknownOrder,
        ),
        (
            CommandKind::Cancel { order_id: OrderId(3), participant: Some(ParticipantId(1)) },
            Reject::OrderNotOpen,
        ),
        (amend(None, None, None, 1), Reject::NothingToAmend),
        (amend(Some(0), None, None, 1), Reject::InvalidQuantity),
        (amend(None, None, Some(5), 1), Reject::UnexpectedStopPrice),
        (amend(None, Some(-1), None, 1), Reject::InvalidPrice),
        (amend(Some(2), None, None, 4), Reject::QuantityBelowExecuted),
        (CommandKind::Halt { product: ProductId(9) }, Reject::UnknownProduct),
        (CommandKind::EndOfDay { product: Some(ProductId(9)) }, Reject::UnknownProduct),
        (
            CommandKind::MassCancel { participant: ParticipantId(1), product: Some(ProductId(9)) },
            Reject::UnknownProduct,
        ),
        (CommandKind::RemoveProduct { product: ProductId(9) }, Reject::UnknownProduct),
        (CommandKind::BustTrade { trade: TradeId(0) }, Reject::UnknownTrade),
        (CommandKind::BustTrade { trade: TradeId(2) }, Reject::UnknownTrade),
    ];
    let setup = || {
        let mut h = Harness::new();
        h.run(spec(3, 1, 1));
        h.run(CommandKind::Halt { product: ProductId(3) });
        h.order(lim(1, 1, Buy, 10, 10)); // rests
        h.order(lim(2, 2, Sell, 10, 15)); // rests
        h.order(lim(3, 1, Buy, 10, 9)); // cancelled below
        h.cancel(3, 1);
        h.order(lim(4, 1, Sell, 5, 14)); // rests (best offer), then 3 of it trade
        h.order(lim(5, 2, Buy, 3, 14));
        h
    };
    let mut covered = std::collections::BTreeSet::new();
    for (cmd, expect) in table {
        let mut h = setup();
        let before = h.observable();
        let ev = h.run(cmd.clone());
        assert_eq!(rejected(&ev), Some(expect), "{cmd:?}");
        assert_eq!(h.observable(), before, "{cmd:?} changed something");
        covered.insert(expect.code());
    }
    // Capacity: an engine that holds its limit refuses the next order.
    let mut h = Harness { engine: Engine::new(EngineConfig { orders_max: 1, orders_reserved: 1 }), seq: 0 };
    h.run(spec(1, 1, 1));
    h.order(lim(1, 1, Buy, 1, 1));
    assert_eq!(rejected(&h.order(lim(2, 1, Buy, 1, 1))), Some(Reject::CapacityExhausted));
    covered.insert(Reject::CapacityExhausted.code());
    let all: std::collections::BTreeSet<_> = Reject::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(covered, all, "every rejection has a case");
}

#[test]
fn a_bust_names_a_printed_trade_and_leaves_the_books_alone() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 5, 10));
    h.order(lim(2, 2, Buy, 3, 10));
    let before = h.observable();
    for _ in 0..2 {
        // Busting twice is allowed (the trades table keeps the flag); nothing moves.
        let ev = h.run(CommandKind::BustTrade { trade: TradeId(1) });
        assert_eq!(ev, vec![Event::Accepted, Event::TradeBusted { trade_id: TradeId(1) }]);
    }
    assert_eq!(h.observable(), before);
    assert_eq!(rejected(&h.run(CommandKind::BustTrade { trade: TradeId(2) })), Some(Reject::UnknownTrade));
}

#[test]
fn snapshot_restores_same_hash_and_behaviour() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Buy, 5, 10));
    h.order(lim(2, 2, Buy, 5, 10));
    h.order(lim(3, 3, Sell, 5, 12));
    h.order(stop(4, 1, Buy, 5, 12));
    h.order(NewOrder { time_in_force: TimeInForce::Day, post_only: true, ..lim(5, 1, Buy, 5, 11) });
    let bytes = h.engine.snapshot();
    let restored = Engine::restore(&bytes, EngineConfig::default()).unwrap();
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    let mut twin = Harness { engine: restored, seq: h.seq };
    for cmd in [
        CommandKind::NewOrder(lim(6, 4, Sell, 12, 10)),
        CommandKind::NewOrder(lim(7, 4, Buy, 5, 12)),
        CommandKind::EndOfDay { product: None },
    ] {
        assert_eq!(h.run(cmd.clone()), twin.run(cmd));
    }
    assert_eq!(h.engine.state_hash(), twin.engine.state_hash());
}

#[test]
fn corrupt_snapshots_are_refused() {
    let mut h = Harness::new();
    h.order(lim(1, 1, Buy, 5, 10));
    h.order(lim(2, 2, Sell, 5, 12));
    let bytes = h.engine.snapshot();
    for cut in 0..bytes.len() {
        assert!(Engine::restore(&bytes[..cut], EngineConfig::default()).is_err(), "cut at {cut}");
    }
    let mut refused = 0;
    for i in 8..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        if let Ok(e) = Engine::restore(&b, EngineConfig::default()) {
            // A flip that still decodes to a valid state must at least change it.
            assert_ne!(e.state_hash(), h.engine.state_hash());
        } else {
            refused += 1;
        }
    }
    assert!(refused > 0);
    let mut wrong_magic = bytes.clone();
    wrong_magic[0] = b'X';
    assert_eq!(Engine::restore(&wrong_magic, EngineConfig::default()).err(), Some(SnapshotError::BadMagic));
}

#[test]
#[should_panic(expected = "sequence")]
fn a_sequence_gap_stops_the_engine() {
    let mut e = Engine::default();
    let mut out = Vec::new();
    e.apply(&Command { seq: Seq(2), time: Timestamp(0), kind: CommandKind::Halt { product: P1 } }, &mut out);
}

#[test]
fn prices_far_apart_still_match_in_price_order() {
    // Wider than the dense ladder's window: the side falls back to a sorted vector
    // and comes back once the far order is gone. Behaviour must not change.
    let mut h = Harness::new();
    h.order(lim(1, 1, Sell, 5, 5_000_000));
    h.order(lim(2, 1, Sell, 5, 100));
    h.order(lim(3, 1, Sell, 5, 2_000_000));
    h.order(lim(4, 2, Buy, 5, 1));
    assert_eq!(h.depth(P1), (vec![(1, 5, 1)], vec![(100, 5, 1), (2_000_000, 5, 1), (5_000_000, 5, 1)]));
    let ev = h.order(lim(5, 3, Buy, 12, 4_000_000));
    assert_eq!(trades(&ev), vec![(2, 5, 100, 5), (3, 5, 2_000_000, 5)]);
    assert_eq!(h.depth(P1), (vec![(4_000_000, 2, 1), (1, 5, 1)], vec![(5_000_000, 5, 1)]));
    h.cancel(1, 1);
    // The sell crosses the 4,000,000 bid, then rests 3,999,999 ticks above the other.
    let ev = h.order(lim(6, 1, Sell, 5, 2_000_001));
    assert_eq!(trades(&ev), vec![(5, 6, 4_000_000, 2)]);
    assert_eq!(h.depth(P1), (vec![(1, 5, 1)], vec![(2_000_001, 3, 1)]));
    let ev = h.order(lim(7, 2, Buy, 4, 2_000_001));
    assert_eq!(trades(&ev), vec![(6, 7, 2_000_001, 3)]);
    assert_eq!(h.depth(P1), (vec![(2_000_001, 1, 1), (1, 5, 1)], vec![]));
}

/// A day's book: most orders are cancelled soon after they arrive, one in ten
/// rests for the rest of the run. The ids run far past the order index's
/// window of recent ids, so the resting ones move to its far table; they must
/// still be found, cancelled and filled, and survive a snapshot round trip
/// (whose restore indexes them in book order, not id order).
#[test]
fn orders_resting_far_behind_the_newest_stay_found_cancelled_filled_and_restored() {
    let mut h = Harness::new();
    // Harness::run checks every invariant after every command: too slow here.
    let run = Harness::run_unchecked;
    let last = 200_000u64;
    let mut soon = std::collections::VecDeque::new();
    for id in 1..=last {
        if id % 10 == 0 {
            // Resting bids at 1,000 to 1,099, well below the churn's offers.
            let ev = run(&mut h, CommandKind::NewOrder(lim(id, 1, Buy, 1, 1_000 + (id as i64 / 10) % 100)));
            assert_eq!(ev.first(), Some(&Event::Accepted));
        } else {
            run(&mut h, CommandKind::NewOrder(lim(id, 2, Sell, 1, 5_000)));
            soon.push_back(id);
            if soon.len() > 100 {
                let old = soon.pop_front().unwrap();
                let ev = run(
                    &mut h,
                    CommandKind::Cancel { order_id: OrderId(old), participant: Some(ParticipantId(2)) },
                );
                assert!(matches!(ev[1], Event::Cancelled { .. }), "order {old}: {ev:?}");
            }
        }
    }
    h.engine.check_invariants().unwrap();
    assert_eq!(h.engine.open_orders(), (last / 10) as usize + soon.len());
    // The oldest resting orders: found, and cancelled.
    for id in [10, 20, 30] {
        assert!(h.engine.order(OrderId(id)).is_some(), "order {id}");
    }
    let ev = h.cancel(20, 1);
    assert!(matches!(ev[1], Event::Cancelled { order_id: OrderId(20), .. }));
    assert!(h.engine.order(OrderId(20)).is_none());
    // A sell that sweeps the best bid level (1,099) fills its orders in time
    // order, the oldest first: ids 990, 1990, 2990, ...
    let ev = h.order(lim(last + 1, 3, Sell, 3, 1_099));
    assert_eq!(
        trades(&ev),
        vec![(990, last + 1, 1_099, 1), (1_990, last + 1, 1_099, 1), (2_990, last + 1, 1_099, 1)]
    );
    assert!(h.engine.order(OrderId(990)).is_none());
    assert!(h.engine.order(OrderId(3_990)).is_some());
    // Restored from a snapshot, the same state, and the same orders found.
    let restored = Engine::restore(&h.engine.snapshot(), h.engine.config()).unwrap();
    restored.check_invariants().unwrap();
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    for id in [10, 30, 3_990, last - 10, *soon.back().unwrap()] {
        assert_eq!(restored.order(OrderId(id)), h.engine.order(OrderId(id)), "order {id}");
        assert!(restored.order(OrderId(id)).is_some(), "order {id}");
    }
    assert!(restored.order(OrderId(20)).is_none());
}

/// Order id 0 is never an order's (the engine refuses it for new orders), so
/// cancelling or amending it is refused and changes nothing, also once the
/// order index's window has moved on and old ids are looked up in its far
/// table, where 0 marks an empty bucket.
#[test]
fn order_id_zero_is_never_found() {
    let mut h = Harness::new();
    // Harness::run checks every invariant after every command: too slow here.
    let run = Harness::run_unchecked;
    for passed in [false, true] {
        let first = h.engine.last_order_id() + 1;
        let n = if passed { 150_000 } else { 10 };
        for id in first..first + n {
            // Every other order rests; the rest are cancelled at once, so
            // far-table buckets are emptied again.
            run(&mut h, CommandKind::NewOrder(lim(id, 1, Buy, 1, 1_000 + (id % 7) as i64)));
            if id % 2 == 0 {
                run(&mut h, CommandKind::Cancel { order_id: OrderId(id), participant: None });
            }
        }
        let before = h.observable();
        for participant in [None, Some(ParticipantId(1))] {
            let ev = run(&mut h, CommandKind::Cancel { order_id: OrderId(0), participant });
            assert_eq!(rejected(&ev), Some(Reject::OrderNotOpen), "{ev:?}");
            let amend = Amend {
                order_id: OrderId(0),
                participant,
                quantity: Some(Qty(1)),
                price: None,
                stop_price: None,
            };
            let ev = run(&mut h, CommandKind::Amend(amend));
            assert_eq!(rejected(&ev), Some(Reject::OrderNotOpen), "{ev:?}");
        }
        assert!(h.engine.order(OrderId(0)).is_none());
        assert_eq!(h.observable(), before, "window passed: {passed}");
        h.engine.check_invariants().unwrap();
    }
}
