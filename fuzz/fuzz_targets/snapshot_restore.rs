//! Fuzz target: restoring corrupted snapshots never panics, and whatever it accepts
//! is consistent and canonical.
#![no_main]

use arbitrary::Arbitrary;
use atlas_engine::Engine;
use atlas_fuzz::{Op, engine, run};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    ops: Vec<Op>,
    /// (position, xor mask) pairs applied to the valid snapshot.
    flips: Vec<(u16, u8)>,
    /// Bytes cut from the end.
    cut: u8,
}

fuzz_target!(|input: Input| {
    let mut e = engine();
    run(&mut e, &input.ops);
    let mut bytes = e.snapshot();
    for &(at, mask) in &input.flips {
        let len = bytes.len();
        bytes[usize::from(at) % len] ^= mask;
    }
    bytes.truncate(bytes.len().saturating_sub(usize::from(input.cut)));
    if let Ok(restored) = Engine::restore(&bytes, e.config()) {
        restored.check_invariants().expect("a restored engine is consistent");
        assert_eq!(restored.snapshot(), bytes, "a restored snapshot is canonical");
    }
});
