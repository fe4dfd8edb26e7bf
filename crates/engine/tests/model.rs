//! Property tests: the engine against the reference model, and snapshot/replay.
//!
//! Random command streams (valid and invalid orders of every type, cancels, amends,
//! mass cancels, halts, end of day, listing and delisting) must produce identical
//! events from the engine and from the reference, and identical final books. The
//! prices are drawn from a narrow band so that orders cross, queue and trigger stops
//! often. `PROPTEST_CASES` raises the case count (CI runs more).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use atlas_engine::*;
use atlas_types::*;
use common::reference::Reference;
use proptest::prelude::*;

/// A few participants, so that self-trades happen.
const PARTICIPANTS: u32 = 4;
/// Small on purpose: capacity rejections are part of the behaviour under test.
const ORDERS_MAX: u32 = 24;

#[derive(Clone, Debug)]
enum Op {
    New {
        product: u32,
        buy: bool,
        kind: u8,
        tif: u8,
        lots: i64,
        ticks: i64,
        stop_ticks: i64,
        post_only: bool,
        stp: u8,
        /// Reuse an old order id (must be rejected).
        stale_id: bool,
        /// Make one field invalid (0: none).
        corrupt: u8,
        /// A far price in ticks instead of `ticks` (wide streams only).
        far: Option<i64>,
    },
    Cancel {
        target: u64,
        who: u8,
    },
    Amend {
        target: u64,
        who: u8,
        lots: Option<i64>,
        ticks: Option<i64>,
        stop_ticks: Option<i64>,
        far: Option<i64>,
    },
    MassCancel {
        participant: u32,
        product: Option<u32>,
    },
    Halt(u32),
    Resume(u32),
    EndOfDay(Option<u32>),
    Add(u32),
    Remove(u32),
    Bust(u64),
}

/// Random ops. In `wide` streams a quarter of the prices are far away (up to 3M
/// ticks), so the dense ladder moves, grows and falls back to its sparse form.
fn op(wide: bool) -> impl Strategy<Value = Op> {
    let product = prop_oneof![6 => Just(1u32), 3 => Just(2u32), 1 => Just(3u32)];
    let far = move || {
        if wide { prop::option::weighted(0.25, 1i64..=3_000_000).boxed() } else { Just(None).boxed() }
    };
    prop_oneof![
        60 => (product.clone(), any::<bool>(), 0u8..10, 0u8..8, 1i64..=6, 1i64..=12, 1i64..=12,
               prop::bool::weighted(0.15), 0u8..10, prop::bool::weighted(0.03), 0u8..40, far())
            .prop_map(|(product, buy, kind, tif, lots, ticks, stop_ticks, post_only, stp, stale_id, corrupt, far)| {
                Op::New { product, buy, kind, tif, lots, ticks, stop_ticks, post_only, stp, stale_id, corrupt, far }
            }),
        10 => (0u64..6, 0u8..10).prop_map(|(target, who)| Op::Cancel { target, who }),
        14 => (0u64..6, 0u8..10, prop::option::of(1i64..=8), prop::option::of(1i64..=12),
               prop::option::weighted(0.2, 1i64..=12), far())
            .prop_map(|(target, who, lots, ticks, stop_ticks, far)| Op::Amend { target, who, lots, ticks, stop_ticks, far }),
        2 => (1..=PARTICIPANTS, prop::option::of(1u32..=3))
            .prop_map(|(participant, product)| Op::MassCancel { participant, product }),
        1 => (1u32..=3).prop_map(Op::Halt),
        2 => (1u32..=3).prop_map(Op::Resume),
        1 => prop::option::of(1u32..=3).prop_map(Op::EndOfDay),
        1 => (1u32..=4).prop_map(Op::Add),
        1 => (2u32..=3).prop_map(Op::Remove),
        1 => (0u64..60).prop_map(Op::Bust),
    ]
}

/// Product 1: tick 1, lot 1. Product 2: tick 5, lot 10. Product 3: tick 2, lot 5.
/// Product 4 has an invalid tick and is never listed.
fn spec(p: u32) -> ProductSpec {
    let (tick, lot) = match p {
        1 => (1, 1),
        2 => (5, 10),
        3 => (2, 5),
        _ => (0, 1),
    };
    ProductSpec { id: ProductId(p), tick: Price(tick), lot: Qty(lot) }
}

/// Turns random ops into commands. Order ids increase per new order; a cancel or
/// amend targets one of the last few ids, usually as its owner.
struct Gen {
    seq: u64,
    next_id: u64,
}

fn owner(id: u64) -> u32 {
    (id % u64::from(PARTICIPANTS)) as u32 + 1
}

