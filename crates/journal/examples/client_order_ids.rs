//! What the day's client order id set costs: resident memory per id, and the
//! time of an insert and of a lookup, for `N` ids of one participant (short
//! ids like `f123`, or UUIDs as Coinbase clients send with `uuid`).
//!
//! `cargo run --release -p atlas-journal --example client_order_ids -- 2000000 [uuid]`

use atlas_journal::ClientOrders;
use atlas_types::{OrderId, ParticipantId, Seq};

/// The process's resident bytes (`/proc/self/statm`, 4 KiB pages).
fn resident() -> Result<u64, Box<dyn std::error::Error>> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm.split_whitespace().nth(1).ok_or("statm")?.parse()?;
    Ok(pages * 4096)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(1_000_000), |v| v.parse())?;
    let uuid = args.next().is_some_and(|a| a == "uuid");
    let ids: Vec<String> = (0..n)
        .map(|i| if uuid { format!("{i:08x}-1234-4678-9abc-{:012x}", i * 7) } else { format!("f{i}") })
        .collect();
    let before = resident()?;
    let started = std::time::Instant::now();
    let mut set = ClientOrders::default();
    for (i, id) in ids.iter().enumerate() {
        set.insert(ParticipantId(1), id, OrderId(i as u64 + 1), Seq(i as u64 + 1));
    }
    let inserted = started.elapsed();
    let started = std::time::Instant::now();
    let found = ids.iter().filter(|id| set.get(ParticipantId(1), id).is_some()).count();
    let looked_up = started.elapsed();
    let grown = resident()?.saturating_sub(before);
    let per = |d: std::time::Duration| d.as_nanos() as f64 / n.max(1) as f64;
    println!(
        "{n} ids{}: {:.0} bytes each resident, insert {:.0} ns, lookup {:.0} ns ({found} found), {} snapshot bytes each",
        if uuid { " (UUIDs)" } else { "" },
        grown as f64 / n.max(1) as f64,
        per(inserted),
        per(looked_up),
        set.encode().len() / n.max(1),
    );
    Ok(())
}
