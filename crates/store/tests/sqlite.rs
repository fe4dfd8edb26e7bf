//! The journal on a real SQLite file: what the sequencer acknowledged survives a
//! restart, recovery uses snapshots, and verification catches tampering on disk.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use atlas_engine::{CommandKind, Event, NewOrder, OrderType, ProductSpec, SelfTradePrevention, TimeInForce};
use atlas_journal::{Actor, RecoveryError, Sequencer, SequencerConfig, recover, verify};
use atlas_store::SqliteStore;
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Side};

fn order(participant: u32, side: Side, price: i64) -> CommandKind {
    CommandKind::NewOrder(NewOrder {
        order_id: OrderId(0),
        participant: ParticipantId(participant),
        product: ProductId(1),
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

fn config() -> SequencerConfig {
    SequencerConfig { snapshot_every_commands: 250, batch_max: 64, ..Default::default() }
}

/// Submits `n` orders from 4 threads; returns the receipts' count of trades.
fn run(path: &Path, n: u32, list: bool) -> usize {
    let s = Sequencer::start(SqliteStore::open(path).unwrap(), config()).unwrap();
    if list {
        let spec = ProductSpec { id: ProductId(1), tick: Price(1), lot: Qty(1) };
        s.handle().submit_wait(Actor::SYSTEM, None, CommandKind::AddProduct(spec)).unwrap();
    }
    let threads: Vec<_> = (1..=4u32)
        .map(|p| {
            let h = s.handle();
            std::thread::spawn(move || {
                let actor = Actor { user: u64::from(p), participant: Some(ParticipantId(p)) };
                (0..n / 4)
                    .map(|i| {
                        let side = if (i + p) % 2 == 0 { Side::Buy } else { Side::Sell };
                        let r = h.submit_wait(actor, None, order(p, side, 100 + i64::from(i % 9))).unwrap();
                        r.events.iter().filter(|e| matches!(e, Event::Trade { .. })).count()
                    })
                    .sum::<usize>()
            })
        })
        .collect();
    let trades = threads.into_iter().map(|t| t.join().unwrap()).sum();
    s.shutdown();
    trades
}

#[test]
fn acknowledged_commands_survive_restart_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atlas.db");
    assert!(run(&path, 1_000, true) > 0);
    let mut store = SqliteStore::open(&path).unwrap();
    let first = recover(&mut store, config().engine).unwrap();
    assert_eq!(first.engine.last_seq(), 1_001);
    assert!(first.snapshot_seq.is_some(), "snapshots were written");
    assert!(first.replayed < 300);
    let report = verify(&mut store, config().engine).unwrap();
    assert_eq!(report.entries, 1_001);
    assert_eq!(report.state_hash, first.engine.state_hash());
    assert!(report.snapshots_checked >= 3);
    drop(store);
    // Start again on the same file: the sequence continues.
    run(&path, 400, false);
    let mut store = SqliteStore::open(&path).unwrap();
    let second = recover(&mut store, config().engine).unwrap();
    assert_eq!(second.engine.last_seq(), 1_401);
    assert_eq!(verify(&mut store, config().engine).unwrap().state_hash, second.engine.state_hash());
    assert_eq!(second.next_order_id, 1_401);
}

#[test]
fn tampering_with_the_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atlas.db");
    run(&path, 200, true);
    // Change one byte of one stored batch behind the journal's back.
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        let n = sqlx::query(
            "UPDATE journal SET entries = CAST(substr(entries, 1, 30) || X'FF' || substr(entries, 32) AS BLOB) \
             WHERE first_seq = (SELECT first_seq FROM journal ORDER BY first_seq LIMIT 1 OFFSET 2)",
        )
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(n, 1);
    });
    let mut store = SqliteStore::open(&path).unwrap();
    match verify(&mut store, config().engine) {
        Err(RecoveryError::Journal(_)) => {}
        other => panic!("tampering went unnoticed: {other:?}"),
    }
}

#[test]
fn an_empty_database_recovers_to_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("new.db")).unwrap();
    let r = recover(&mut store, config().engine).unwrap();
    assert_eq!(r.engine.last_seq(), 0);
    assert_eq!(r.next_order_id, 1);
    assert_eq!(verify(&mut store, config().engine).unwrap().entries, 0);
}

#[test]
fn client_order_ids_survive_a_restart_through_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atlas.db");
    let cfg = SequencerConfig { snapshot_every_commands: 2, batch_max: 1, ..Default::default() };
    let actor = Actor { user: 7, participant: Some(ParticipantId(7)) };
    let first = {
        let s = Sequencer::start(SqliteStore::open(&path).unwrap(), cfg).unwrap();
        let spec = ProductSpec { id: ProductId(1), tick: Price(1), lot: Qty(1) };
        s.handle().submit_wait(Actor::SYSTEM, None, CommandKind::AddProduct(spec)).unwrap();
        let r = s.handle().submit_wait(actor, Some("cl-1".into()), order(7, Side::Buy, 100)).unwrap();
        for i in 0..5 {
            s.handle().submit_wait(actor, None, order(7, Side::Buy, 90 + i)).unwrap();
        }
        s.shutdown();
        r
    };
    let s = Sequencer::start(SqliteStore::open(&path).unwrap(), cfg).unwrap();
    let retry = s.handle().submit_wait(actor, Some("cl-1".into()), order(7, Side::Buy, 100)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.order_id, first.order_id);
    s.shutdown();
    let mut store = SqliteStore::open(&path).unwrap();
    assert!(recover(&mut store, cfg.engine).unwrap().snapshot_seq.is_some());
}