impl Gen {
    fn command(&mut self, op: &Op) -> Command {
        self.seq += 1;
        let kind = match *op {
            Op::New {
                product,
                buy,
                kind,
                tif,
                lots,
                ticks,
                stop_ticks,
                post_only,
                stp,
                stale_id,
                corrupt,
                far,
            } => {
                let ticks = far.unwrap_or(ticks);
                let s = spec(product);
                let id = if stale_id && self.next_id > 1 { self.next_id - 1 } else { self.next_id };
                self.next_id += 1;
                let order_type = match kind {
                    0..=5 => OrderType::Limit,
                    6 | 7 => OrderType::Market,
                    8 => OrderType::Stop,
                    _ => OrderType::StopLimit,
                };
                let time_in_force = match tif {
                    0..=3 => TimeInForce::Gtc,
                    4 | 5 => TimeInForce::Day,
                    6 => TimeInForce::Ioc,
                    _ => TimeInForce::Fok,
                };
                let self_trade_prevention = match stp {
                    0..=4 => SelfTradePrevention::None,
                    5 => SelfTradePrevention::CancelNewest,
                    6 => SelfTradePrevention::CancelOldest,
                    7 => SelfTradePrevention::CancelBoth,
                    _ => SelfTradePrevention::Decrement,
                };
                let wants_price = matches!(order_type, OrderType::Limit | OrderType::StopLimit);
                let wants_stop = matches!(order_type, OrderType::Stop | OrderType::StopLimit);
                let mut o = NewOrder {
                    order_id: OrderId(id),
                    participant: ParticipantId(owner(id)),
                    product: ProductId(product),
                    side: if buy { Side::Buy } else { Side::Sell },
                    order_type,
                    time_in_force,
                    quantity: Qty(lots * s.lot.0),
                    price: wants_price.then_some(Price(ticks * s.tick.0)),
                    stop_price: wants_stop.then_some(Price(stop_ticks * s.tick.0)),
                    post_only: post_only && order_type == OrderType::Limit,
                    self_trade_prevention,
                };
                match corrupt {
                    1 => o.quantity = Qty(0),
                    2 => o.quantity = Qty(o.quantity.0 + 1),
                    3 => o.price = Some(Price(-s.tick.0)),
                    4 => o.price = o.price.map(|p| Price(p.0 + 1)),
                    5 => o.price = if o.price.is_some() { None } else { Some(Price(s.tick.0)) },
                    6 => o.stop_price = if o.stop_price.is_some() { None } else { Some(Price(s.tick.0)) },
                    7 => o.post_only = true,
                    _ => {}
                }
                CommandKind::NewOrder(o)
            }
            Op::Cancel { target, who } => {
                let id = self.next_id.saturating_sub(1 + target).max(1);
                CommandKind::Cancel { order_id: OrderId(id), participant: self.who(id, who) }
            }
            Op::Amend { target, who, lots, ticks, stop_ticks, far } => {
                let ticks = far.or(ticks);
                let id = self.next_id.saturating_sub(1 + target).max(1);
                // Amend in product 1's units: other products' orders then get
                // off-lot and off-tick values now and then, which must be rejected.
                CommandKind::Amend(Amend {
                    order_id: OrderId(id),
                    participant: self.who(id, who),
                    quantity: lots.map(|l| Qty(l * if id.is_multiple_of(2) { 10 } else { 1 })),
                    price: ticks.map(|t| Price(t * if id.is_multiple_of(3) { 1 } else { 5 })),
                    stop_price: stop_ticks.map(|t| Price(t * 5)),
                })
            }
            Op::MassCancel { participant, product } => CommandKind::MassCancel {
                participant: ParticipantId(participant),
                product: product.map(ProductId),
            },
            Op::Halt(p) => CommandKind::Halt { product: ProductId(p) },
            Op::Resume(p) => CommandKind::Resume { product: ProductId(p) },
            Op::EndOfDay(p) => CommandKind::EndOfDay { product: p.map(ProductId) },
            Op::Add(p) => CommandKind::AddProduct(spec(p)),
            Op::Remove(p) => CommandKind::RemoveProduct { product: ProductId(p) },
            Op::Bust(t) => CommandKind::BustTrade { trade: TradeId(t) },
        };
        Command { seq: Seq(self.seq), time: Timestamp(self.seq as i64 * 1_000), kind }
    }

    fn who(&self, id: u64, who: u8) -> Option<ParticipantId> {
        match who {
            0 => None,
            1 => Some(ParticipantId(owner(id) % PARTICIPANTS + 1)),
            _ => Some(ParticipantId(owner(id))),
        }
    }
}

fn setup() -> (Engine, Reference, Gen, Vec<Command>) {
    let mut g = Gen { seq: 0, next_id: 1 };
    let mut cmds = Vec::new();
    for p in [1, 2] {
        g.seq += 1;
        cmds.push(Command { seq: Seq(g.seq), time: Timestamp(0), kind: CommandKind::AddProduct(spec(p)) });
    }
    let config = EngineConfig { orders_max: ORDERS_MAX, orders_reserved: 16 };
    (Engine::new(config), Reference::new(ORDERS_MAX as usize), g, cmds)
}

