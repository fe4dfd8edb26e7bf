//! The same durability tests on both backends: a real SQLite file and a real
//! PostgreSQL server (a throwaway cluster). What the sequencer acknowledged survives
//! a restart, recovery uses snapshots, client order ids persist, verification
//! catches tampering in the database, and a PostgreSQL outage makes the shard fail
//! fast and then resume without losing anything acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_engine::{CommandKind, Event, NewOrder, OrderType, ProductSpec, SelfTradePrevention, TimeInForce};
use atlas_journal::{
    Actor, RecoveryError, Sequencer, SequencerConfig, Storage, SubmitError, recover, verify,
};
use atlas_store::{PgStore, SqliteStore};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Side};
use common::PgCluster;

type Open = Arc<dyn Fn() -> Box<dyn Storage> + Send + Sync>;

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
    SequencerConfig {
        snapshot_every_commands: 250,
        batch_max: 64,
        retry_every: Duration::from_millis(50),
        ..Default::default()
    }
}

fn list(s: &Sequencer) {
    let spec = ProductSpec { id: ProductId(1), tick: Price(1), lot: Qty(1) };
    s.handle().submit_wait(Actor::SYSTEM, None, CommandKind::AddProduct(spec)).unwrap();
}

/// Submits `n` orders from 4 threads; returns the number of trades they made.
fn run(open: &Open, n: u32, first: bool) -> usize {
    let s = Sequencer::start(open(), config()).unwrap();
    if first {
        list(&s);
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

fn survives_restart_and_verifies(open: Open, target: &str) {
    assert!(run(&open, 1_000, true) > 0);
    let mut store = open();
    let first = recover(&mut store, config().engine).unwrap();
    assert_eq!(first.engine.last_seq(), 1_001);
    assert!(first.snapshot_seq.is_some(), "snapshots were written");
    assert!(first.replayed < 300);
    let report = verify(&mut store, config().engine).unwrap();
    assert_eq!(report.entries, 1_001);
    assert_eq!(report.state_hash, first.engine.state_hash());
    // A snapshot is taken once 250 commands were handed to the snapshot
    // thread since the last, and they go in lots that close at 250 or after
    // 50 ms: so every 250 to 500 commands, fewer the faster the run.
    assert!(report.snapshots_checked >= 2, "{} snapshots", report.snapshots_checked);
    drop(store);
    // Start again on the same database: the sequence continues.
    run(&open, 400, false);
    let mut store = open();
    let second = recover(&mut store, config().engine).unwrap();
    assert_eq!(second.engine.last_seq(), 1_401);
    assert_eq!(verify(&mut store, config().engine).unwrap().state_hash, second.engine.state_hash());
    assert_eq!(second.next_order_id, 1_401);
    // The query tables are exactly what the journal implies, across the restart.
    common::tables_match_journal(&mut store, target);
}

fn client_order_ids_survive_restart(open: Open) {
    let cfg = SequencerConfig { snapshot_every_commands: 2, batch_max: 1, ..config() };
    let actor = Actor { user: 7, participant: Some(ParticipantId(7)) };
    let first = {
        let s = Sequencer::start(open(), cfg).unwrap();
        list(&s);
        let r = s.handle().submit_wait(actor, Some("cl-1".into()), order(7, Side::Buy, 100)).unwrap();
        for i in 0..5 {
            s.handle().submit_wait(actor, None, order(7, Side::Buy, 90 + i)).unwrap();
        }
        s.shutdown();
        r
    };
    let s = Sequencer::start(open(), cfg).unwrap();
    let retry = s.handle().submit_wait(actor, Some("cl-1".into()), order(7, Side::Buy, 100)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.order_id, first.order_id);
    s.shutdown();
    let mut store = open();
    assert!(recover(&mut store, cfg.engine).unwrap().snapshot_seq.is_some());
}

fn empty_database_is_genesis(open: Open) {
    let mut store = open();
    let r = recover(&mut store, config().engine).unwrap();
    assert_eq!(r.engine.last_seq(), 0);
    assert_eq!(r.next_order_id, 1);
    assert_eq!(verify(&mut store, config().engine).unwrap().entries, 0);
}

fn tampering_is_detected(open: Open, tamper: impl FnOnce()) {
    run(&open, 200, true);
    tamper();
    let mut store = open();
    match verify(&mut store, config().engine) {
        Err(RecoveryError::Journal(_)) => {}
        other => panic!("tampering went unnoticed: {other:?}"),
    }
}

/// Replay reads every batch holding a command after its cursor, in order and
/// across pages, whether the cursor ends a batch or falls inside one.
fn batches_are_read_from_the_one_holding_the_next_command(open: Open) {
    use atlas_journal::{Batch, ChainHash, projection::Effects};
    use atlas_types::Seq;
    const BATCHES: u64 = 100;
    let mut store = open();
    store.claim_writer().unwrap();
    for k in 0..BATCHES {
        let batch = Batch {
            first_seq: Seq(3 * k + 1),
            last_seq: Seq(3 * k + 3),
            prev_hash: ChainHash([0; 32]),
            hash: ChainHash([0; 32]),
            blob: vec![u8::try_from(k).unwrap(); 10],
        };
        store.append(&batch, &Effects::default()).unwrap();
    }
    for after in [0, 1, 2, 3, 4, 150, 151, 298, 299, 300, 1_000] {
        let mut read = Vec::new();
        store
            .for_each_batch(Seq(after), &mut |b| {
                read.push((b.first_seq.0, b.last_seq.0, b.blob[0]));
                Ok(())
            })
            .unwrap();
        let want: Vec<_> = (0..BATCHES)
            .filter(|k| 3 * k + 3 > after)
            .map(|k| (3 * k + 1, 3 * k + 3, u8::try_from(k).unwrap()))
            .collect();
        assert_eq!(read, want, "after {after}");
    }
}

fn sqlite() -> (tempfile::TempDir, Open) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atlas.db");
    (dir, Arc::new(move || Box::new(SqliteStore::open(&path).unwrap()) as Box<dyn Storage>))
}

fn postgres(cluster: &PgCluster, db: &str) -> Open {
    let url = cluster.database(db);
    Arc::new(move || Box::new(PgStore::connect(&url).unwrap()) as Box<dyn Storage>)
}

fn sql(url_or_path: &str, statement: &'static str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let n = if url_or_path.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(url_or_path).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap().rows_affected()
        } else {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{url_or_path}")).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap().rows_affected()
        };
        assert_eq!(n, 1, "{statement}");
    });
}

