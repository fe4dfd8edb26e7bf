//! The web application firewall, against the running binary: every payload of
//! the attack corpus is blocked wherever it is put (JSON body, query, path,
//! header) with `403 REQUEST_BLOCKED`, counted and logged; a thousand varied
//! valid orders and the queries around them pass with no false positive; JSON
//! nesting is bounded; detect-only mode lets attacks through but counts them;
//! and the IP allow and deny lists close the listeners to other networks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Api, Server, admin, broker, code};

const ATTACKS: &str = include_str!("../../services/waf-corpus/attacks.txt");

fn attacks() -> Vec<&'static str> {
    ATTACKS.lines().filter(|l| !l.is_empty() && !l.starts_with("# ")).collect()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn setup(s: &Server, blocking: bool) -> Api {
    let adm = admin(s);
    let (st, _) = adm.post(
        "/atlas/internal/api/product/equity",
        json!({"symbol": "ACME", "description": "Acme Corp. (class 'A') & Sons, 100% owned; see https://acme.example/ir?x=1", "tickSize": "0.01", "lotSize": 1}),
    );
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = adm.post(
        "/atlas/internal/api/product/equity",
        json!({"symbol": "BRK.B", "description": "Berkshire <class B>"}),
    );
    if blocking {
        assert_eq!(
            st,
            StatusCode::FORBIDDEN,
            "a tag in a description is blocked on the internal listener too"
        );
        let (st, _) = adm.post("/atlas/internal/api/product/equity", json!({"symbol": "BRK.B"}));
        assert_eq!(st, StatusCode::CREATED);
    }
    adm.post("/atlas/internal/api/participant/broker", json!({"name": "O'Brien & Sons Brokerage"}));
    adm.post(
        "/atlas/internal/api/participant/broker/1/user",
        json!({"username": "alice", "password": "alice-password", "role": "broker"}),
    );
    broker(s, "alice")
}

/// A small deterministic generator (the corpus must be the same on every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// Client order ids as brokers' systems make them: UUIDs, FIX ClOrdIDs with
/// dates, strategy tags with slashes, colons, hashes, plus signs, equals signs,
/// percent signs and ampersands.
fn client_order_id(r: &mut Lcg, i: usize) -> String {
    let n = r.next();
    match i % 12 {
        0 => format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            n & 0xffff_ffff,
            n & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            n & 0xffff_ffff_ffff
        ),
        1 => format!("20261122-{:06}-{i:04}", n % 1_000_000),
        2 => format!("ord_{i}"),
        3 => format!("strat/alpha#{}:leg-{}", n % 9, i),
        4 => format!("BRK1.{i}.{}", n % 100),
        5 => format!("twap+slice={}/{}", i % 40, 40),
        6 => format!("50%-fill-{i}"),
        7 => format!("Q&A-desk-{i}"),
        8 => format!("hedge(delta={})#{i}", n % 100),
        9 => format!("cb-{:x}", n),
        10 => format!("2026-11-22T15:{:02}:{:02}.123Z/{i}", n % 60, (n >> 8) % 60),
        _ => format!("{}@desk-{}", ["amy", "bob", "chen", "dana"][(n % 4) as usize], i),
    }
}

fn valid_order(r: &mut Lcg, i: usize) -> Value {
    let side = r.pick(&["BUY", "SELL"]);
    let kind = r.pick(&["LIMIT", "LIMIT", "LIMIT", "MARKET", "STOP", "STOP_LIMIT"]);
    let price = format!("{}.{:02}", 90 + r.next() % 20, r.next() % 100);
    let stop = format!("{}.{:02}", 80 + r.next() % 40, r.next() % 100);
    let mut o = json!({
        "productId": 1 + (i % 2) as u64,
        "side": side,
        "type": kind,
        "quantity": 1 + r.next() % 500,
        "clientOrderId": client_order_id(r, i),
    });
    match kind {
        "LIMIT" => {
            o["price"] = json!(price);
            o["timeInForce"] = json!(r.pick(&["GTC", "IOC", "FOK", "DAY"]));
            if r.next().is_multiple_of(5) {
                o["postOnly"] = json!(true);
                o["timeInForce"] = json!("GTC");
            }
        }
        "STOP" => o["stopPrice"] = json!(stop),
        "STOP_LIMIT" => {
            o["stopPrice"] = json!(stop);
            o["price"] = json!(price);
        }
        _ => {}
    }
    if r.next().is_multiple_of(3) {
        o["selfTradePrevention"] = json!(r.pick(&["NONE", "CANCEL_NEWEST", "CANCEL_OLDEST", "CANCEL_BOTH"]));
    }
    o
}

