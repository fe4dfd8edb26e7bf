//! The sequencer acknowledges only what is committed, fails fast and recovers by
//! replay when storage fails, and its journal verifies.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use atlas_engine::{CommandKind, Event, NewOrder, OrderType, ProductSpec, SelfTradePrevention, TimeInForce};
use atlas_journal::memory::MemoryStorage;
use atlas_journal::{
    Actor, Batch, RecoveryError, Sequencer, SequencerConfig, Storage, SubmitError, recover, verify,
};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Seq, Side};

const P: ProductId = ProductId(1);

fn config() -> SequencerConfig {
    SequencerConfig {
        snapshot_every_commands: 0,
        retry_every: Duration::from_millis(10),
        ..Default::default()
    }
}

fn order(participant: u32, side: Side, price: i64) -> CommandKind {
    CommandKind::NewOrder(NewOrder {
        order_id: OrderId(0), // assigned by the sequencer
        participant: ParticipantId(participant),
        product: P,
        side,
        order_type: OrderType::Limit,
        time_in_force: TimeInForce::Gtc,
        quantity: Qty(10),
        price: Some(Price(price)),
        stop_price: None,
        post_only: false,
        self_trade_prevention: SelfTradePrevention::None,
    })
}

fn trader(p: u32) -> Actor {
    Actor { user: u64::from(p), participant: Some(ParticipantId(p)) }
}

fn list_product(s: &Sequencer) {
    let r = s
        .handle()
        .submit_wait(
            Actor::SYSTEM,
            None,
            CommandKind::AddProduct(ProductSpec { id: P, tick: Price(1), lot: Qty(1) }),
        )
        .unwrap();
    assert_eq!(r.events[0], Event::Accepted);
}

/// A book as level2 updates describe it: (is a bid, price) → quantity.
type LevelBook = std::collections::BTreeMap<(bool, i64), i64>;