#[test]
fn sqlite_survives_restart_and_verifies() {
    let (dir, open) = sqlite();
    let path = dir.path().join("atlas.db").display().to_string();
    survives_restart_and_verifies(open, &path);
}

#[test]
fn sqlite_client_order_ids_survive_restart() {
    let (_dir, open) = sqlite();
    client_order_ids_survive_restart(open);
}

#[test]
fn sqlite_empty_database_is_genesis() {
    let (_dir, open) = sqlite();
    empty_database_is_genesis(open);
}

#[test]
fn sqlite_tampering_is_detected() {
    let (dir, open) = sqlite();
    let path = dir.path().join("atlas.db").display().to_string();
    tampering_is_detected(open, || {
        sql(
            &path,
            "UPDATE journal SET entries = CAST(substr(entries, 1, 30) || X'FF' || substr(entries, 32) AS BLOB) \
             WHERE first_seq = (SELECT first_seq FROM journal ORDER BY first_seq LIMIT 1 OFFSET 2)",
        )
    });
}

/// Two writers never share a shard: a second sequencer on the same database
/// either cannot start (SQLite, whose writer lock is held) or takes the shard
/// over and fences the first (PostgreSQL), whose later commands are refused and
/// never acknowledged. Either way the journal verifies.
fn single_writer(open: Open, second_is_refused: bool) {
    let first = Sequencer::start(open(), config()).unwrap();
    list(&first);
    let actor = Actor { user: 1, participant: Some(ParticipantId(1)) };
    first.handle().submit_wait(actor, None, order(1, Side::Buy, 50)).unwrap();
    let second = Sequencer::start(open(), config());
    if second_is_refused {
        let err = second.err().expect("a second writer on a locked database must not start");
        assert!(err.to_string().contains("in use by another Atlas process"), "{err}");
        first.shutdown();
        // The lock goes with the first writer.
        let again = Sequencer::start(open(), config()).unwrap();
        again.handle().submit_wait(actor, None, order(1, Side::Sell, 60)).unwrap();
        again.shutdown();
    } else {
        let second = second.unwrap();
        assert_eq!(
            first.handle().submit_wait(actor, None, order(1, Side::Buy, 51)).unwrap_err(),
            SubmitError::StorageUnavailable,
            "the fenced writer must not commit"
        );
        let r = second.handle().submit_wait(actor, None, order(1, Side::Sell, 60)).unwrap();
        assert_eq!(r.seq.0, 3, "the new writer continues the journal after the first's last commit");
        first.shutdown();
        second.shutdown();
    }
    let report = verify(&mut *open(), Default::default()).unwrap();
    assert_eq!(report.entries, 3);
}