fn metric(s: &Server, action: &str) -> u64 {
    let text = s.admin_client().get(format!("{}/metrics", s.internal)).send().unwrap().text().unwrap();
    text.lines()
        .filter(|l| l.starts_with("atlas_waf_hits_total{") && l.contains(&format!("action=\"{action}\"")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

fn blocked(r: &(StatusCode, Value)) -> bool {
    code(r) == (StatusCode::FORBIDDEN, "REQUEST_BLOCKED")
}

#[test]
fn attacks_are_blocked_and_valid_orders_pass() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    let alice = setup(&s, true);

    // A thousand valid orders: none blocked, and they trade.
    let mut r = Lcg(7);
    let mut accepted = 0;
    for i in 0..1000 {
        let order = valid_order(&mut r, i);
        let res = alice.post("/atlas/api/order", order.clone());
        assert!(!blocked(&res), "false positive on {order}: {}", res.1);
        assert_ne!(res.0, StatusCode::FORBIDDEN, "{order}: {}", res.1);
        if res.0 == StatusCode::CREATED {
            accepted += 1;
        } else {
            // Business rejections only (no liquidity for a market order, a
            // post-only that would trade): never a validation error.
            assert_ne!(res.1["code"], "VALIDATION_FAILED", "{order}: {}", res.1);
        }
    }
    assert!(accepted >= 800, "only {accepted} of 1000 accepted");
    // The queries a trading screen makes pass too.
    for path in [
        "/atlas/api/order?status=OPEN&limit=50",
        "/atlas/api/order?productId=2&status=DONE",
        "/atlas/api/product/equity",
        "/atlas/api/product/equity/1",
        "/atlas/api/orderBook/1",
        "/atlas/api/trade?productId=1&limit=100",
        "/atlas/api/participant/broker/1",
        "/atlas/api/auth/whoami",
    ] {
        let res = alice.get(path);
        assert!(!blocked(&res) && res.0 != StatusCode::FORBIDDEN, "{path}: {}", res.1);
    }
    // The one hit so far is the setup's product description with a tag.
    assert_eq!(metric(&s, "blocked"), 1, "valid traffic was counted as attacks");

    // Every payload in every place.
    let payloads = attacks();
    assert!(payloads.len() >= 200, "the corpus has {} payloads", payloads.len());
    let mut missed = Vec::new();
    for p in &payloads {
        let tries = [
            ("body", alice.post("/atlas/api/order", json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "100.00", "clientOrderId": p}))),
            ("query", alice.get(&format!("/atlas/api/order?clientOrderId={}", encode(p)))),
            ("path", alice.get(&format!("/atlas/api/order/{}", encode(p)))),
            ("header", alice.send(alice.req(reqwest::Method::GET, "/atlas/api/product/equity").header("referer", *p))),
        ];
        for (place, res) in tries {
            if !blocked(&res) {
                missed.push(format!("{place}: {p:?} → {} {}", res.0, res.1));
            }
        }
    }
    assert!(missed.is_empty(), "attacks that passed:\n{}", missed.join("\n"));
    // Nested JSON is bounded before any handler parses it.
    let deep = "[".repeat(40) + &"]".repeat(40);
    let res = alice.send(
        alice
            .req(reqwest::Method::POST, "/atlas/api/order")
            .header("content-type", "application/json")
            .body(deep),
    );
    assert_eq!(code(&res), (StatusCode::BAD_REQUEST, "JSON_TOO_DEEP"));
    // Scanners are turned away by their user agent.
    let res = alice.send(
        alice.req(reqwest::Method::GET, "/atlas/api/product/equity").header("user-agent", "sqlmap/1.8"),
    );
    assert!(blocked(&res));

    // Counted, and logged without the query, headers or body that carried them.
    assert_eq!(metric(&s, "blocked"), payloads.len() as u64 * 4 + 2);
    let log = s.log();
    assert!(log.matches("web application firewall hit").count() as u64 >= payloads.len() as u64 * 4);
    assert!(!log.contains("alice-password") && !log.contains(alice.token.as_deref().unwrap()));

    // The blocked orders changed nothing: no order carries an attack.
    let (_, orders) = alice.get("/atlas/api/order?limit=1000");
    for o in orders["orders"].as_array().or(orders.as_array()).into_iter().flatten() {
        let id = o["clientOrderId"].as_str().unwrap_or("");
        assert!(!payloads.contains(&id), "an attack became an order: {id}");
    }
}

