//! The services as a client sees them: the real `atlas up` binary on random ports
//! with a fresh database (SQLite, and a throwaway PostgreSQL cluster), driven over
//! HTTPS. Listeners and TLS, login, products, participants, users, orders end to
//! end, every error path the API names, broker A against broker B on every
//! endpoint that takes an id, and a restart that must change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../store/tests/common/mod.rs"]
mod pg;
mod server;

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};
use server::{ADMIN_PASSWORD, Api, Server, admin, broker, code, login};

fn order(api: &Api, side: &str, qty: i64, price: &str) -> Value {
    let (status, body) = api.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": side, "type": "LIMIT", "quantity": qty, "price": price}),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Sets up a product and two brokers with a user each.
fn setup(s: &Server) {
    let adm = admin(s);
    let (st, p) = adm.post(
        "/atlas/internal/api/product/equity",
        json!({"symbol": "ACME", "description": "Acme Corp", "productType": "EQUITY", "tickSize": "0.01", "lotSize": 1, "currency": "USD"}),
    );
    assert_eq!(st, StatusCode::CREATED, "{p}");
    assert_eq!((p["id"].as_u64(), p["status"].as_str()), (Some(1), Some("ACTIVE")));
    for (i, name) in ["alice", "bob"].iter().enumerate() {
        let (st, b) = adm.post(
            "/atlas/internal/api/participant/broker",
            json!({"name": format!("Broker {name}"), "participantType": "BROKER"}),
        );
        assert_eq!(st, StatusCode::CREATED, "{b}");
        assert_eq!(b["id"].as_u64(), Some(i as u64 + 1));
        let (st, u) = adm.post(
            &format!("/atlas/internal/api/participant/broker/{}/user", i + 1),
            json!({"username": name, "password": format!("{name}-password"), "role": "broker"}),
        );
        assert_eq!(st, StatusCode::CREATED, "{u}");
    }
}

fn listeners_and_login(s: &Server) {
    let ext = Api { client: s.client(), base: s.external.clone(), token: None };
    assert_eq!(ext.get("/healthz").0, StatusCode::OK);
    assert_eq!(ext.get("/readyz").0, StatusCode::OK);
    // Internal paths do not exist on the external listener, even with a token.
    assert_eq!(code(&ext.get("/atlas/internal/api/product/equity")), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    assert_eq!(code(&ext.post("/atlas/internal/api/auth/token", json!({}))).0, StatusCode::NOT_FOUND);
    // The internal listener refuses a client without a certificate from the CA.
    assert!(s.client().get(format!("{}/healthz", s.internal)).send().is_err());
    let int = Api { client: s.admin_client(), base: s.internal.clone(), token: None };
    assert_eq!(int.get("/healthz").0, StatusCode::OK);
    // Plaintext is not spoken.
    let plain = Client::new().get(s.external.replace("https://", "http://") + "/healthz").send();
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // Wrong password and unknown user: the same 401.
    let bad = int
        .post("/atlas/internal/api/auth/token", json!({"username": "admin", "password": "wrong-password-x"}));
    let unknown = int.post(
        "/atlas/internal/api/auth/token",
        json!({"username": "nobody", "password": "wrong-password-x"}),
    );
    assert_eq!(code(&bad), (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"));
    assert_eq!(bad.1, unknown.1);
    // Internal users log in on the internal listener only; brokers on the external one.
    assert_eq!(
        ext.post("/atlas/api/auth/token", json!({"username": "admin", "password": ADMIN_PASSWORD})).0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        int.post(
            "/atlas/internal/api/auth/token",
            json!({"username": "alice", "password": "alice-password"})
        )
        .0,
        StatusCode::UNAUTHORIZED
    );
    // No token, a garbage token, a tampered token.
    assert_eq!(code(&ext.get("/atlas/api/order")), (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"));
    let garbage = Api {
        token: Some("not.a.token".into()),
        ..Api { client: s.client(), base: s.external.clone(), token: None }
    };
    assert_eq!(garbage.get("/atlas/api/order").0, StatusCode::UNAUTHORIZED);
    let alice = broker(s, "alice");
    // Change one signature character well inside it (the last character of a
    // base64url signature carries unused bits, so changing it may change nothing).
    let mut tampered: Vec<char> = alice.token.clone().unwrap().chars().collect();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let t = Api { token: Some(tampered), client: s.client(), base: s.external.clone() };
    assert_eq!(t.get("/atlas/api/order").0, StatusCode::UNAUTHORIZED);
    // A broker's token on the internal listener: authenticated, not allowed.
    let wrong_place = Api { token: alice.token.clone(), client: s.admin_client(), base: s.internal.clone() };
    assert_eq!(
        code(&wrong_place.get("/atlas/internal/api/product/equity")),
        (StatusCode::FORBIDDEN, "FORBIDDEN")
    );
    // An admin's token on the external listener is not a broker's.
    let adm = admin(s);
    let adm_ext = Api { token: adm.token.clone(), client: s.client(), base: s.external.clone() };
    assert_eq!(code(&adm_ext.get("/atlas/api/order")), (StatusCode::FORBIDDEN, "FORBIDDEN"));
}

fn products_and_participants(s: &Server) {
    let adm = admin(s);
    let alice = broker(s, "alice");
    let dup = adm.post("/atlas/internal/api/product/equity", json!({"symbol": "ACME"}));
    assert_eq!(code(&dup), (StatusCode::CONFLICT, "DUPLICATE_SYMBOL"));
    for bad in [
        json!({"symbol": "acme"}),
        json!({"symbol": "BAD", "tickSize": "0"}),
        json!({"symbol": "BAD", "tickSize": "-1"}),
        json!({"symbol": "BAD", "lotSize": 0}),
        json!({"symbol": "BAD", "currency": "usd"}),
        json!({"symbol": "BAD", "productType": "BOND"}),
        json!({"symbol": "BAD", "id": 7}),
        json!({"symbol": "BAD", "status": "ACTIVE"}),
    ] {
        assert_eq!(
            code(&adm.post("/atlas/internal/api/product/equity", bad.clone())),
            (StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
            "{bad}"
        );
    }
    // Not JSON at all.
    let raw = adm.send(adm.req(reqwest::Method::POST, "/atlas/internal/api/product/equity").body("{"));
    assert_eq!(raw.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Too large a body.
    let big = json!({"symbol": "BIG", "description": "x".repeat(100_000)});
    assert_eq!(adm.post("/atlas/internal/api/product/equity", big).0, StatusCode::PAYLOAD_TOO_LARGE);
    // Brokers cannot create products (and do not even see the path).
    assert_eq!(
        alice.post("/atlas/internal/api/product/equity", json!({"symbol": "X"})).0,
        StatusCode::NOT_FOUND
    );
    let (st, list) = alice.get("/atlas/api/product/equity");
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(alice.get("/atlas/api/product/equity?symbol=ACME").1["id"], 1);
    assert_eq!(
        code(&alice.get("/atlas/api/product/equity?symbol=NOPE")),
        (StatusCode::NOT_FOUND, "PRODUCT_NOT_FOUND")
    );
    assert_eq!(
        code(&alice.get("/atlas/api/product/equity/99")),
        (StatusCode::NOT_FOUND, "PRODUCT_NOT_FOUND")
    );
    assert_eq!(
        code(&alice.get("/atlas/api/product/equity/abc")),
        (StatusCode::BAD_REQUEST, "VALIDATION_FAILED")
    );
    assert_eq!(
        code(&alice.get("/atlas/api/product/equity?colour=red")),
        (StatusCode::BAD_REQUEST, "VALIDATION_FAILED")
    );
    // PUT: the description changes; the tick cannot.
    let (st, p) = adm.put("/atlas/internal/api/product/equity/1", json!({"description": "Acme Corporation"}));
    assert_eq!((st, p["description"].as_str()), (StatusCode::OK, Some("Acme Corporation")));
    assert_eq!(
        adm.put("/atlas/internal/api/product/equity/1", json!({"tickSize": "0.05"})).0,
        StatusCode::BAD_REQUEST
    );
    // Halt: orders refused; resume: accepted again.
    assert_eq!(adm.post("/atlas/internal/api/product/equity/1/halt", json!({})).1["status"], "HALTED");
    let halted = alice.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "1.00"}),
    );
    assert_eq!(code(&halted), (StatusCode::CONFLICT, "MARKET_HALTED"));
    assert_eq!(adm.post("/atlas/internal/api/product/equity/1/resume", json!({})).1["status"], "ACTIVE");
    // Participants: unique names; a broker reads only itself.
    assert_eq!(
        adm.post("/atlas/internal/api/participant/broker", json!({"name": "Broker alice"})).0,
        StatusCode::CONFLICT
    );
    assert_eq!(alice.get("/atlas/api/participant/broker/1").1["name"], "Broker alice");
    assert_eq!(
        code(&alice.get("/atlas/api/participant/broker/2")),
        (StatusCode::NOT_FOUND, "PARTICIPANT_NOT_FOUND")
    );
    assert_eq!(
        code(&alice.get("/atlas/api/participant/broker/99")),
        (StatusCode::NOT_FOUND, "PARTICIPANT_NOT_FOUND")
    );
    // Disabling a broker: its tokens die at once, its orders are cancelled, it
    // cannot log in again.
    let (st, dave_p) = adm.post("/atlas/internal/api/participant/broker", json!({"name": "Broker dave"}));
    assert_eq!(st, StatusCode::CREATED);
    let dave_id = dave_p["id"].as_u64().unwrap();
    let (st, _) = adm.post(
        &format!("/atlas/internal/api/participant/broker/{dave_id}/user"),
        json!({"username": "dave", "password": "dave-password", "role": "broker"}),
    );
    assert_eq!(st, StatusCode::CREATED);
    let dave = broker(s, "dave");
    let resting = dave.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "1.00"}),
    );
    assert_eq!(resting.0, StatusCode::CREATED, "{}", resting.1);
    assert_eq!(
        adm.delete(&format!("/atlas/internal/api/participant/broker/{dave_id}")).0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(code(&dave.get("/atlas/api/order")), (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"));
    let order_id = resting.1["id"].as_u64().unwrap();
    assert_eq!(adm.get(&format!("/atlas/internal/api/order/{order_id}")).1["status"], "CANCELLED");
    let relogin = Api { client: s.client(), base: s.external.clone(), token: None }
        .post("/atlas/api/auth/token", json!({"username": "dave", "password": "dave-password"}));
    assert_eq!(relogin.0, StatusCode::UNAUTHORIZED);
    // Users: unique names, password rules, roles.
    let dup_user = adm.post(
        "/atlas/internal/api/participant/broker/1/user",
        json!({"username": "alice", "password": "another-password", "role": "broker"}),
    );
    assert_eq!(code(&dup_user), (StatusCode::CONFLICT, "DUPLICATE_USERNAME"));
    let short = adm.post(
        "/atlas/internal/api/participant/broker/1/user",
        json!({"username": "carol", "password": "short", "role": "broker"}),
    );
    assert_eq!(short.0, StatusCode::BAD_REQUEST);
    let op = adm.post(
        "/atlas/internal/api/user",
        json!({"username": "oscar", "password": "oscar-password", "role": "operator"}),
    );
    assert_eq!(op.0, StatusCode::CREATED);
    let oscar =
        login(s.admin_client(), &s.internal, "/atlas/internal/api/auth/token", "oscar", "oscar-password");
    // Operators manage products but not users.
    assert_eq!(oscar.get("/atlas/internal/api/product/equity/1").0, StatusCode::OK);
    let denied = oscar.post(
        "/atlas/internal/api/user",
        json!({"username": "eve", "password": "eve-password-1", "role": "admin"}),
    );
    assert_eq!(code(&denied), (StatusCode::FORBIDDEN, "FORBIDDEN"));
}

fn trading(s: &Server) {
    let alice = broker(s, "alice");
    let bob = broker(s, "bob");
    let a1 = order(&alice, "SELL", 10, "11.00");
    let a2 = order(&alice, "SELL", 10, "10.00");
    assert_eq!((a1["status"].as_str(), a1["bookedQuantity"].as_i64()), (Some("BOOKED"), Some(10)));
    // Bob lifts both levels: price first, then time; trades at the makers' prices.
    let b1 = order(&bob, "BUY", 15, "11.00");
    assert_eq!(b1["status"], "FILLED");
    assert_eq!(b1["averagePrice"], "10.333333");
    let fills = b1["trades"].as_array().unwrap();
    assert_eq!(fills.len(), 2);
    assert_eq!(
        (fills[0]["price"].as_str(), fills[0]["quantity"].as_i64(), fills[0]["liquidity"].as_str()),
        (Some("10.00"), Some(10), Some("TAKER"))
    );
    assert_eq!((fills[1]["price"].as_str(), fills[1]["quantity"].as_i64()), (Some("11.00"), Some(5)));
    let (a1_id, a2_id, b1_id) =
        (a1["id"].as_u64().unwrap(), a2["id"].as_u64().unwrap(), b1["id"].as_u64().unwrap());
    let (_, a1_now) = alice.get(&format!("/atlas/api/order/{a1_id}"));
    assert_eq!(
        (a1_now["status"].as_str(), a1_now["tradedQuantity"].as_i64()),
        (Some("PARTIALLY_FILLED"), Some(5))
    );
    assert_eq!(a1_now["trades"][0]["liquidity"], "MAKER");
    let (_, book) = bob.get("/atlas/api/orderBook/1?depth=5");
    assert_eq!(book["offers"], json!([{"price": "11.00", "quantity": 5, "orders": 1}]));
    assert_eq!(book["bids"], json!([]));

    // clientOrderId: a retry returns the original (200), creating nothing.
    let body = json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 3, "price": "9.00", "clientOrderId": "bob-1"});
    let first = bob.post("/atlas/api/order", body.clone());
    let again = bob.post("/atlas/api/order", body);
    assert_eq!((first.0, again.0), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(first.1["id"], again.1["id"]);
    assert_eq!(first.1["clientOrderId"], "bob-1");
    let bob_bid = first.1["id"].as_u64().unwrap();

    // Validation and engine rejections change nothing.
    let seq_before = bob.get("/atlas/api/orderBook/1").1["sequence"].clone();
    for (body, want) in [
        (
            json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "9.001"}),
            (StatusCode::BAD_REQUEST, "PRICE_NOT_ON_TICK"),
        ),
        (
            json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1}),
            (StatusCode::BAD_REQUEST, "PRICE_REQUIRED"),
        ),
        (
            json!({"productId": 1, "side": "BUY", "type": "MARKET", "quantity": 1, "price": "9.00"}),
            (StatusCode::BAD_REQUEST, "PRICE_NOT_ALLOWED"),
        ),
        (
            json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 0, "price": "9.00"}),
            (StatusCode::BAD_REQUEST, "INVALID_QUANTITY"),
        ),
        (
            json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "11.00", "postOnly": true}),
            (StatusCode::BAD_REQUEST, "POST_ONLY_WOULD_TRADE"),
        ),
        (
            json!({"productId": 9, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "9.00"}),
            (StatusCode::NOT_FOUND, "PRODUCT_NOT_FOUND"),
        ),
        (
            json!({"productId": 1, "side": "HOLD", "type": "LIMIT", "quantity": 1, "price": "9.00"}),
            (StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
        ),
        (
            json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "9.00", "status": "FILLED"}),
            (StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
        ),
        (
            json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "9.00", "participantId": 1}),
            (StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
        ),
    ] {
        assert_eq!(code(&bob.post("/atlas/api/order", body.clone())), want, "{body}");
    }
    // (Engine rejections are journaled, so the sequence may move; the book may not.)
    let _ = seq_before;
    let (_, book2) = bob.get("/atlas/api/orderBook/1?depth=5");
    assert_eq!(book2["bids"], json!([{"price": "9.00", "quantity": 3, "orders": 1}]));

    // Amend: smaller quantity; then a price change.
    let (st, am) = bob.put(&format!("/atlas/api/order/{bob_bid}"), json!({"quantity": 2}));
    assert_eq!(
        (st, am["originalQuantity"].as_i64(), am["bookedQuantity"].as_i64()),
        (StatusCode::OK, Some(2), Some(2))
    );
    let (st, am) = bob.put(&format!("/atlas/api/order/{bob_bid}"), json!({"price": "9.50"}));
    assert_eq!((st, am["price"].as_str()), (StatusCode::OK, Some("9.50")));
    assert_eq!(
        code(&bob.put(&format!("/atlas/api/order/{bob_bid}"), json!({"side": "SELL"}))).1,
        "VALIDATION_FAILED"
    );
    // Cancel; a second cancel and an amend of a done order are 409.
    let (st, c) = bob.delete(&format!("/atlas/api/order/{bob_bid}"));
    assert_eq!((st, c["status"].as_str()), (StatusCode::OK, Some("CANCELLED")));
    assert_eq!(
        code(&bob.delete(&format!("/atlas/api/order/{bob_bid}"))),
        (StatusCode::CONFLICT, "ORDER_NOT_OPEN")
    );
    assert_eq!(
        code(&bob.put(&format!("/atlas/api/order/{b1_id}"), json!({"quantity": 1}))),
        (StatusCode::CONFLICT, "ORDER_NOT_OPEN")
    );

    // Listing with paging: alice has a1 (open) and a2 (done).
    let (_, page1) = alice.get("/atlas/api/order?status=ALL&limit=1");
    assert_eq!(page1["orders"][0]["id"].as_u64(), Some(a2_id));
    let cursor = page1["nextCursor"].as_u64().unwrap();
    let (_, page2) = alice.get(&format!("/atlas/api/order?status=ALL&limit=1&cursor={cursor}"));
    assert_eq!(page2["orders"][0]["id"].as_u64(), Some(a1_id));
    assert_eq!(alice.get("/atlas/api/order?status=OPEN").1["orders"].as_array().unwrap().len(), 1);
    assert_eq!(alice.get("/atlas/api/order?status=DONE").1["orders"].as_array().unwrap().len(), 1);
    assert_eq!(alice.get("/atlas/api/order?limit=0").0, StatusCode::BAD_REQUEST);
    assert_eq!(alice.get("/atlas/api/order?limit=100000").0, StatusCode::BAD_REQUEST);
    assert_eq!(alice.get("/atlas/api/order?status=SOMETIMES").0, StatusCode::BAD_REQUEST);

    // Trades: the public tape is anonymous; a party sees its side.
    let (_, tape) = alice.get("/atlas/api/trade?productId=1");
    assert_eq!(tape.as_array().unwrap().len(), 2);
    assert!(tape[0].get("makerOrderId").is_none() && tape[0].get("participantId").is_none());
    let trade_id = tape[0]["id"].as_u64().unwrap();
    assert_eq!(alice.get(&format!("/atlas/api/trade/{trade_id}")).1["liquidity"], "MAKER");
    assert_eq!(bob.get(&format!("/atlas/api/trade/{trade_id}")).1["liquidity"], "TAKER");
    assert_eq!(alice.get(&format!("/atlas/api/trade/order/{a1_id}")).1.as_array().unwrap().len(), 1);

    // Broker B against broker A's ids: exactly like unknown ids.
    let a_only = order(&alice, "BUY", 1, "5.00")["id"].as_u64().unwrap();
    for (path, unknown) in [
        (format!("/atlas/api/order/{a_only}"), "/atlas/api/order/999999".to_owned()),
        (format!("/atlas/api/trade/order/{a1_id}"), "/atlas/api/trade/order/999999".to_owned()),
        ("/atlas/api/participant/broker/1".to_owned(), "/atlas/api/participant/broker/999".to_owned()),
    ] {
        let theirs = bob.get(&path);
        let missing = bob.get(&unknown);
        assert_eq!(theirs.0, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(theirs.1, missing.1, "{path}: another broker's id must look unknown");
    }
    let mine_only = alice.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "SELL", "type": "LIMIT", "quantity": 1, "price": "5.00"}),
    );
    let self_trade = mine_only.1["trades"][0]["id"].as_u64().unwrap();
    assert_eq!(bob.get(&format!("/atlas/api/trade/{self_trade}")).1, bob.get("/atlas/api/trade/999999").1);
    assert_eq!(
        code(&bob.put(&format!("/atlas/api/order/{a1_id}"), json!({"quantity": 1}))),
        (StatusCode::NOT_FOUND, "ORDER_NOT_FOUND")
    );
    assert_eq!(
        code(&bob.delete(&format!("/atlas/api/order/{a1_id}"))),
        (StatusCode::NOT_FOUND, "ORDER_NOT_FOUND")
    );
    assert_eq!(
        alice.get(&format!("/atlas/api/order/{a1_id}")).1["status"],
        "PARTIALLY_FILLED",
        "B changed nothing"
    );
    // Bob's cancel-all cancels only bob's orders.
    order(&bob, "BUY", 1, "1.00");
    let (st, cancelled) = bob.delete("/atlas/api/order");
    assert_eq!((st, cancelled["cancelled"].as_array().unwrap().len()), (StatusCode::OK, 1));
    assert_eq!(alice.get(&format!("/atlas/api/order/{a1_id}")).1["status"], "PARTIALLY_FILLED");

    // Prometheus metrics on the internal listener only (mutual TLS, no token).
    let metrics = s.admin_client().get(format!("{}/metrics", s.internal)).send().unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().unwrap();
    for name in [
        "atlas_http_requests_total",
        "atlas_http_request_duration_seconds",
        "atlas_orders_total",
        "atlas_trades_total",
        "atlas_sequencer_committed_seq",
        "atlas_journal_commit_seconds_bucket{le=\"0.001\"}",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
    // Every command committed since the start is in some batch: the batch
    // sizes add up to the committed sequence (read from one rendering; a
    // command committed between its gauge and its histograms is retried).
    let value = |text: &str, name: &str| -> f64 {
        let line = text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')));
        line.unwrap_or_else(|| panic!("/metrics lacks {name}")).parse().unwrap()
    };
    let mut tries = 0;
    loop {
        let text = s.admin_client().get(format!("{}/metrics", s.internal)).send().unwrap().text().unwrap();
        let (seq, commands) =
            (value(&text, "atlas_sequencer_committed_seq"), value(&text, "atlas_journal_batch_commands_sum"));
        let commits = value(&text, "atlas_journal_commit_seconds_count");
        if seq == commands || tries == 10 {
            assert_eq!(seq, commands, "{text}");
            assert_eq!(value(&text, "atlas_journal_batch_commands_count"), commits);
            assert!(commits >= 1.0 && commits <= commands, "{commits} commits of {commands} commands");
            break;
        }
        tries += 1;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(text.contains("route=\"/atlas/api/order\""), "requests are labelled by route, not by path");
    // What grows with use, beside its bound: one client order id so far
    // (bob-1), no feed connection, the process's memory.
    assert_eq!(value(&text, "atlas_client_order_ids"), 1.0, "{text}");
    assert_eq!(value(&text, "atlas_client_order_ids_max"), atlas_journal::CLIENT_ORDER_IDS_MAX as f64);
    assert_eq!(value(&text, "atlas_feed_connections"), 0.0);
    assert_eq!(value(&text, "atlas_feed_slow_consumers_total"), 0.0);
    assert!(value(&text, "process_resident_memory_bytes") > 1e6, "{text}");
    assert_eq!(alice.get("/metrics").0, StatusCode::NOT_FOUND);

    // The internal level-3 book shows the resting orders and their owners.
    let adm = admin(s);
    let (_, l3) = adm.get("/atlas/internal/api/orderBook/1?level=3");
    assert_eq!(l3["offers"][0]["orderId"].as_u64(), Some(a1_id));
    assert_eq!(l3["offers"][0]["participantId"], 1);
}

/// Busts: an operator busts a trade through the journal; it keeps its row, marked
/// busted, and leaves the public tape.
fn busts(s: &Server) {
    let (adm, alice, bob) = (admin(s), broker(s, "alice"), broker(s, "bob"));
    // At the last price: the engine's collar reference is the last print, busted
    // or not (see docs/api.md).
    let sell = order(&alice, "SELL", 2, "5.00")["id"].as_u64().unwrap();
    let buy = order(&bob, "BUY", 2, "5.00");
    assert_eq!(buy["status"], "FILLED", "{buy}");
    let trade = buy["trades"][0]["id"].as_u64().unwrap();
    let path = format!("/atlas/internal/api/trade/{trade}");
    let tape_has = |id: u64| {
        let (_, tape) = alice.get("/atlas/api/trade?productId=1");
        tape.as_array().unwrap().iter().any(|t| t["id"].as_u64() == Some(id))
    };
    assert!(tape_has(trade));

    // Brokers cannot bust: the internal path does not exist outside, and a
    // broker's token is not an operator's.
    assert_eq!(bob.delete(&path).0, StatusCode::NOT_FOUND);
    assert_eq!(adm.get(&path).1["busted"], false, "a refused bust changes nothing");

    let (st, busted) = adm.delete(&path);
    assert_eq!(st, StatusCode::OK, "{busted}");
    assert_eq!((busted["busted"].as_bool(), busted["trade"]["id"].as_u64()), (Some(true), Some(trade)));
    assert_eq!(busted["makerOrderId"].as_u64(), Some(sell));
    assert_eq!(code(&adm.delete(&path)), (StatusCode::CONFLICT, "TRADE_ALREADY_BUSTED"));
    assert_eq!(
        code(&adm.delete("/atlas/internal/api/trade/999999")),
        (StatusCode::NOT_FOUND, "TRADE_NOT_FOUND")
    );
    assert_eq!(adm.delete("/atlas/internal/api/trade/abc").0, StatusCode::BAD_REQUEST);

    // Both parties see it busted; the tape no longer shows it; the orders stand.
    assert_eq!(bob.get(&format!("/atlas/api/trade/{trade}")).1["busted"], true);
    assert_eq!(alice.get(&format!("/atlas/api/trade/{trade}")).1["busted"], true);
    assert!(!tape_has(trade), "a busted trade left the tape");
    let (_, report) = alice.get(&format!("/atlas/api/order/{sell}"));
    assert_eq!(
        (report["status"].as_str(), report["trades"][0]["busted"].as_bool()),
        (Some("FILLED"), Some(true))
    );
}

/// Signs a request as API.md says: base64(HMAC-SHA256(secret, ts + METHOD + path + body)).
fn signed(
    client: &Client,
    base: &str,
    key: &Value,
    method: &str,
    path: &str,
    body: &str,
    ts: i64,
) -> RequestBuilder {
    use base64::Engine as _;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(&b64.decode(key["secret"].as_str().unwrap()).unwrap())
            .unwrap();
    mac.update(format!("{ts}{method}{path}{body}").as_bytes());
    let sign = b64.encode(mac.finalize().into_bytes());
    client
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .header("ATLAS-KEY", key["key"].as_str().unwrap())
        .header("ATLAS-TIMESTAMP", ts.to_string())
        .header("ATLAS-SIGN", sign)
        .header("content-type", "application/json")
        .body(body.to_owned())
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn api_keys_and_forgery(s: &Server) {
    let adm = admin(s);
    let (st, key) = adm.post("/atlas/internal/api/participant/broker/1/apikey", json!({}));
    assert_eq!(st, StatusCode::CREATED, "{key}");
    assert!(key["secret"].is_string() && key["passphrase"].is_string());
    let raw = Api { client: s.client(), base: s.external.clone(), token: None };
    let c = s.client();
    // A signed order is alice's.
    let body = r#"{"productId":1,"side":"BUY","type":"LIMIT","quantity":1,"price":"2.00"}"#;
    let (st, o) = raw.send(signed(&c, &s.external, &key, "POST", "/atlas/api/order", body, now_s()));
    assert_eq!((st, o["participantId"].as_u64()), (StatusCode::CREATED, Some(1)), "{o}");
    let path = format!("/atlas/api/order/{}", o["id"]);
    assert_eq!(raw.send(signed(&c, &s.external, &key, "GET", &path, "", now_s())).0, StatusCode::OK);
    // A changed body, a stale timestamp, another path: all 401.
    let tampered = signed(&c, &s.external, &key, "POST", "/atlas/api/order", body, now_s())
        .body(body.replace("\"quantity\":1", "\"quantity\":9"));
    assert_eq!(code(&raw.send(tampered)), (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"));
    assert_eq!(
        raw.send(signed(&c, &s.external, &key, "GET", &path, "", now_s() - 31)).0,
        StatusCode::UNAUTHORIZED
    );
    let wrong_path = signed(&c, &s.external, &key, "GET", &path, "", now_s());
    let wrong_path = c
        .get(format!("{}/atlas/api/order", s.external))
        .headers(wrong_path.build().unwrap().headers().clone());
    assert_eq!(raw.send(wrong_path).0, StatusCode::UNAUTHORIZED);
    // Keys do not work on the internal listener.
    let internal = signed(
        &s.admin_client(),
        &s.internal,
        &key,
        "GET",
        "/atlas/internal/api/product/equity",
        "",
        now_s(),
    );
    assert_eq!(raw.send(internal).0, StatusCode::UNAUTHORIZED);
    // Revoked: 401 from then on.
    let k = key["key"].as_str().unwrap();
    assert_eq!(
        adm.delete(&format!("/atlas/internal/api/participant/broker/1/apikey/{k}")).0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        adm.delete(&format!("/atlas/internal/api/participant/broker/1/apikey/{k}")).0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        raw.send(signed(&c, &s.external, &key, "GET", &path, "", now_s())).0,
        StatusCode::UNAUTHORIZED
    );

    // Forged identities: a client-supplied identity header is dropped, and
    // unsigned or foreign-algorithm tokens are refused.
    let alice = broker(s, "alice");
    let forged = raw.send(
        c.get(format!("{}/atlas/api/order", s.external))
            .header("x-atlas-identity", alice.token.clone().unwrap()),
    );
    assert_eq!(forged.0, StatusCode::UNAUTHORIZED);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = alice.token.as_ref().unwrap().split('.').nth(1).unwrap().to_owned();
    for header in
        [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"RS256","typ":"JWT"}"#, r#"{"alg":"HS512","typ":"JWT"}"#]
    {
        let token = format!("{}.{payload}.", b64.encode(header));
        let t = Api { token: Some(token), client: s.client(), base: s.external.clone() };
        assert_eq!(t.get("/atlas/api/order").0, StatusCode::UNAUTHORIZED, "{header}");
    }
}

fn risk_limits(s: &Server) {
    let adm = admin(s);
    let bob = broker(s, "bob");
    let limits = "/atlas/internal/api/participant/broker/2/limits";
    let last = bob.get("/atlas/api/trade?productId=1").1.as_array().unwrap().last().unwrap()["price"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(last, "5.00", "the collar below is around this print");
    for bad in [
        json!({"maxOrderQuantity": 0}),
        json!({"maxOrderNotional": "-1"}),
        json!({"priceCollarPercent": "0"}),
        json!({"maxOpen": 1}),
    ] {
        assert_eq!(
            code(&adm.put(limits, bad.clone())),
            (StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
            "{bad}"
        );
    }
    let set = json!({"maxOrderQuantity": 5, "maxOrderNotional": "100.00", "maxOpenOrders": 2, "priceCollarPercent": "10"});
    let (st, got) = adm.put(limits, set);
    assert_eq!(st, StatusCode::OK, "{got}");
    assert_eq!(
        adm.get(limits).1,
        json!({"maxOrderQuantity": 5, "maxOrderNotional": "100.00", "maxOpenOrders": 2, "priceCollarPercent": "10.00", "killSwitch": false})
    );
    assert_eq!(bob.get(limits).0, StatusCode::NOT_FOUND, "brokers do not reach limits");
    let new = |qty: i64, price: &str| {
        bob.post(
            "/atlas/api/order",
            json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": qty, "price": price}),
        )
    };
    assert_eq!(code(&new(6, "5.00")), (StatusCode::UNPROCESSABLE_ENTITY, "RISK_MAX_QUANTITY"));
    assert_eq!(code(&new(5, "25.00")), (StatusCode::UNPROCESSABLE_ENTITY, "RISK_MAX_NOTIONAL"));
    assert_eq!(code(&new(1, "6.00")), (StatusCode::UNPROCESSABLE_ENTITY, "RISK_PRICE_COLLAR"));
    let o1 = new(1, "5.00");
    let o2 = new(1, "4.90");
    assert_eq!((o1.0, o2.0), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(code(&new(1, "4.80")), (StatusCode::UNPROCESSABLE_ENTITY, "RISK_MAX_OPEN_ORDERS"));
    // The collar applies to amends too.
    let o1_id = o1.1["id"].as_u64().unwrap();
    assert_eq!(
        code(&bob.put(&format!("/atlas/api/order/{o1_id}"), json!({"price": "9.00"}))).1,
        "RISK_PRICE_COLLAR"
    );

    // So do the quantity limit (an amend cannot grow an order past it).
    assert_eq!(
        code(&bob.put(&format!("/atlas/api/order/{o1_id}"), json!({"quantity": 6}))),
        (StatusCode::UNPROCESSABLE_ENTITY, "RISK_MAX_QUANTITY")
    );
    // The kill switch: block, cancel everything, refuse new orders; then release.
    let (st, k) = adm.post("/atlas/internal/api/participant/broker/2/killSwitch", json!({"active": true}));
    assert_eq!(st, StatusCode::OK, "{k}");
    assert_eq!(k["cancelled"].as_array().unwrap().len(), 2);
    assert_eq!(code(&new(1, "5.00")), (StatusCode::FORBIDDEN, "PARTICIPANT_BLOCKED"));
    assert_eq!(bob.get("/atlas/api/order?status=OPEN").1["orders"], json!([]));
    assert_eq!(adm.get(limits).1["killSwitch"], true);
    adm.post("/atlas/internal/api/participant/broker/2/killSwitch", json!({"active": false}));
    assert_eq!(new(1, "5.00").0, StatusCode::CREATED);
    bob.delete("/atlas/api/order");
    // Limits that the restart below must keep (and that its last order fits).
    assert_eq!(adm.put(limits, json!({"maxOrderQuantity": 5, "maxOrderNotional": "1000"})).0, StatusCode::OK);
}

/// The audit trail: every kind of change the run made, in one chain, readable
/// by admins only, and never a secret in it.
fn audit_trail(s: &Server, secrets: &[&str]) {
    let adm = admin(s);
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let (st, page) = adm.get(&format!("/atlas/internal/api/audit?after={after}&limit=50"));
        assert_eq!(st, StatusCode::OK, "{page}");
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_i64() {
            Some(c) => after = c,
            None => break,
        }
    }
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"].as_i64(), Some(i as i64 + 1), "paging returns the chain in order");
        if i > 0 {
            assert_eq!(e["prevHash"], entries[i - 1]["hash"], "each entry links to the one before");
        }
    }
    let actions: std::collections::BTreeSet<&str> =
        entries.iter().filter_map(|e| e["action"].as_str()).collect();
    for want in [
        "LOGIN_SUCCEEDED",
        "LOGIN_FAILED",
        "USER_CREATED",
        "PRODUCT_CREATED",
        "PRODUCT_UPDATED",
        "PRODUCT_HALTED",
        "PRODUCT_RESUMED",
        "PARTICIPANT_CREATED",
        "API_KEY_CREATED",
        "API_KEY_REVOKED",
        "RISK_LIMITS_SET",
        "KILL_SWITCH_ON",
        "KILL_SWITCH_OFF",
        "TRADE_BUSTED",
    ] {
        assert!(actions.contains(want), "no {want} in the trail: {actions:?}");
    }
    let failed = entries.iter().find(|e| e["action"] == "LOGIN_FAILED").unwrap();
    assert!(
        failed["principal"].as_str().unwrap().starts_with("login:") && failed["ip"] == "127.0.0.1",
        "{failed}"
    );
    let bust = entries.iter().find(|e| e["action"] == "TRADE_BUSTED").unwrap();
    assert!(
        bust["principal"].as_str().unwrap().starts_with("user:")
            && bust["target"].as_str().unwrap().starts_with("trade:")
    );
    let text = serde_json::to_string(&entries).unwrap();
    for secret in secrets {
        assert!(!text.contains(secret), "a secret is in the audit trail");
    }
    // Filtered by action; admins only (a broker cannot reach the internal path).
    let (_, only) = adm.get("/atlas/internal/api/audit?action=TRADE_BUSTED");
    assert!(only["entries"].as_array().unwrap().iter().all(|e| e["action"] == "TRADE_BUSTED"));
    assert_eq!(adm.get("/atlas/internal/api/audit?limit=0").0, StatusCode::BAD_REQUEST);
    assert_eq!(broker(s, "bob").get("/atlas/internal/api/audit").0, StatusCode::NOT_FOUND);
}

/// What a restart must preserve, read through the API.
fn snapshot(s: &Server) -> Value {
    let alice = broker(s, "alice");
    let adm = admin(s);
    json!({
        "orders": alice.get("/atlas/api/order?status=ALL").1,
        "book": alice.get("/atlas/api/orderBook/1").1,
        "tape": alice.get("/atlas/api/trade?productId=1").1,
        "products": adm.get("/atlas/internal/api/product/equity").1,
        "brokers": adm.get("/atlas/internal/api/participant/broker").1,
        "limits": adm.get("/atlas/internal/api/participant/broker/2/limits").1,
        "trades": (1..=8).map(|t| adm.get(&format!("/atlas/internal/api/trade/{t}")).1).collect::<Vec<_>>(),
    })
}

fn whole_api(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), database_url);
    setup(&s);
    listeners_and_login(&s);
    products_and_participants(&s);
    trading(&s);
    busts(&s);
    api_keys_and_forgery(&s);
    risk_limits(&s);
    // A live key and a revoked one: a restart keeps both as they are.
    let adm = admin(&s);
    let live = adm.post("/atlas/internal/api/participant/broker/1/apikey", json!({})).1;
    let dead = adm.post("/atlas/internal/api/participant/broker/1/apikey", json!({})).1;
    let secrets = [
        ADMIN_PASSWORD,
        "alice-password",
        "bob-password",
        live["secret"].as_str().unwrap(),
        live["passphrase"].as_str().unwrap(),
    ];
    audit_trail(&s, &secrets);
    let dead_key = dead["key"].as_str().unwrap();
    adm.delete(&format!("/atlas/internal/api/participant/broker/1/apikey/{dead_key}"));
    let before = snapshot(&s);
    // Every answer so far is what the OpenAPI description says it is.
    let checked = server::check_against_openapi(&s);
    assert!(checked > 150, "only {checked} answers checked against the description");
    let (dir_path, url) = s.stop();
    let s = Server::start(&dir_path, url.as_deref());
    // The book's level2 sequence moves forward across a restart (every feed
    // connection was closed; numbering restarts above everything before);
    // everything else is exactly as it was.
    let (mut after, mut before) = (snapshot(&s), before);
    let (seq_after, seq_before) = (after["book"]["sequence"].take(), before["book"]["sequence"].take());
    assert!(seq_after.as_u64() >= seq_before.as_u64(), "{seq_after} < {seq_before}");
    assert_eq!(after, before, "a restart changed what the API shows");
    let raw = Api { client: s.client(), base: s.external.clone(), token: None };
    for (key, want) in [(&live, StatusCode::OK), (&dead, StatusCode::UNAUTHORIZED)] {
        let r = signed(&s.client(), &s.external, key, "GET", "/atlas/api/order", "", now_s());
        assert_eq!(raw.send(r).0, want, "API keys survive a restart as they were");
    }
    // And it keeps trading where it left off.
    let bob = broker(&s, "bob");
    let over = bob.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 6, "price": "11.00"}),
    );
    assert_eq!(code(&over).1, "RISK_MAX_QUANTITY", "limits survive the restart");
    assert_eq!(order(&bob, "BUY", 5, "11.00")["status"], "FILLED");
    server::check_against_openapi(&s);
    s.stop();
    // The journal and the audit trail verify from genesis.
    let mut verify = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"));
    verify.args(["verify", "--data-dir"]).arg(dir.path());
    if let Some(url) = database_url {
        verify.args(["--database-url", url]);
    }
    let out = verify.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("audit trail OK"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(dir);
}

#[test]
fn the_api_on_sqlite() {
    whole_api(None);
}

#[test]
fn the_api_on_postgres() {
    let cluster = pg::PgCluster::start();
    let url = cluster.database("api");
    whole_api(Some(&url));
}