/// The engine limits are recorded with the journal: a restart with other limits
/// is refused (its replay could accept or reject different orders).
#[test]
fn sqlite_engine_limits_are_recorded_with_the_journal() {
    let (_dir, open) = sqlite();
    let s = Sequencer::start(open(), config()).unwrap();
    list(&s);
    s.shutdown();
    let mut other = config();
    other.engine.orders_max = 7;
    let err = Sequencer::start(open(), other).err().expect("other limits must be refused");
    assert!(err.to_string().contains("orders_max"), "{err}");
    let mut store = open();
    assert_eq!(store.engine_config().unwrap(), Some(config().engine));
    Sequencer::start(open(), config()).unwrap().shutdown();
}

#[test]
fn sqlite_batches_are_read_from_the_one_holding_the_next_command() {
    let (_dir, open) = sqlite();
    batches_are_read_from_the_one_holding_the_next_command(open);
}

/// A journal written under the first schema (a rowid table and two indexes)
/// is rebuilt by migration 0011 as one keyed b-tree and replays the same.
#[test]
fn sqlite_journal_of_the_first_schema_is_replayed_after_0011() {
    use atlas_types::Seq;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atlas.db");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let mut before = sqlx::migrate!("migrations/sqlite");
        let at = before.migrations.iter().position(|m| m.version == 11).unwrap();
        before.migrations = before.migrations[..at].to_vec().into();
        before.run(&pool).await.unwrap();
        for k in 0..5i64 {
            sqlx::query("INSERT INTO journal VALUES (0, ?, ?, zeroblob(32), zeroblob(32), ?)")
                .bind(2 * k + 1)
                .bind(2 * k + 2)
                .bind(vec![u8::try_from(k).unwrap(); 3])
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    });
    let mut store = SqliteStore::open(&path).unwrap();
    let mut read = Vec::new();
    store
        .for_each_batch(Seq(3), &mut |b| {
            read.push((b.first_seq.0, b.last_seq.0, b.blob));
            Ok(())
        })
        .unwrap();
    assert_eq!(read, vec![(3, 4, vec![1; 3]), (5, 6, vec![2; 3]), (7, 8, vec![3; 3]), (9, 10, vec![4; 3])]);
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        let (sql,): (String,) = sqlx::query_as("SELECT sql FROM sqlite_schema WHERE name = 'journal'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(sql.contains("WITHOUT ROWID"), "{sql}");
        let (indexes,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'journal'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(indexes, 0, "the journal's only b-tree is its own");
    });
}

#[test]
fn sqlite_single_writer() {
    let (_dir, open) = sqlite();
    single_writer(open, true);
}