#[test]
fn detect_only_mode_counts_but_lets_through() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        None,
        &[("ATLAS_RATE_LIMIT_ORDERS", "0"), ("ATLAS_RATE_LIMIT_QUERIES", "0"), ("ATLAS_WAF", "detect")],
    );
    let alice = setup(&s, false);
    let res = alice.get(&format!("/atlas/api/order?clientOrderId={}", encode("' OR '1'='1")));
    assert!(!blocked(&res) && res.0 != StatusCode::FORBIDDEN, "{}", res.1);
    let res = alice.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "1.00", "clientOrderId": "<b>bold</b>"}),
    );
    assert_eq!(res.0, StatusCode::CREATED, "{}", res.1);
    // The product description with a tag, the query and the order.
    assert_eq!(metric(&s, "detected"), 3);
    assert_eq!(metric(&s, "blocked"), 0);
    assert!(s.log().contains("action=\"detected\"") || s.log().contains("action=detected"));
}

#[test]
fn ip_lists_close_the_listeners() {
    // Allow lists that do not cover loopback: both listeners refuse, health too.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        None,
        &[
            ("ATLAS_EXTERNAL_ALLOW", "192.0.2.0/24"),
            ("ATLAS_INTERNAL_ALLOW", "198.51.100.0/24,2001:db8::/32"),
        ],
    );
    let outsider = Api { client: s.client(), base: s.external.clone(), token: None };
    assert_eq!(code(&outsider.get("/healthz")), (StatusCode::FORBIDDEN, "IP_NOT_ALLOWED"));
    let operator = Api { client: s.admin_client(), base: s.internal.clone(), token: None };
    assert_eq!(code(&operator.get("/readyz")), (StatusCode::FORBIDDEN, "IP_NOT_ALLOWED"));
    assert_eq!(
        code(&operator.post(
            "/atlas/internal/api/auth/token",
            json!({"username": "admin", "password": server::ADMIN_PASSWORD})
        )),
        (StatusCode::FORBIDDEN, "IP_NOT_ALLOWED")
    );
    drop(s);

    // A deny list wins over everything.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir.path(), None, &[("ATLAS_DENY_NETWORKS", "10.9.9.9,127.0.0.0/8")]);
    let outsider = Api { client: s.client(), base: s.external.clone(), token: None };
    assert_eq!(code(&outsider.get("/atlas/api/product/equity")), (StatusCode::FORBIDDEN, "IP_NOT_ALLOWED"));
    let operator = Api { client: s.admin_client(), base: s.internal.clone(), token: None };
    assert_eq!(code(&operator.get("/healthz")), (StatusCode::FORBIDDEN, "IP_NOT_ALLOWED"));
    drop(s);

    // A malformed list stops the start with a clear message.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["up", "--data-dir"])
        .arg(dir.path())
        .args([
            "--external-addr",
            "127.0.0.1:0",
            "--internal-addr",
            "127.0.0.1:0",
            "--fix-addr",
            "127.0.0.1:0",
            "--internal-allow",
            "10.0.0.0/33",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("10.0.0.0/33"));
}