/// Applies one level2 update's changes (a zero quantity removes the level).
fn apply_levels(book: &mut LevelBook, changes: &[(Side, Price, Qty)]) {
    for (side, price, qty) in changes {
        let key = (*side == Side::Buy, price.0);
        if qty.0 == 0 {
            book.remove(&key);
        } else {
            book.insert(key, qty.0);
        }
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn concurrent_producers_get_contiguous_committed_receipts() {
    let storage = MemoryStorage::default();
    let s = Sequencer::start(storage.clone(), config()).unwrap();
    list_product(&s);
    let mut threads = Vec::new();
    for p in 1..=8u32 {
        let h = s.handle();
        threads.push(std::thread::spawn(move || {
            (0..500)
                .map(|i| {
                    let side = if (i + p) % 2 == 0 { Side::Buy } else { Side::Sell };
                    h.submit_wait(
                        trader(p),
                        Some(format!("p{p}-{i}")),
                        order(p, side, 100 + i64::from(i % 7)),
                    )
                    .unwrap()
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut receipts: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    s.shutdown();
    receipts.sort_by_key(|r| r.seq);
    // Every receipt names a distinct, contiguous sequence number and order id.
    for (i, r) in receipts.iter().enumerate() {
        assert_eq!(r.seq, Seq(i as u64 + 2));
        assert_eq!(r.order_id, Some(OrderId(i as u64 + 1)));
    }
    // Everything acknowledged is in storage, and replay agrees with the receipts.
    let stored: Vec<_> = storage.batches().iter().flat_map(|b| b.decode().unwrap()).collect();
    assert_eq!(stored.len(), receipts.len() + 1);
    let mut st = storage.clone();
    let rec = recover(&mut st, config().engine).unwrap();
    let trades_in_receipts =
        receipts.iter().flat_map(|r| &r.events).filter(|e| matches!(e, Event::Trade { .. })).count();
    let report = verify(&mut st, config().engine).unwrap();
    assert_eq!(report.entries, 4_001);
    assert_eq!(report.state_hash, rec.engine.state_hash());
    assert!(trades_in_receipts > 0);
    // Times never go backwards.
    assert!(stored.windows(2).all(|w| w[0].time <= w[1].time));
}

#[test]
fn storage_failure_fails_fast_acks_nothing_and_recovers_by_replay() {
    let storage = MemoryStorage::default();
    let s = Sequencer::start(storage.clone(), config()).unwrap();
    list_product(&s);
    let h = s.handle();
    for i in 0..10 {
        h.submit_wait(trader(1), None, order(1, Side::Buy, 90 + i)).unwrap();
    }
    let committed = storage.last_seq();
    storage.down.store(true, Ordering::Release);
    // The next command cannot commit: its producer hears an error, not an ack.
    assert_eq!(h.submit_wait(trader(1), None, order(1, Side::Buy, 50)), Err(SubmitError::StorageUnavailable));
    // From now on the shard refuses at once.
    wait_until("unavailable", || !h.available());
    let t0 = Instant::now();
    assert_eq!(
        h.submit(trader(1), None, order(1, Side::Buy, 50)).err(),
        Some(SubmitError::StorageUnavailable)
    );
    assert!(t0.elapsed() < Duration::from_millis(50));
    assert_eq!(storage.last_seq(), committed);
    // Storage returns: the shard rebuilds from it and continues where it left off.
    storage.down.store(false, Ordering::Release);
    wait_until("available", || h.available());
    let r = h.submit_wait(trader(1), None, order(1, Side::Sell, 95)).unwrap();
    assert_eq!(r.seq, Seq(committed + 1), "the failed command left no trace");
    assert!(r.events.iter().any(|e| matches!(e, Event::Trade { .. })));
    s.shutdown();
    let mut st = storage.clone();
    assert_eq!(verify(&mut st, config().engine).unwrap().entries, committed + 1);
}

#[test]
fn a_commit_that_landed_but_reported_failure_is_recovered_not_duplicated() {
    let storage = MemoryStorage::default();
    let s = Sequencer::start(storage.clone(), config()).unwrap();
    list_product(&s);
    let h = s.handle();
    storage.fail_after_append.store(true, Ordering::Release);
    assert_eq!(
        h.submit_wait(trader(1), None, order(1, Side::Buy, 100)),
        Err(SubmitError::StorageUnavailable)
    );
    storage.fail_after_append.store(false, Ordering::Release);
    wait_until("available", || h.available());
    // The order did land; recovery found it, so the book holds it and the next
    // command follows it.
    let r = h.submit_wait(trader(2), None, order(2, Side::Sell, 100)).unwrap();
    assert_eq!(r.seq, Seq(3));
    assert_eq!(r.order_id, Some(OrderId(2)));
    assert!(r.events.iter().any(|e| matches!(e, Event::Trade { maker_order: OrderId(1), .. })));
    s.shutdown();
}

#[test]
fn snapshots_bound_replay_and_verify_checks_them() {
    let storage = MemoryStorage::default();
    let cfg = SequencerConfig { snapshot_every_commands: 100, batch_max: 16, ..config() };
    let s = Sequencer::start(storage.clone(), cfg).unwrap();
    list_product(&s);
    let h = s.handle();
    for i in 0..1_000 {
        let side = if i % 3 == 0 { Side::Sell } else { Side::Buy };
        h.submit_wait(trader(1 + i % 5), None, order(1 + i % 5, side, 100 + i64::from(i % 11))).unwrap();
    }
    s.shutdown();
    let mut st = storage.clone();
    let rec = recover(&mut st, cfg.engine).unwrap();
    assert!(rec.snapshot_seq.is_some());
    assert!(rec.replayed < 200, "replayed {} entries despite snapshots", rec.replayed);
    let report = verify(&mut st, cfg.engine).unwrap();
    assert!(report.snapshots_checked >= 5);
    assert_eq!(report.state_hash, rec.engine.state_hash());
    // A restart continues exactly where the journal ends.
    let s2 = Sequencer::start(storage.clone(), cfg).unwrap();
    let r = s2.handle().submit_wait(trader(1), None, order(1, Side::Buy, 1)).unwrap();
    assert_eq!(r.seq, Seq(1_002));
    assert_eq!(r.order_id, Some(OrderId(1_001)));
    s2.shutdown();
}

#[test]
fn tampering_is_detected() {
    let storage = MemoryStorage::default();
    let s = Sequencer::start(storage.clone(), SequencerConfig { batch_max: 4, ..config() }).unwrap();
    list_product(&s);
    for i in 0..20 {
        s.handle().submit_wait(trader(1), None, order(1, Side::Buy, 100 + i)).unwrap();
    }
    s.shutdown();
    let batches = storage.batches();
    assert!(batches.len() > 3);
    // Re-encode a middle batch with a different price: well-formed, but the chain breaks.
    let mut entries = batches[2].decode().unwrap();
    if let CommandKind::NewOrder(o) = &mut entries[0].command {
        o.price = Some(Price(1));
    }
    let forged = Batch::encode(&entries, batches[2].prev_hash);
    storage.replace_batch(2, forged);
    let mut st = storage.clone();
    assert!(matches!(verify(&mut st, config().engine), Err(RecoveryError::Journal(_))));
    assert!(Sequencer::start(storage.clone(), config()).is_err(), "a damaged journal must not start");
}

#[test]
fn a_full_queue_is_refused_at_once() {
    let storage = MemoryStorage::default();
    let cfg = SequencerConfig { queue_max: 4, batch_max: 1, ..config() };
    let s = Sequencer::start(storage.clone(), cfg).unwrap();
    list_product(&s);
    let h = s.handle();
    storage.stalled.store(true, Ordering::Release);
    let mut tickets = Vec::new();
    let mut refused = 0;
    for i in 0..50 {
        match h.submit(trader(1), None, order(1, Side::Buy, 100 + i)) {
            Ok(t) => tickets.push(t),
            Err(SubmitError::Overloaded) => refused += 1,
            Err(e) => panic!("{e}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(refused > 0 && tickets.len() <= 4 + 3, "accepted {}, refused {refused}", tickets.len());
    storage.stalled.store(false, Ordering::Release);
    for t in tickets {
        assert!(t.blocking_recv().unwrap().is_ok());
    }
    s.shutdown();
    let mut st: Box<dyn Storage> = Box::new(storage);
    assert!(recover(st.as_mut(), cfg.engine).is_ok());
}

fn with_client_id(s: &Sequencer, p: u32, id: &str, price: i64) -> atlas_journal::Receipt {
    s.handle().submit_wait(trader(p), Some(id.to_owned()), order(p, Side::Buy, price)).unwrap()
}

/// Every snapshot holds the whole day's client order ids, not only those since
/// the one before: restarted from the latest snapshot alone, a retry of an id
/// from before the first snapshot is still answered with the original.
#[test]
fn every_snapshot_holds_the_days_client_order_ids() {
    let storage = MemoryStorage::default();
    let cfg = SequencerConfig { snapshot_every_commands: 2, batch_max: 1, ..config() };
    let s = Sequencer::start(storage.clone(), cfg).unwrap();
    list_product(&s);
    let early = with_client_id(&s, 1, "early", 100);
    for i in 0..6 {
        with_client_id(&s, 1, &format!("later{i}"), 101 + i);
    }
    let last = storage.last_seq();
    let mut st = storage.clone();
    wait_until("a snapshot of everything", || {
        st.latest_snapshot().unwrap().is_some_and(|snap| snap.seq.0 == last)
    });
    assert!(st.snapshot_hashes().unwrap().len() >= 3);
    s.shutdown();
    let s = Sequencer::start(storage.clone(), cfg).unwrap();
    let again = with_client_id(&s, 1, "early", 100);
    assert!(again.duplicate && again.order_id == early.order_id, "{again:?}");
    s.shutdown();
}

#[test]
fn a_retried_client_order_id_returns_the_original_and_creates_nothing() {
    let storage = MemoryStorage::default();
    let cfg = SequencerConfig { snapshot_every_commands: 3, ..config() };
    let s = Sequencer::start(storage.clone(), cfg).unwrap();
    list_product(&s);
    let first = with_client_id(&s, 1, "abc", 100);
    assert!(!first.duplicate);
    let retry = with_client_id(&s, 1, "abc", 100);
    assert!(retry.duplicate);
    assert_eq!((retry.seq, retry.order_id), (first.seq, first.order_id));
    // Another participant may use the same id.
    let other = with_client_id(&s, 2, "abc", 100);
    assert!(!other.duplicate && other.order_id != first.order_id);
    // A rejected order changed nothing: its id can be used again.
    let bad = with_client_id(&s, 1, "bad", 0);
    assert!(matches!(bad.events[..], [Event::Rejected { .. }]));
    assert!(!with_client_id(&s, 1, "bad", 100).duplicate);
    let journaled = storage.batches().iter().map(|b| b.decode().unwrap().len()).sum::<usize>();
    assert_eq!(journaled, 5, "the retry wrote nothing");
    s.shutdown();
    // After a restart (snapshot plus tail) the ids are still known...
    let s = Sequencer::start(storage.clone(), cfg).unwrap();
    let again = with_client_id(&s, 1, "abc", 100);
    assert!(again.duplicate && again.order_id == first.order_id);
    // ...until the trading day ends.
    s.handle().submit_wait(Actor::SYSTEM, None, CommandKind::EndOfDay { product: None }).unwrap();
    assert!(!with_client_id(&s, 1, "abc", 100).duplicate);
    s.shutdown();
}

/// A replace's client order id (a FIX OrderCancelReplaceRequest's ClOrdID)
/// is in use from then on, as a new order's is: a new order or another
/// replace that repeats it is answered with the order that holds it, also
/// after a restart; a refused replace uses nothing.
#[test]
fn a_replaces_client_order_id_is_in_use_like_a_new_orders() {
    let storage = MemoryStorage::default();
    let s = Sequencer::start(storage.clone(), config()).unwrap();
    list_product(&s);
    let amend = |s: &Sequencer, id: &str, order: Option<OrderId>, quantity: i64| {
        let amend = atlas_engine::Amend {
            order_id: order.unwrap(),
            participant: Some(ParticipantId(1)),
            quantity: Some(Qty(quantity)),
            price: None,
            stop_price: None,
        };
        s.handle().submit_wait(trader(1), Some(id.to_owned()), CommandKind::Amend(amend)).unwrap()
    };
    let first = with_client_id(&s, 1, "new", 100);
    let replaced = amend(&s, "replace-1", first.order_id, 9);
    assert!(!replaced.duplicate && replaced.events.first() == Some(&Event::Accepted), "{replaced:?}");
    let new_again = with_client_id(&s, 1, "replace-1", 100);
    assert!(new_again.duplicate && new_again.order_id == first.order_id, "{new_again:?}");
    let replace_again = amend(&s, "new", first.order_id, 8);
    assert!(replace_again.duplicate && replace_again.order_id == first.order_id, "{replace_again:?}");
    // A refused replace (of an order that does not exist) leaves its id free.
    let refused = amend(&s, "replace-2", Some(OrderId(999)), 8);
    assert!(matches!(refused.events[..], [Event::Rejected { .. }]), "{refused:?}");
    assert!(!amend(&s, "replace-2", first.order_id, 8).duplicate);
    // Another participant may use the id.
    assert!(!with_client_id(&s, 2, "replace-1", 100).duplicate);
    // Asked which order an id names: the replaced one, for either of its ids.
    let named = |s: &Sequencer, p: u32, id: &str| {
        s.handle().client_order(ParticipantId(p), id.to_owned()).unwrap().blocking_recv().unwrap()
    };
    assert_eq!(named(&s, 1, "replace-1"), first.order_id);
    assert_eq!(named(&s, 1, "new"), first.order_id);
    assert_eq!(named(&s, 1, "unused"), None);
    assert_ne!(named(&s, 2, "replace-1"), first.order_id);
    s.shutdown();
    let s = Sequencer::start(storage.clone(), config()).unwrap();
    let after_restart = with_client_id(&s, 1, "replace-2", 100);
    assert!(after_restart.duplicate && after_restart.order_id == first.order_id, "{after_restart:?}");
    s.shutdown();
}

#[test]
fn concurrent_retries_create_exactly_one_order() {
    let storage = MemoryStorage::default();
    let s = Sequencer::start(storage.clone(), config()).unwrap();
    list_product(&s);
    let tickets: Vec<_> = (0..200)
        .map(|_| s.handle().submit(trader(3), Some("same".into()), order(3, Side::Sell, 100)).unwrap())
        .collect();
    let receipts: Vec<_> = tickets.into_iter().map(|t| t.blocking_recv().unwrap().unwrap()).collect();
    let originals = receipts.iter().filter(|r| !r.duplicate).count();
    assert_eq!(originals, 1);
    assert!(receipts.iter().all(|r| r.order_id == receipts[0].order_id));
    s.shutdown();
}

/// A query sees the commands queued before it, and its answer waits for their
/// commit: it never shows anything unacknowledged.
#[test]
fn a_query_answers_only_after_the_commands_before_it_commit() {
    let storage = MemoryStorage::default();
    let s = Sequencer::start(storage.clone(), config()).unwrap();
    list_product(&s);
    let h = s.handle();
    storage.stalled.store(true, Ordering::Release);
    let mut ticket = h.submit(trader(1), None, order(1, Side::Buy, 90)).unwrap();
    let mut depth = h.query(|e| e.depth(ProductId(1), 10)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(ticket.try_recv().is_err() && depth.try_recv().is_err(), "nothing before the commit");
    storage.stalled.store(false, Ordering::Release);
    ticket.blocking_recv().unwrap().unwrap();
    let book = depth.blocking_recv().unwrap().unwrap();
    assert_eq!(book.bids.len(), 1);
    assert_eq!(book.bids[0].price, Price(90));
    s.shutdown();
}

/// What is matched while a commit is under way goes to storage in the next
/// commit, all of it: orders that arrive one by one during a slow commit are
/// matched one by one, and then committed together, not the first alone and
/// the rest a commit later. The merged batch verifies like any other, and the
/// stored rows are each order's final state.
#[test]
fn batches_matched_during_a_commit_are_committed_together() {
    let storage = MemoryStorage::default();
    let s = Sequencer::start(storage.clone(), config()).unwrap();
    list_product(&s);
    let h = s.handle();
    let before = storage.batches().len();
    let mut feed = h.market_feed();
    storage.stalled.store(true, Ordering::Release);
    let first = h.submit(trader(1), None, order(1, Side::Buy, 90)).unwrap();
    // The writer holds the first order's commit; the rest arrive apart, so the
    // engine matches each on its own.
    std::thread::sleep(Duration::from_millis(20));
    let mut tickets = Vec::new();
    for (p, side, price) in
        [(1, Side::Buy, 100), (2, Side::Sell, 100), (1, Side::Buy, 95), (2, Side::Sell, 94)]
    {
        tickets.push(h.submit(trader(p), None, order(p, side, price)).unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
    storage.stalled.store(false, Ordering::Release);
    first.blocking_recv().unwrap().unwrap();
    let receipts: Vec<_> = tickets.into_iter().map(|t| t.blocking_recv().unwrap().unwrap()).collect();
    let seqs: Vec<u64> = receipts.iter().map(|r| r.seq.0).collect();
    assert_eq!(seqs, [3, 4, 5, 6], "contiguous, in arrival order");
    let batches = storage.batches();
    let firsts_and_lasts: Vec<_> = batches[before..].iter().map(|b| (b.first_seq.0, b.last_seq.0)).collect();
    assert_eq!(firsts_and_lasts, [(2, 2), (3, 6)], "one commit for everything matched during the first");
    s.shutdown();
    let mut st = storage.clone();
    let report = verify(&mut st, config().engine).unwrap();
    assert_eq!(report.entries, 6);
    // The merged commit's rows (as published): each order it changed once, in
    // its final state, though orders 2 and 4 were entered by one engine batch
    // and filled by the next.
    let published = feed.blocking_recv().unwrap();
    assert_eq!(published.commands, (2, 2));
    let merged = feed.blocking_recv().unwrap();
    assert_eq!(merged.commands, (3, 6));
    let rows: Vec<_> = merged.orders.iter().map(|r| (r.id.0, r.open.0, r.traded.0)).collect();
    assert_eq!(rows, [(2, 0, 10), (3, 0, 10), (4, 0, 10), (5, 0, 10)]);
    assert_eq!(merged.trades.len(), 2);
    let levels: Vec<u64> = [&published, &merged]
        .iter()
        .flat_map(|b| &b.events)
        .filter_map(|e| match e {
            atlas_journal::market::MarketEvent::Levels(u) => Some(u.sequence),
            _ => None,
        })
        .collect();
    assert!(levels.windows(2).all(|w| w[1] == w[0] + 1), "level2 numbers stay contiguous: {levels:?}");
    let merged_levels =
        merged.events.iter().filter(|e| matches!(e, atlas_journal::market::MarketEvent::Levels(_)));
    assert_eq!(merged_levels.count(), 1, "one level2 update for the product, however many batches merged");
    assert_eq!(storage.trades().len(), 2);
}

/// A query reads the book and its level2 number at one point while batches
/// merge around it (commits are made slow on and off): the book rebuilt from
/// the feed up to that number is the book the query read, every time. A
/// batch merged after the query into the update it names would break this.
#[test]
fn queries_between_merged_batches_name_the_book_they_read() {
    use atlas_journal::market::MarketEvent;
    use std::collections::HashMap;
    let storage = MemoryStorage::default();
    let s = Sequencer::start(storage.clone(), config()).unwrap();
    list_product(&s);
    let h = s.handle();
    let mut feed = h.market_feed();
    let sender = {
        let h = h.clone();
        std::thread::spawn(move || {
            let tickets: Vec<_> = (0..3_000u32)
                .map(|i| {
                    if i % 50 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
                    let price =
                        if side == Side::Buy { 90 + i64::from(i % 13) } else { 97 + i64::from(i % 11) };
                    h.submit(trader(1 + i % 3), None, order(1 + i % 3, side, price)).unwrap()
                })
                .collect();
            for t in tickets {
                t.blocking_recv().unwrap().unwrap();
            }
        })
    };
    let mut reads = Vec::new();
    for i in 0..150 {
        storage.stalled.store(i % 3 == 0, Ordering::Release);
        reads.push(h.query_market(|e, m| (m.get(P), e.depth(P, usize::MAX).unwrap())).unwrap());
        std::thread::sleep(Duration::from_micros(300));
    }
    storage.stalled.store(false, Ordering::Release);
    sender.join().unwrap();
    let mut wanted: HashMap<u64, Vec<LevelBook>> = HashMap::new();
    for r in reads {
        let (seq, depth) = r.blocking_recv().unwrap();
        let book: LevelBook = depth
            .bids
            .iter()
            .map(|l| ((true, l.price.0), l.quantity.0))
            .chain(depth.asks.iter().map(|l| ((false, l.price.0), l.quantity.0)))
            .collect();
        wanted.entry(seq).or_default().push(book);
    }
    let last_wanted = *wanted.keys().max().unwrap();
    let first_wanted = *wanted.keys().min().unwrap();
    assert!(wanted.len() > 10, "the reads saw the book change: {} distinct numbers", wanted.len());
    let mut book = LevelBook::new();
    let mut last = 0;
    let mut checked = usize::from(first_wanted == 0);
    while last < last_wanted {
        for ev in &feed.blocking_recv().unwrap().events {
            if let MarketEvent::Levels(u) = ev {
                assert!(last == 0 || u.sequence == last + 1, "no gaps");
                last = u.sequence;
                apply_levels(&mut book, &u.changes);
                for read in wanted.get(&last).into_iter().flatten() {
                    assert_eq!(read, &book, "the book a query read at level2 number {last}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 100, "{checked} reads checked");
    s.shutdown();
}

/// Open-order limits are checked on the engine thread in order with the
/// commands: concurrent producers can never get past them together, and a
/// refused order leaves no trace in the journal.
#[test]
fn risk_limits_hold_under_concurrency_and_journal_nothing() {
    use atlas_journal::risk::{RiskLimits, RiskReject, RiskUpdate};
    let storage = MemoryStorage::default();
    let s = Sequencer::start(storage.clone(), config()).unwrap();
    list_product(&s);
    let h = s.handle();
    let limits = RiskLimits { open_orders_max: Some(10), collar_bps: None };
    h.risk(RiskUpdate::Limits(ParticipantId(1), limits)).unwrap().blocking_recv().unwrap();
    let before = storage.last_seq();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let h = h.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|i| h.submit_wait(trader(1), None, order(1, Side::Buy, 50 + t * 5 + i)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let refused = results.iter().filter(|r| **r == Err(SubmitError::Risk(RiskReject::OpenOrders))).count();
    assert_eq!((accepted, refused), (10, 30));
    assert_eq!(storage.last_seq(), before + 10, "refusals are not journaled");
    // Another participant is not limited; the kill switch blocks.
    assert!(h.submit_wait(trader(2), None, order(2, Side::Buy, 40)).is_ok());
    h.risk(RiskUpdate::Kill(ParticipantId(2), true)).unwrap().blocking_recv().unwrap();
    assert_eq!(
        h.submit_wait(trader(2), None, order(2, Side::Buy, 40)),
        Err(SubmitError::Risk(RiskReject::Killed))
    );
    s.shutdown();
}

/// A quiet shard still snapshots: after `snapshot_every` has passed with
/// anything committed, whatever the command count.
#[test]
fn snapshots_are_also_taken_on_time() {
    let storage = MemoryStorage::default();
    let cfg = SequencerConfig {
        snapshot_every_commands: 1_000_000,
        snapshot_every: Duration::from_millis(50),
        ..config()
    };
    let s = Sequencer::start(storage.clone(), cfg).unwrap();
    list_product(&s);
    let h = s.handle();
    h.submit_wait(trader(1), None, order(1, Side::Buy, 90)).unwrap();
    let last = storage.last_seq();
    wait_until("a timed snapshot", || {
        let mut st = storage.clone();
        st.latest_snapshot().ok().flatten().is_some_and(|snap| snap.seq.0 == last)
    });
    s.shutdown();
}

/// The market feed: after commit, each product's level changes numbered one by
/// one and its trades; a query sees the same numbering as the feed.
#[test]
fn the_market_feed_numbers_level_updates_per_product() {
    use atlas_journal::market::MarketEvent;
    let s = Sequencer::start(MemoryStorage::default(), config()).unwrap();
    list_product(&s);
    let h = s.handle();
    let mut feed = h.market_feed();
    h.submit_wait(trader(1), None, order(1, Side::Buy, 100)).unwrap();
    h.submit_wait(trader(1), None, order(1, Side::Buy, 101)).unwrap();
    h.submit_wait(trader(2), None, order(2, Side::Sell, 100)).unwrap();
    let (seq, best) = h.query_market(|e, m| (m.get(P), e.best(P))).unwrap().blocking_recv().unwrap();
    let mut updates = Vec::new();
    let mut matches = Vec::new();
    while updates.len() < 3 {
        let batch = feed.blocking_recv().unwrap();
        for ev in &batch.events {
            match ev {
                MarketEvent::Levels(u) => updates.push(u.clone()),
                MarketEvent::Match(m) => matches.push(m.clone()),
                MarketEvent::Reset => panic!("no reset expected"),
            }
        }
    }
    assert_eq!(updates.iter().map(|u| u.sequence).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(seq, 3, "the query sees the feed's numbering");
    assert_eq!(updates[0].changes, [(Side::Buy, Price(100), Qty(10))]);
    // The sell traded against 101 (the best bid): that level is gone.
    assert_eq!(updates[2].changes, [(Side::Buy, Price(101), Qty(0))]);
    assert_eq!(matches.len(), 1);
    assert_eq!(
        (matches[0].price, matches[0].quantity, matches[0].maker_side),
        (Price(101), Qty(10), Side::Buy)
    );
    assert_eq!(best.unwrap().0.unwrap().price, Price(100));
    s.shutdown();
}

/// Each published batch names the journal numbers of its commands, so a
/// receiver tells the orders a batch entered from those it only changed, even
/// for an order entered and filled within one batch and for a receiver that
/// missed the batches before: every order is entered by exactly one batch.
#[test]
fn each_batch_names_its_commands_so_each_order_is_entered_once() {
    use std::collections::HashMap;
    let s = Sequencer::start(MemoryStorage::default(), config()).unwrap();
    list_product(&s);
    let h = s.handle();
    let mut feed = h.market_feed();
    // Crossing prices, pipelined: batches hold several commands, and orders
    // rest and fill within one.
    let tickets: Vec<_> = (0..1_000u32)
        .map(|i| {
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            h.submit(trader(1 + i % 2), None, order(1 + i % 2, side, 100 + i64::from(i % 3))).unwrap()
        })
        .collect();
    for t in tickets {
        t.blocking_recv().unwrap().unwrap();
    }
    let last = h.query_market(|e, _| e.last_seq()).unwrap().blocking_recv().unwrap();
    let mut entered: HashMap<u64, u32> = HashMap::new();
    let mut changed = std::collections::HashSet::new();
    let (mut prev, mut multi, mut late) = (0u64, 0, 0);
    while prev < last {
        let batch = feed.blocking_recv().unwrap();
        let (first, end) = batch.commands;
        assert!(first > prev && first <= end, "commands {first}..={end} after {prev}");
        prev = end;
        multi += usize::from(end > first);
        for row in &batch.orders {
            assert!(row.update_seq.0 >= first && row.update_seq.0 <= end, "changed by this batch");
            changed.insert(row.id.0);
            if (first..=end).contains(&row.entry_seq.0) {
                *entered.entry(row.id.0).or_default() += 1;
                // Entered here, but last changed by a later command of it.
                late += usize::from(row.update_seq.0 > row.entry_seq.0 && row.update_seq.0 > first);
            }
        }
    }
    assert_eq!(prev, last);
    assert!(multi > 0, "some batches hold several commands");
    assert!(late > 0, "some orders are entered and changed again within one batch");
    assert_eq!(entered.len(), changed.len(), "every order is entered by some batch");
    assert!(entered.values().all(|n| *n == 1), "and by one only");
    s.shutdown();
}

/// Under load, batches coalesce level changes: still one number per product per
/// update, no gaps, and the book rebuilt from the feed equals the engine's at
/// the sequence a query reports.
#[test]
fn coalesced_level_updates_rebuild_the_book() {
    use atlas_journal::market::MarketEvent;
    let s = Sequencer::start(MemoryStorage::default(), config()).unwrap();
    list_product(&s);
    let h = s.handle();
    let mut feed = h.market_feed();
    let tickets: Vec<_> = (0..2_000u32)
        .map(|i| {
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            let price = if side == Side::Buy { 90 + i64::from(i % 13) } else { 97 + i64::from(i % 11) };
            h.submit(trader(1 + i % 3), None, order(1 + i % 3, side, price)).unwrap()
        })
        .collect();
    for t in tickets {
        t.blocking_recv().unwrap().unwrap();
    }
    let (seq, depth) =
        h.query_market(|e, m| (m.get(P), e.depth(P, usize::MAX).unwrap())).unwrap().blocking_recv().unwrap();
    let mut book = LevelBook::new();
    let mut last = 0;
    let mut updates = 0;
    while last < seq {
        for ev in &feed.blocking_recv().unwrap().events {
            if let MarketEvent::Levels(u) = ev {
                assert_eq!(u.sequence, last + 1, "no gaps");
                last = u.sequence;
                updates += 1;
                apply_levels(&mut book, &u.changes);
            }
        }
    }
    assert_eq!(last, seq);
    assert!(updates >= 1);
    let mut engine = LevelBook::new();
    for l in &depth.bids {
        engine.insert((true, l.price.0), l.quantity.0);
    }
    for l in &depth.asks {
        engine.insert((false, l.price.0), l.quantity.0);
    }
    assert_eq!(book, engine);
    s.shutdown();
}