/// One cluster for the PostgreSQL suite (a database per scenario): starting a
/// cluster costs about a second.
#[test]
fn postgres_suite() {
    let cluster = PgCluster::start();
    let url = cluster.database("restart");
    let open: Open = {
        let url = url.clone();
        Arc::new(move || Box::new(PgStore::connect(&url).unwrap()) as Box<dyn Storage>)
    };
    survives_restart_and_verifies(open, &url);
    client_order_ids_survive_restart(postgres(&cluster, "client_ids"));
    empty_database_is_genesis(postgres(&cluster, "empty"));
    single_writer(postgres(&cluster, "writers"), false);
    batches_are_read_from_the_one_holding_the_next_command(postgres(&cluster, "reads"));
    let url = cluster.database("tamper");
    let open: Open = {
        let url = url.clone();
        Arc::new(move || Box::new(PgStore::connect(&url).unwrap()) as Box<dyn Storage>)
    };
    tampering_is_detected(open, || {
        sql(
            &url,
            "UPDATE journal SET entries = overlay(entries placing '\\xff'::bytea from 31 for 1) \
             WHERE first_seq = (SELECT first_seq FROM journal ORDER BY first_seq LIMIT 1 OFFSET 2)",
        )
    });
}

/// Stop PostgreSQL under load: the shard answers fast errors (never an ack) while
/// it is down, resumes by replay when it is back, and loses nothing acknowledged.
#[test]
fn postgres_outage_fails_fast_and_resumes() {
    let cluster = PgCluster::start();
    let url = cluster.database("outage");
    let s = Sequencer::start(PgStore::connect(&url).unwrap(), config()).unwrap();
    list(&s);
    let h = s.handle();
    let actor = Actor { user: 1, participant: Some(ParticipantId(1)) };
    let mut acked = Vec::new();
    for i in 0..200 {
        acked.push(h.submit_wait(actor, None, order(1, Side::Buy, 50 + i % 10)).unwrap().seq);
    }
    cluster.stop();
    // The command in flight when the database dies fails (no ack) within the
    // pool's timeout; from then on the shard refuses new commands at once.
    let t = Instant::now();
    assert_eq!(h.submit_wait(actor, None, order(1, Side::Buy, 60)), Err(SubmitError::StorageUnavailable));
    assert!(t.elapsed() < Duration::from_secs(5), "the in-flight command waited {:?}", t.elapsed());
    let mut refusals = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(1) {
        let t = Instant::now();
        match h.submit_wait(actor, None, order(1, Side::Buy, 60)) {
            Err(SubmitError::StorageUnavailable) => {
                refusals += 1;
                assert!(t.elapsed() < Duration::from_millis(100), "a refusal took {:?}", t.elapsed());
            }
            Ok(r) => panic!("acknowledged {r:?} while the database was down"),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refusals > 100, "only {refusals} refusals in 1 s");
    assert!(!h.available());
    cluster.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !h.available() {
        assert!(Instant::now() < deadline, "the shard did not resume");
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = h.submit_wait(actor, None, order(1, Side::Sell, 50)).unwrap();
    assert!(after.events.iter().any(|e| matches!(e, Event::Trade { .. })));
    s.shutdown();
    let mut store = PgStore::connect(&url).unwrap();
    let report = verify(&mut store, config().engine).unwrap();
    assert_eq!(report.entries, after.seq.0);
    assert!(acked.iter().all(|seq| seq.0 <= report.entries));
}

/// SQLite writes a snapshot's bytes in chunks (short transactions beside the
/// journal's commits): a multi-chunk image reads back byte for byte, only the
/// newest few keep their bytes, and dropped ones leave no chunk behind.
#[test]
fn sqlite_snapshots_in_chunks() {
    use atlas_engine::StateHash;
    use atlas_journal::{ChainHash, ClientOrders, Snapshot};
    use atlas_types::{Seq, Timestamp};
    let (dir, open) = sqlite();
    let mut store = open();
    let image = |seq: u64| -> Vec<u8> { (0..2_500_000u64).map(|i| (i * 31 + seq) as u8).collect() };
    for seq in 1..=5u64 {
        let s = Snapshot {
            seq: Seq(seq),
            time: Timestamp(seq as i64),
            chain_hash: ChainHash([seq as u8; 32]),
            state_hash: StateHash([seq as u8 + 1; 32]),
            next_order_id: seq + 1,
            engine: image(seq),
            client_orders: ClientOrders::default(),
        };
        store.save_snapshot(&s).unwrap();
        let back = store.latest_snapshot().unwrap().unwrap();
        assert_eq!((back.seq, back.next_order_id, back.chain_hash), (s.seq, s.next_order_id, s.chain_hash));
        assert!(back.engine == s.engine, "snapshot {seq} reads back whole");
    }
    assert_eq!(store.snapshot_hashes().unwrap().len(), 5, "every snapshot keeps its hashes");
    let path = dir.path().join("atlas.db").display().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (chunks, seqs): (i64, i64) = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{path}")).await.unwrap();
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT seq) FROM snapshot_chunk")
            .fetch_one(&pool)
            .await
            .unwrap()
    });
    assert_eq!(seqs, 3, "only the newest three keep their bytes");
    assert_eq!(chunks, 3 * (3 + 1), "three 1 MiB chunks of engine and one of ids each");
}

