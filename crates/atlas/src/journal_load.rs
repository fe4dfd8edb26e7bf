//! `atlas journal-load`: a test tool (hidden from help) that drives the sequencer
//! and the SQLite journal with concurrent producers and prints one line per
//! acknowledged command: `ACK <seq> <order id or 0>`. A line is printed only after
//! the command's receipt arrived, so each one is a claim that the command is
//! durable; the crash tests kill the process at random and hold it to that.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use atlas_engine::{CommandKind, NewOrder, OrderType, ProductSpec, SelfTradePrevention, TimeInForce};
use atlas_journal::{Actor, Sequencer, SequencerConfig, SubmitError};
use atlas_store::SqliteStore;
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Side};
use clap::Args;

use crate::verify::DATABASE_FILE;

/// Options of `atlas journal-load`.
#[derive(Args, Debug)]
pub struct JournalLoadArgs {
    /// The data directory (its journal is recovered first, then extended).
    #[arg(long)]
    data_dir: PathBuf,
    /// Concurrent producer threads.
    #[arg(long, default_value_t = 8)]
    producers: u32,
    /// Commands per producer (the process is usually killed long before).
    #[arg(long, default_value_t = 1_000_000)]
    commands: u64,
    /// Take a snapshot every this many commands.
    #[arg(long, default_value_t = 2_000)]
    snapshot_every: u64,
    /// A PostgreSQL URL instead of the SQLite file in the data directory.
    #[arg(long)]
    database_url: Option<String>,
}

/// Runs the producers until done (or killed).
pub fn run(args: JournalLoadArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    let store: Box<dyn atlas_journal::Storage> = match &args.database_url {
        Some(url) => Box::new(atlas_store::PgStore::connect(url)?),
        None => Box::new(SqliteStore::open(&args.data_dir.join(DATABASE_FILE))?),
    };
    let config = SequencerConfig {
        snapshot_every_commands: args.snapshot_every,
        batch_max: 256,
        ..SequencerConfig::default()
    };
    let s = Sequencer::start(store, config)?;
    let h = s.handle();
    let spec = ProductSpec { id: ProductId(1), tick: Price(1), lot: Qty(1) };
    // Accepted the first time, rejected (PRODUCT_EXISTS) after a restart. Like a
    // real client, retry while the shard is recovering: after a kill, the dead
    // process's last commit can land just after this one recovered, and the
    // shard then recovers again.
    loop {
        match h.submit_wait(Actor::SYSTEM, None, CommandKind::AddProduct(spec)) {
            Ok(_) => break,
            Err(SubmitError::StorageUnavailable | SubmitError::Overloaded) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => anyhow::bail!("listing the product: {e}"),
        }
    }
    let out = Arc::new(Mutex::new(std::io::BufWriter::new(std::io::stdout())));
    let producers: Vec<_> = (1..=args.producers)
        .map(|p| {
            let h = h.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                let actor = Actor { user: u64::from(p), participant: Some(ParticipantId(p)) };
                let mut mine: Vec<OrderId> = Vec::new();
                let mut x = u64::from(p).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for i in 0..args.commands {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let command = if i % 5 == 4 && !mine.is_empty() {
                        let id = mine.swap_remove((x as usize) % mine.len());
                        CommandKind::Cancel { order_id: id, participant: Some(ParticipantId(p)) }
                    } else {
                        CommandKind::NewOrder(NewOrder {
                            order_id: OrderId(0),
                            participant: ParticipantId(p),
                            product: ProductId(1),
                            side: if x % 2 == 0 { Side::Buy } else { Side::Sell },
                            order_type: OrderType::Limit,
                            time_in_force: TimeInForce::Gtc,
                            quantity: Qty(1 + (x % 50) as i64),
                            price: Some(Price(1_000 + (x % 21) as i64)),
                            stop_price: None,
                            post_only: false,
                            self_trade_prevention: SelfTradePrevention::None,
                        })
                    };
                    match h.submit_wait(actor, None, command) {
                        Ok(r) => {
                            if let Some(id) = r.order_id {
                                mine.push(id);
                            }
                            let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                            // Written after the ack, and flushed at once: the crash test
                            // must see an acknowledgement as soon as it is given, or an
                            // ack that ran ahead of its commit could hide in a buffer.
                            let _ = writeln!(o, "ACK {} {}", r.seq.0, r.order_id.map_or(0, |o| o.0));
                            let _ = o.flush();
                        }
                        Err(SubmitError::Overloaded) => std::thread::yield_now(),
                        // Not acknowledged: the shard is recovering. Move on, as a
                        // client would after 503 STORAGE_UNAVAILABLE.
                        Err(SubmitError::StorageUnavailable) => {
                            std::thread::sleep(std::time::Duration::from_millis(10));
                        }
                        Err(e) => {
                            eprintln!("producer {p}: {e}");
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    for p in producers {
        let _ = p.join();
    }
    let _ = out.lock().unwrap_or_else(|e| e.into_inner()).flush();
    s.shutdown();
    Ok(())
}
