//! Crash test, on SQLite and on PostgreSQL: the real binary, eight concurrent
//! producers, SIGKILL at staggered moments twenty times, each run recovering the
//! last one's journal. Every command the process acknowledged must be in the
//! journal with the same order id, the journal must verify from genesis, and
//! recovery through snapshots must reach the same state hash as a replay from
//! genesis.

#![allow(clippy::expect_used)]

#[path = "../../store/tests/common/mod.rs"]
mod pg;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atlas_engine::{CommandKind, EngineConfig};
use atlas_journal::{Storage, recover, verify};
use atlas_store::{PgStore, SqliteStore};
use atlas_types::Seq;

const ROUNDS: u64 = 20;
/// Commands between snapshots in the crashed process.
const SNAPSHOT_EVERY: usize = 100;

#[test]
fn sigkill_under_load_loses_nothing_acknowledged_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("atlas.db");
    crash_rounds(dir.path(), None, &mut || Box::new(SqliteStore::open(&path).expect("open")));
    let mut store = SqliteStore::open(&path).expect("open");
    pg::tables_match_journal(&mut store, &path.display().to_string());
}

#[test]
fn sigkill_under_load_loses_nothing_acknowledged_postgres() {
    let cluster = pg::PgCluster::start();
    let url = cluster.database("crash");
    let dir = tempfile::tempdir().expect("temp dir");
    crash_rounds(dir.path(), Some(&url), &mut || Box::new(PgStore::connect(&url).expect("connect")));
    let mut store = PgStore::connect(&url).expect("connect");
    pg::tables_match_journal(&mut store, &url);
}

fn crash_rounds(dir: &std::path::Path, url: Option<&str>, open: &mut dyn FnMut() -> Box<dyn Storage>) {
    let data_dir = dir.to_str().expect("utf-8 path").to_owned();
    let bin = env!("CARGO_BIN_EXE_atlas");
    let mut args = vec!["journal-load", "--data-dir", &data_dir, "--producers", "8", "--snapshot-every"];
    let every = SNAPSHOT_EVERY.to_string();
    args.push(&every);
    if let Some(url) = url {
        args.extend(["--database-url", url]);
    }
    let mut acked: Vec<(u64, u64)> = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(bin)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start atlas");
        let stdout = child.stdout.take().expect("stdout");
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| {
                    let mut parts = line.split(' ');
                    (parts.next() == Some("ACK")).then_some(())?;
                    let seq = parts.next()?.parse().ok()?;
                    let order = parts.next()?.parse().ok()?;
                    counted.fetch_add(1, Ordering::Relaxed);
                    Some((seq, order))
                })
                .collect::<Vec<(u64, u64)>>()
        });
        // Kill under load: once the process acknowledges its first command (a
        // loaded machine can take a while to start a debug build and recover),
        // then at a staggered, repeatable moment 50 to 350 ms later. Every
        // fourth round first waits for several snapshots' worth of commands:
        // on a slow disk a whole round can fit between two snapshots, and
        // recovery from a snapshot must be exercised as well as from genesis.
        let wanted = if round % 4 == 0 { 5 * SNAPSHOT_EVERY } else { 1 };
        let started = wait_for(&count, wanted, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(50 + (round * 157) % 300));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let lines = reader.join().expect("reader");
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        assert!(
            started,
            "round {round}: {} of {wanted} acknowledgements within 60 s; stderr:\n{stderr}",
            lines.len()
        );
        assert!(!lines.is_empty(), "round {round}: no command acknowledged; stderr:\n{stderr}");
        acked.extend(lines);
    }

    let mut store = open();
    let mut journal: HashMap<u64, u64> = HashMap::new();
    store
        .for_each_batch(Seq(0), &mut |b| {
            for e in b.decode()? {
                let order = match e.command {
                    CommandKind::NewOrder(o) => o.order_id.0,
                    _ => 0,
                };
                journal.insert(e.seq.0, order);
            }
            Ok(())
        })
        .expect("read journal");
    let mut seen = std::collections::HashSet::new();
    for (seq, order) in &acked {
        assert!(seen.insert(*seq), "seq {seq} acknowledged twice");
        assert_eq!(journal.get(seq), Some(order), "acknowledged seq {seq} is missing or different");
    }
    let report = verify(&mut store, EngineConfig::default()).expect("the journal verifies from genesis");
    assert!(report.snapshots_checked > 0, "no snapshot was written in {} acknowledged commands", acked.len());
    let rec = recover(&mut store, EngineConfig::default()).expect("recovery");
    assert_eq!(rec.engine.state_hash(), report.state_hash, "snapshot recovery and genesis replay agree");
    // The binary's own verification agrees.
    let mut verify_args = vec!["verify", "--data-dir", &data_dir];
    if let Some(url) = url {
        verify_args.extend(["--database-url", url]);
    }
    let status = Command::new(bin).args(&verify_args).output().expect("atlas verify");
    assert!(status.status.success(), "atlas verify failed: {}", String::from_utf8_lossy(&status.stderr));
    eprintln!(
        "crash test: {ROUNDS} kills, {} acknowledged commands checked, {} journal entries",
        acked.len(),
        journal.len()
    );
}

/// Waits until `count` reaches `wanted`, for at most `limit`; whether it did.
fn wait_for(count: &AtomicUsize, wanted: usize, limit: Duration) -> bool {
    let start = Instant::now();
    while count.load(Ordering::Relaxed) < wanted {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}
