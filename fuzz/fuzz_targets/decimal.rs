//! Fuzz target: the decimal parser never panics, and what it accepts formats back
//! to the same value exactly.
#![no_main]

use atlas_types::decimal::{format_units, parse_units};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, u8)| {
    let (text, scale) = input;
    let scale = scale % 12;
    if let Ok(units) = parse_units(text, scale) {
        assert!(units >= 0);
        assert_eq!(parse_units(&format_units(units, scale), scale), Ok(units));
    }
});
