//! Fuzz target: the journal decoders (entries, snapshots' client order ids)
//! never panic on stored bytes, and a valid batch with any corruption fails
//! verification instead of decoding to something else.
#![no_main]

use arbitrary::Arbitrary;
use atlas_engine::CommandKind;
use atlas_journal::{Actor, Batch, ChainHash, Entry, codec};
use atlas_types::{ProductId, Seq, Timestamp};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    raw: Vec<u8>,
    entries: u8,
    flips: Vec<(u16, u8)>,
}

fuzz_target!(|input: Input| {
    // Arbitrary bytes: errors, never panics.
    let _ = codec::decode(&input.raw);
    // A snapshot's client order ids: either encoding; what decodes encodes
    // to the canonical form, which decodes to the same set.
    if let Ok(set) = atlas_journal::ClientOrders::decode(&input.raw) {
        let canonical = set.encode();
        let again = atlas_journal::ClientOrders::decode(&canonical).expect("canonical bytes decode");
        assert_eq!(again, set);
        assert_eq!(again.encode(), canonical);
    }
    let raw = Batch {
        first_seq: Seq(1),
        last_seq: Seq(1),
        prev_hash: ChainHash::GENESIS,
        hash: ChainHash::GENESIS,
        blob: input.raw.clone(),
    };
    let _ = raw.decode();

    // A valid batch, then damage: must be refused.
    let n = u64::from(input.entries % 16) + 1;
    let entries: Vec<Entry> = (1..=n)
        .map(|i| Entry {
            seq: Seq(i),
            time: Timestamp(i as i64),
            actor: Actor::SYSTEM,
            client_order_id: (i % 2 == 0).then(|| format!("c{i}")),
            command: CommandKind::Halt { product: ProductId(i as u32) },
        })
        .collect();
    let mut batch = Batch::encode(&entries, ChainHash::GENESIS);
    assert_eq!(batch.decode().expect("valid"), entries);
    let mut changed = false;
    for &(at, mask) in &input.flips {
        if mask != 0 {
            let len = batch.blob.len();
            batch.blob[usize::from(at) % len] ^= mask;
            changed = true;
        }
    }
    if changed && batch.blob != Batch::encode(&entries, ChainHash::GENESIS).blob {
        assert!(batch.decode().is_err(), "a damaged batch decoded");
    }
});
