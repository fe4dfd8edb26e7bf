//! A stock QuickFIX initiator (the C++ library, Debian's `libquickfix-dev`)
//! trades on Atlas over the loopback plaintext FIX listener: signed logon, a
//! limit order, a replace, a cancel, a market order that fills against an order
//! entered over REST, its status and the open orders (OrderStatusRequest,
//! OrderMassStatusRequest), a refused order, logout (`tests/quickfix/initiator.cpp`,
//! compiled here with g++). REST then shows what the session did.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;
use server::fix::seed;
use server::{Server, broker};

/// Compiles the initiator once per test run.
fn initiator() -> std::path::PathBuf {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/quickfix/initiator.cpp");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("quickfix-initiator");
    let status = Command::new("g++")
        .args(["-std=c++11", "-O1", "-Wno-deprecated-declarations", "-Wno-deprecated", "-o"])
        .arg(&out)
        .arg(src)
        .args(["-lquickfix", "-lssl", "-lcrypto", "-lpthread"])
        .status()
        .expect("g++ runs (scripts/test installs g++ and libquickfix-dev)");
    assert!(status.success(), "compiling {src} against QuickFIX failed (is libquickfix-dev installed?)");
    out
}

#[test]
fn a_stock_quickfix_initiator_trades() {
    let binary = initiator();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    let keys = seed(&s);
    let (alice, bob) = (broker(&s, "alice"), broker(&s, "bob"));
    let (st, resting) = bob.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 3, "price": "10.00"}),
    );
    assert_eq!(st, StatusCode::CREATED, "{resting}");
    let (host, port) = s.fix_plain.rsplit_once(':').unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(&binary)
        .args([host, port, &keys[0].key, &keys[0].secret, &keys[0].passphrase])
        .arg(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("quickfix: all checks passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the session did, seen over REST.
    let (st, page) = alice.get("/atlas/api/order?status=ALL");
    assert_eq!(st, StatusCode::OK, "{page}");
    let orders = page["orders"].as_array().unwrap();
    let by_client = |c: &str| orders.iter().find(|o| o["clientOrderId"] == c).cloned().unwrap_or_default();
    let first = by_client("qf-1");
    assert_eq!(
        (first["status"].as_str(), first["price"].as_str()),
        (Some("CANCELLED"), Some("9.25")),
        "{first}"
    );
    assert_eq!(first["originalQuantity"], 5);
    assert_eq!(by_client("qf-4")["status"], "FILLED");
    let (_, bobs) = bob.get(&format!("/atlas/api/order/{}", resting["id"]));
    assert_eq!(bobs["status"], "FILLED", "{bobs}");
    s.stop();
}
