//! ccxt compatibility: stock `ccxt.coinbaseexchange` (Python), pointed at Atlas's
//! `/coinbase` surface, loads markets, places, fetches and cancels orders, and
//! reads the book, trades, the ticker, candles and fills (`tests/ccxt/check.py`). Two
//! brokers with API keys; the script also checks that one cannot see or cancel
//! the other's order. Then `ccxt.pro` watches the Coinbase-shaped feed
//! (`tests/ccxt/watch.py`: watchOrderBook, watchTrades, and on the signed user
//! channel watchOrders and watchMyTrades). Needs `python3` with
//! `ccxt` (scripts/test installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;
use server::{Server, admin};

/// Atlas with a product and two brokers with API keys.
fn setup(dir: &std::path::Path) -> (Server, Vec<serde_json::Value>) {
    let s = Server::start(dir, None);
    let adm = admin(&s);
    let (st, _) =
        adm.post("/atlas/internal/api/product/equity", json!({"symbol": "ACME", "tickSize": "0.01"}));
    assert_eq!(st, StatusCode::CREATED);
    let mut keys = Vec::new();
    for name in ["A", "B"] {
        let (st, b) =
            adm.post("/atlas/internal/api/participant/broker", json!({"name": format!("Broker {name}")}));
        assert_eq!(st, StatusCode::CREATED);
        let (st, key) =
            adm.post(&format!("/atlas/internal/api/participant/broker/{}/apikey", b["id"]), json!({}));
        assert_eq!(st, StatusCode::CREATED);
        keys.push(key);
    }
    (s, keys)
}

fn run(script: &str, s: &Server, keys: &[serde_json::Value]) -> String {
    let out = Command::new("python3")
        .arg(script)
        .env("ATLAS_CB_URL", format!("{}/coinbase", s.external))
        .env("ATLAS_CB_WS", format!("{}/coinbase/ws", s.external.replacen("https://", "wss://", 1)))
        .env("ATLAS_CA", s.data_dir.join("pki/ca.crt"))
        .env("REQUESTS_CA_BUNDLE", s.data_dir.join("pki/ca.crt"))
        .env("KEY_A", keys[0]["key"].as_str().unwrap())
        .env("SECRET_A", keys[0]["secret"].as_str().unwrap())
        .env("PASS_A", keys[0]["passphrase"].as_str().unwrap())
        .env("KEY_B", keys[1]["key"].as_str().unwrap())
        .env("SECRET_B", keys[1]["secret"].as_str().unwrap())
        .env("PASS_B", keys[1]["passphrase"].as_str().unwrap())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn stock_ccxt_trades_through_the_coinbase_surface() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let stdout = run(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/ccxt/check.py"), &s, &keys);
    assert!(stdout.contains("ccxt: all checks passed"), "{stdout}");
}

#[test]
fn stock_ccxt_pro_watches_the_coinbase_feed() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let stdout = run(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/ccxt/watch.py"), &s, &keys);
    assert!(stdout.contains("ccxt watch: all checks passed"), "{stdout}");
}
