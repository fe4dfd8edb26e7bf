//! Fuzz target: arbitrary command streams must keep every engine invariant, and
//! the final state must survive a snapshot round trip with the same hash.
#![no_main]

use atlas_engine::Engine;
use atlas_fuzz::{Op, engine, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|ops: Vec<Op>| {
    let mut e = engine();
    run(&mut e, &ops);
    let restored = Engine::restore(&e.snapshot(), e.config()).expect("a snapshot of a valid engine restores");
    assert_eq!(restored.state_hash(), e.state_hash());
});
