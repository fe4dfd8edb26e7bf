//! The market data feed's client messages (`atlas_wire::feed::parse`): any
//! input is either refused with a message or parsed into a bounded request.
#![no_main]

use atlas_wire::feed::{AUTH_FIELD_CHARS_MAX, CHANNELS_MAX, NAME_CHARS_MAX, PRODUCTS_MAX, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Ok(r) => {
            assert!(!r.channels.is_empty() && r.channels.len() <= CHANNELS_MAX);
            for (name, products) in &r.channels {
                assert!(!name.is_empty() && name.chars().count() <= NAME_CHARS_MAX);
                // A channel's own list and the message's: each bounded.
                assert!(!products.is_empty() && products.len() <= 3 * PRODUCTS_MAX);
            }
            if let Some(a) = &r.auth {
                for f in [&a.key, &a.passphrase, &a.timestamp, &a.signature] {
                    assert!(!f.is_empty() && f.chars().count() <= AUTH_FIELD_CHARS_MAX);
                }
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
