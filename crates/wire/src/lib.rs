//! Parsers of what clients send over the wire, free of I/O and of the services'
//! state, so that each can be fuzzed alone (`fuzz/fuzz_targets/`).
//!
//! `feed`: the market data feed's subscribe and unsubscribe messages, in
//! Atlas's shape (`productIds`) and Coinbase Exchange's (`product_ids`, and
//! channels given as `{"name", "product_ids"}` objects).
//!
//! `fix`: FIX 4.4 tag=value framing (BodyLength, CheckSum, fields) and encoding,
//! the layer under the FIX acceptor's session; `fix_dictionary`: the FIX 4.4
//! data dictionary the session checks every message against.

pub mod feed;
pub mod fix;
pub mod fix_dictionary;