/// A snapshot and a service's write both get written while the journal's writer
/// commits back to back: SQLite's busy handler polls, and a writer that retakes
/// the lock at once used to hold it at nearly every poll, so a snapshot under
/// sustained load waited out its busy timeout (a crashed test process never
/// wrote one), and so could a new participant or API key. All of them now take
/// turns at the lock.
#[test]
fn sqlite_writes_get_their_turn_between_back_to_back_commits() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use atlas_engine::StateHash;
    use atlas_journal::projection::Effects;
    use atlas_journal::{Batch, ChainHash, ClientOrders, Snapshot};
    use atlas_types::{Seq, Timestamp};
    let (dir, open) = sqlite();
    let mut store = open();
    store.claim_writer().unwrap();
    let mut sink = store.snapshot_sink().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let db = rt.block_on(atlas_store::Db::open_sqlite(&dir.path().join("atlas.db"))).unwrap();
    let (stop, commits) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let (stopped, counted) = (stop.clone(), commits.clone());
    // Bounded: 60 s at most, far beyond the sink's 5 s busy timeout.
    let writer = std::thread::spawn(move || {
        let start = Instant::now();
        let mut seq = 0u64;
        while !stopped.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
            seq += 1;
            let batch = Batch {
                first_seq: Seq(seq),
                last_seq: Seq(seq),
                prev_hash: ChainHash([0; 32]),
                hash: ChainHash([0; 32]),
                blob: vec![0; 64],
            };
            store.append(&batch, &Effects::default()).unwrap();
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    while commits.load(Ordering::Relaxed) < 20 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let snapshot = Snapshot {
        seq: Seq(1),
        time: Timestamp(1),
        chain_hash: ChainHash([1; 32]),
        state_hash: StateHash([2; 32]),
        next_order_id: 1,
        engine: vec![7; 3_000_000],
        client_orders: ClientOrders::default(),
    };
    let before = commits.load(Ordering::Relaxed);
    let saved = sink.save_snapshot(&snapshot);
    let during_snapshot = commits.load(Ordering::Relaxed) - before;
    // Several, each of which had to find its moment: one could be lucky.
    let before = commits.load(Ordering::Relaxed);
    let inserted: Result<Vec<_>, _> =
        (0..30).map(|i| rt.block_on(db.insert_participant(&format!("late {i}"), 1))).collect();
    let during_inserts = commits.load(Ordering::Relaxed) - before;
    let still_committing = !writer.is_finished();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    saved.expect("the snapshot is written while the writer commits");
    inserted.expect("a service's write goes in while the writer commits");
    assert!(still_committing, "the writer was committing throughout");
    // Taking turns, each transaction waits for about one commit: the snapshot's
    // transactions saw 7 or 8 here and the 30 inserts 30, against thousands while the
    // busy handler looked for gaps. The bounds leave room for a loaded machine
    // pausing this thread while the writer runs on.
    assert!(during_snapshot < 1_000, "the snapshot waited out {during_snapshot} commits");
    assert!(during_inserts < 3_000, "30 inserts waited out {during_inserts} commits");
    let mut store = open();
    assert_eq!(store.latest_snapshot().unwrap().map(|s| s.engine), Some(snapshot.engine));
}
