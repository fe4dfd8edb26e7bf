//! Parsers of what clients send over the wire, free of I/O and of the services'
//! state, so that each can be fuzzed alone (`fuzz/fuzz_targets/`).
//!
//! `feed`: the market data feed's subscribe and unsubscribe messages, in
//! Atlas's shape (`productIds`) and Coinbase Exchange's (`product_ids`, and
//! channels given as `{"name", "product_ids"}` objects).

pub mod feed;