fn assert_same_books(engine: &Engine, reference: &Reference) -> Result<(), TestCaseError> {
    let products: Vec<_> = engine.products().collect();
    prop_assert_eq!(&products, &reference.products());
    for p in products {
        prop_assert_eq!(engine.product(p), reference.product(p));
        for side in [Side::Buy, Side::Sell] {
            prop_assert_eq!(
                engine.orders_by_priority(p, side).unwrap(),
                reference.orders_by_priority(p, side)
            );
        }
        prop_assert_eq!(engine.stop_orders(p).unwrap(), reference.stop_orders(p));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { max_shrink_iters: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_reference(ops in prop::collection::vec(op(false), 1..300)) {
        check_against_reference(&ops)?;
    }

    #[test]
    fn engine_matches_reference_with_far_prices(ops in prop::collection::vec(op(true), 1..300)) {
        check_against_reference(&ops)?;
    }

    #[test]
    fn snapshot_restore_continues_identically(ops in prop::collection::vec(op(true), 1..200), cut in 0usize..200) {
        let (mut engine, _, mut g, setup_cmds) = setup();
        let config = engine.config();
        let mut commands = setup_cmds;
        commands.extend(ops.iter().map(|o| g.command(o)));
        let cut = cut.min(commands.len());
        let mut out = Vec::new();
        for cmd in &commands[..cut] {
            engine.apply(cmd, &mut out);
        }
        let mut restored = Engine::restore(&engine.snapshot(), config).unwrap();
        prop_assert_eq!(restored.state_hash(), engine.state_hash());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for cmd in &commands[cut..] {
            a.clear();
            b.clear();
            engine.apply(cmd, &mut a);
            restored.apply(cmd, &mut b);
            prop_assert_eq!(&a, &b);
        }
        prop_assert_eq!(restored.state_hash(), engine.state_hash());
        // Replaying from genesis on a fresh engine gives the same state too.
        let mut replayed = Engine::new(config);
        for cmd in &commands {
            replayed.apply(cmd, &mut out);
        }
        prop_assert_eq!(replayed.state_hash(), engine.state_hash());
    }
}

/// Applies the ops to the engine and the reference; every command's events, every
/// invariant and the final books must agree.
fn check_against_reference(ops: &[Op]) -> Result<(), TestCaseError> {
    let (mut engine, mut reference, mut g, setup_cmds) = setup();
    let mut out = Vec::new();
    let mut commands = setup_cmds;
    commands.extend(ops.iter().map(|o| g.command(o)));
    for cmd in &commands {
        out.clear();
        engine.apply(cmd, &mut out);
        let expected = reference.apply(cmd);
        prop_assert_eq!(&out, &expected, "command {:?}", cmd);
        if let Err(e) = engine.check_invariants() {
            return Err(TestCaseError::fail(format!("after {cmd:?}: {e}")));
        }
    }
    assert_same_books(&engine, &reference)
}

/// The generator must actually reach every behaviour, or the property above proves
/// little: count what 300 random streams produce.
#[test]
fn generated_streams_cover_every_behaviour() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use std::collections::BTreeMap;

    let mut runner =
        TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
    let strategy = prop::collection::vec(op(false), 100..300);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..300 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let (mut engine, _, mut g, setup_cmds) = setup();
        let mut out = Vec::new();
        for cmd in setup_cmds.iter().cloned().chain(ops.iter().map(|o| g.command(o))) {
            out.clear();
            engine.apply(&cmd, &mut out);
            for e in &out {
                let name = match e {
                    Event::Rejected { reason } => format!("reject {}", reason.code()),
                    Event::Cancelled { reason, .. } => format!("cancel {}", reason.code()),
                    Event::Amended { priority_kept, .. } => format!("amend kept={priority_kept}"),
                    Event::Trade { maker_participant, taker_participant, .. } => {
                        format!("trade self={}", maker_participant == taker_participant)
                    }
                    other => format!("{other:?}").split([' ', '{']).next().unwrap().to_string(),
                };
                *seen.entry(name).or_default() += 1;
            }
        }
    }
    let mut expected: Vec<String> = Reject::ALL.iter().map(|r| format!("reject {}", r.code())).collect();
    for c in [
        CancelReason::Requested,
        CancelReason::Operator,
        CancelReason::MassCancel,
        CancelReason::Unfilled,
        CancelReason::FillOrKill,
        CancelReason::SelfTrade,
        CancelReason::ProductRemoved,
    ] {
        expected.push(format!("cancel {}", c.code()));
    }
    for e in [
        "amend kept=true",
        "amend kept=false",
        "trade self=true",
        "trade self=false",
        "Booked",
        "Expired",
        "StopTriggered",
        "ProductStatus",
        "Level",
        "TradeBusted",
    ] {
        expected.push(e.to_string());
    }
    let missing: Vec<_> = expected.iter().filter(|e| !seen.contains_key(*e)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}\nseen: {seen:#?}");
}
