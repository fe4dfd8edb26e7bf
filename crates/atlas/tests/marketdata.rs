//! Market data against the running binary: a stock Python `websockets` client
//! subscribes to level2, matches, ticker and heartbeat (on the native feed and
//! on the Coinbase-compatible one), rebuilds the book from the snapshot and
//! the updates while two brokers trade, and the book it rebuilt equals the REST
//! book at the same sequence, with no gap; the REST ticker and candles agree
//! with the trades.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::fix::{FixClient, show};
use server::{Api, Server, admin, broker};

fn setup(s: &Server) -> (Api, Api) {
    let adm = admin(s);
    adm.post("/atlas/internal/api/product/equity", json!({"symbol": "ACME", "tickSize": "0.01"}));
    for (i, name) in ["alice", "bob"].iter().enumerate() {
        adm.post("/atlas/internal/api/participant/broker", json!({"name": format!("Broker {name}")}));
        adm.post(
            &format!("/atlas/internal/api/participant/broker/{}/user", i + 1),
            json!({"username": name, "password": format!("{name}-password"), "role": "broker"}),
        );
    }
    (broker(s, "alice"), broker(s, "bob"))
}

fn order(who: &Api, side: &str, price: &str, qty: u64) -> StatusCode {
    who.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": side, "type": "LIMIT", "quantity": qty, "price": price}),
    )
    .0
}

/// The Python feed client, subscribed (its first line said so).
struct Feed {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Feed {
    /// Starts `feed.py` on `path` as `who` (whose token also subscribes it to
    /// the user channel) and waits until it has the level2 snapshot.
    fn start(s: &Server, who: &Api, path: &str, flavor: &str, product: &str) -> Feed {
        let url = format!("{}{path}", s.external.replacen("https://", "wss://", 1));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/marketdata/feed.py");
        let mut child = Command::new("python3")
            .args([script, &url, s.data_dir.join("pki/ca.crt").to_str().unwrap(), flavor, product])
            .arg(who.token.as_deref().unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if line.trim() != "subscribed" {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the feed client did not subscribe: {line:?}\n{err}");
        }
        Feed { child, out }
    }

    /// Tells the client to stop at the REST book's current sequence (which
    /// its level2 updates must reach without a gap); returns what it saw and
    /// that sequence.
    fn finish(mut self, who: &Api) -> (Value, Value) {
        let (_, book) = who.get("/atlas/api/orderBook/1?depth=1000");
        let sequence = book["sequence"].as_u64().unwrap();
        assert!(sequence > 0, "{book}");
        let mut stdin = self.child.stdin.take().unwrap();
        writeln!(stdin, "{sequence}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(status.success(), "feed client failed: {err}");
        let seen: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line:?} {err}"));
        assert_eq!(seen["sequence"], sequence, "{seen}");
        assert_eq!(seen["gaps"], 0, "{seen}");
        assert_eq!(seen["errors"], json!([]), "{seen}");
        (seen, book)
    }
}

/// Runs the Python client against `path`, trades while it listens, and checks
/// its rebuilt book against the REST book.
fn feed_matches_rest(s: &Server, alice: &Api, bob: &Api, path: &str, flavor: &str, product: &str) -> Value {
    // Alice's feed connection carries her token: she also gets her own orders.
    let feed = Feed::start(s, alice, path, flavor, product);
    // Two brokers trade: resting orders on both sides, then crossing ones.
    for i in 0..40u64 {
        let cents = |c: u64| format!("{}.{:02}", c / 100, c % 100);
        assert_eq!(order(alice, "BUY", &cents(900 + i % 10), 1 + i % 3), StatusCode::CREATED);
        assert_eq!(order(bob, "SELL", &cents(1_010 + i % 10), 1 + i % 4), StatusCode::CREATED);
        if i % 5 == 0 {
            assert_eq!(order(bob, "SELL", &cents(900), 2), StatusCode::CREATED);
            assert_eq!(order(alice, "BUY", &cents(1_015), 3), StatusCode::CREATED);
        }
    }
    let (seen, book) = feed.finish(alice);
    assert!(seen["updates"].as_u64().unwrap() >= 80, "{seen}");
    assert!(seen["matches"].as_u64().unwrap() >= 8 && seen["tickers"].as_u64().unwrap() >= 1, "{seen}");
    assert!(seen["heartbeats"].as_u64().unwrap() >= 1 && seen["subscriptions"] == 1, "{seen}");
    let rest_side = |levels: &Value| -> serde_json::Map<String, Value> {
        levels
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (l["price"].as_str().unwrap().to_owned(), json!(l["quantity"].as_i64().unwrap().to_string()))
            })
            .collect()
    };
    assert_eq!(seen["bids"], Value::Object(rest_side(&book["bids"])), "bids differ");
    assert_eq!(seen["asks"], Value::Object(rest_side(&book["offers"])), "asks differ");
    seen["private"].clone()
}

/// The user channel named only the caller's orders, and all of those placed
/// while it listened; Coinbase's flavor said `received` once for each of those.
fn private_is_hers(alice: &Api, private: &Value, placed_before: &[u64], flavor: &str) {
    let (_, mine) = alice.get("/atlas/api/order?limit=1000");
    let mine: Vec<u64> =
        mine["orders"].as_array().unwrap().iter().map(|o| o["id"].as_u64().unwrap()).collect();
    let seen: Vec<u64> = private["orders"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(!seen.is_empty() && seen.iter().all(|id| mine.contains(id)), "not all hers: {seen:?}");
    for id in mine.iter().filter(|id| !placed_before.contains(id)) {
        assert!(seen.contains(id), "order {id} of hers never appeared on her user channel");
    }
    assert!(private["fills"].as_u64().unwrap() >= 1, "{private}");
    let mut received: Vec<u64> =
        private["received"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    received.sort_unstable();
    let mut placed: Vec<u64> = mine.into_iter().filter(|id| !placed_before.contains(id)).collect();
    placed.sort_unstable();
    match flavor {
        "coinbase" => assert_eq!(received, placed, "one `received` per order she placed"),
        _ => assert!(received.is_empty(), "{received:?}"),
    }
}

#[test]
fn the_feed_rebuilds_the_rest_book_and_rest_market_data_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    let (alice, bob) = setup(&s);
    let private = feed_matches_rest(&s, &alice, &bob, "/atlas/api/ws", "atlas", "1");
    private_is_hers(&alice, &private, &[], "atlas");
    let (_, before) = alice.get("/atlas/api/order?limit=1000");
    let before: Vec<u64> =
        before["orders"].as_array().unwrap().iter().map(|o| o["id"].as_u64().unwrap()).collect();
    let private = feed_matches_rest(&s, &alice, &bob, "/coinbase/ws", "coinbase", "ACME-USD");
    private_is_hers(&alice, &private, &before, "coinbase");

    // The REST ticker and candles agree with the trades.
    let (st, ticker) = alice.get("/atlas/api/ticker/1");
    assert_eq!(st, StatusCode::OK, "{ticker}");
    let (_, tape) = alice.get("/atlas/api/trade?productId=1&limit=1000");
    let trades = tape.as_array().or(tape["trades"].as_array()).unwrap().clone();
    let volume: i64 = trades.iter().map(|t| t["quantity"].as_i64().unwrap()).sum();
    assert_eq!(ticker["volume24h"], volume, "{ticker}");
    let last = trades.iter().max_by_key(|t| t["id"].as_u64().unwrap()).unwrap();
    assert_eq!(ticker["price"], last["price"], "the last trade's price: {ticker}");
    assert_eq!(ticker["tradeId"], last["id"]);
    let (_, book) = alice.get("/atlas/api/orderBook/1?depth=1");
    assert_eq!(ticker["bestBid"], book["bids"][0]["price"]);
    assert_eq!(ticker["bestAsk"], book["offers"][0]["price"]);
    let (st, candles) = alice.get("/atlas/api/candles/1?interval=1h");
    assert_eq!(st, StatusCode::OK, "{candles}");
    let c = candles["candles"].as_array().unwrap();
    let candle_volume: i64 = c.iter().map(|c| c["volume"].as_i64().unwrap()).sum();
    let candle_trades: u64 = c.iter().map(|c| c["trades"].as_u64().unwrap()).sum();
    assert_eq!((candle_volume, candle_trades as usize), (volume, trades.len()));
    assert_eq!(c.last().unwrap()["close"], last["price"]);
    assert_eq!(
        server::code(&alice.get("/atlas/api/candles/1?interval=2m")),
        (StatusCode::BAD_REQUEST, "VALIDATION_FAILED")
    );
    assert_eq!(server::code(&alice.get("/atlas/api/ticker/9")), (StatusCode::NOT_FOUND, "PRODUCT_NOT_FOUND"));

    // Without a credential the user channel is refused (the public ones work);
    // a bad request gets an error message, not a disconnect.
    let probe = r#"
import asyncio, json, ssl, sys, websockets
async def main(url, ca):
    ctx = ssl.create_default_context(cafile=ca)
    async with websockets.connect(url, ssl=ctx) as ws:
        out = []
        for msg in ({"type": "subscribe", "channels": ["user"], "productIds": [1]},
                    {"type": "subscribe", "channels": ["nonsense"], "productIds": [1]},
                    {"type": "subscribe", "channels": ["heartbeat"], "productIds": [1]}):
            await ws.send(json.dumps(msg))
            out.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        print(json.dumps(out))
asyncio.run(main(*sys.argv[1:3]))
"#;
    let url = format!("{}/atlas/api/ws", s.external.replacen("https://", "wss://", 1));
    let out = Command::new("python3")
        .args(["-c", probe, &url, s.data_dir.join("pki/ca.crt").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answers: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answers[0]["type"], "error", "{answers}");
    assert!(answers[0]["message"].as_str().unwrap().contains("needs authentication"), "{answers}");
    assert_eq!(answers[1]["type"], "error", "{answers}");
    assert_eq!(answers[2]["type"], "subscriptions", "{answers}");
    server::check_against_openapi(&s);
}

/// Orders entered and changed within one journal batch: a FIX client's
/// pipelined orders share batches, so a buy can rest and be filled by the
/// sell right behind it before the batch commits. The user channel in
/// Coinbase's shape still says `received` exactly once for each order,
/// before anything else about it (REST orders, one at a time, never share a
/// batch, so the test above cannot show this).
#[test]
fn received_comes_once_and_first_for_orders_entered_and_filled_in_one_batch() {
    const PAIRS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    let keys = server::fix::seed(&s);
    let (alice, bob) = (broker(&s, "alice"), broker(&s, "bob"));
    let feed = Feed::start(&s, &alice, "/coinbase/ws", "coinbase", "ACME-USD");
    let mut fix = FixClient::plain(&s.fix_plain, &keys[0]);
    fix.logon(&[(141, "Y")]);
    // One write: each buy rests and the sell behind it fills it (self-trades
    // are allowed unless an order asks otherwise).
    let mut burst = Vec::new();
    for i in 0..PAIRS {
        for (side, cl) in [("1", format!("b{i}")), ("2", format!("s{i}"))] {
            let body =
                [(11, cl.as_str()), (55, "ACME"), (54, side), (38, "1"), (40, "2"), (44, "5.00"), (59, "1")];
            burst.extend(fix.message("D", fix.next_out, &body));
            fix.next_out += 1;
        }
    }
    fix.raw(&burst);
    let mut fills = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while fills < 2 * PAIRS {
        assert!(Instant::now() < deadline, "only {fills} fills of {}", 2 * PAIRS);
        let Some(m) = fix.try_recv(Duration::from_secs(1)) else { continue };
        if m.msg_type() == b"8" {
            assert_ne!(m.text(150), Some("8"), "{}", show(&m));
            fills += usize::from(m.text(150) == Some("F"));
        }
    }
    // A later batch that moves the book: the feed's level2 sequence reaches
    // it only after everything about the trades above.
    assert_eq!(order(&bob, "SELL", "7.00", 1), StatusCode::CREATED);
    let (seen, _) = feed.finish(&alice);
    let private = &seen["private"];

    let (_, mine) = alice.get("/atlas/api/order?limit=1000");
    let mut placed: Vec<u64> =
        mine["orders"].as_array().unwrap().iter().map(|o| o["id"].as_u64().unwrap()).collect();
    placed.sort_unstable();
    assert_eq!(placed.len(), 2 * PAIRS);
    let mut received: Vec<u64> =
        private["received"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    received.sort_unstable();
    assert_eq!(received, placed, "one `received` per order");

    // Per order: `received` first, then matches, `open` only while resting,
    // `done` last.
    let mut told: HashMap<u64, Vec<&str>> = HashMap::new();
    for entry in private["log"].as_array().unwrap() {
        let kind = entry[0].as_str().unwrap();
        for id in entry.as_array().unwrap()[1..].iter().map(|v| v.as_u64().unwrap()) {
            let said = told.entry(id).or_default();
            assert!(said.is_empty() == (kind == "received"), "{kind} for {id} after {said:?}");
            assert!(!said.contains(&"done"), "{kind} for {id} after its done");
            said.push(kind);
        }
    }
    // The case in point happened: buys (makers) never said `open`, because
    // they rested and filled within the batch that entered them.
    let makers: Vec<u64> = private["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[0] == "match")
        .map(|e| e[1].as_u64().unwrap())
        .collect();
    assert_eq!(makers.len(), 2 * PAIRS, "each trade, seen from both sides");
    let in_one_batch = makers.iter().filter(|id| !told[id].contains(&"open")).count();
    assert!(in_one_batch > 0, "no buy rested and filled within one batch: {told:?}");
    for id in &placed {
        assert_eq!(told[id].last(), Some(&"done"), "order {id}: {:?}", told[id]);
    }
}

/// Feed connections per IP are capped (here at 2): the third upgrade is refused
/// with 429, and a closed connection frees its slot.
#[test]
fn feed_connections_per_ip_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        None,
        &[("ATLAS_RATE_LIMIT_QUERIES", "0"), ("ATLAS_FEED_CONNECTIONS_PER_IP", "2")],
    );
    setup(&s);
    let probe = r#"
import asyncio, json, ssl, sys, websockets
async def main(url, ca):
    ctx = ssl.create_default_context(cafile=ca)
    held = [await websockets.connect(url, ssl=ctx) for _ in range(2)]
    try:
        await websockets.connect(url, ssl=ctx)
        third = "accepted"
    except websockets.InvalidStatus as e:
        third = e.response.status_code
    await held[0].close()
    await asyncio.sleep(0.5)
    again = await websockets.connect(url, ssl=ctx)
    await again.send(json.dumps({"type": "subscribe", "channels": ["heartbeat"], "productIds": [1]}))
    ack = json.loads(await asyncio.wait_for(again.recv(), 10))["type"]
    print(json.dumps({"third": third, "after_close": ack}))
asyncio.run(main(*sys.argv[1:3]))
"#;
    let url = format!("{}/atlas/api/ws", s.external.replacen("https://", "wss://", 1));
    let out = Command::new("python3")
        .args(["-c", probe, &url, s.data_dir.join("pki/ca.crt").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen, json!({"third": 429, "after_close": "subscriptions"}));
}

/// A request to the feed that is not a WebSocket upgrade is refused with a
/// problem document, as every other bad request is; a WebSocket version other
/// than 13 gets 426 naming the one supported (RFC 6455 §4.4), and a key that is
/// not a 16-byte nonce in base64 (§4.2.1) gets 400.
#[test]
fn a_feed_request_that_is_not_a_websocket_upgrade_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    let http1 = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(s.ca())
        .http1_only()
        .build()
        .unwrap();
    for path in ["/atlas/api/ws", "/coinbase/ws"] {
        let url = format!("{}{path}", s.external);
        let plain = http1.get(&url).send().unwrap();
        assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
        let body: Value = plain.json().unwrap();
        assert_eq!(body["code"], "VALIDATION_FAILED", "{body}");
        assert!(body["detail"].as_str().unwrap().contains("WebSocket"), "{body}");
        let upgrade_with = |version: &str, key: &str| {
            http1
                .get(&url)
                .header("Connection", "Upgrade")
                .header("Upgrade", "websocket")
                .header("Sec-WebSocket-Version", version)
                .header("Sec-WebSocket-Key", key)
                .send()
                .unwrap()
        };
        let upgrade = |version: &str| upgrade_with(version, "dGhlIHNhbXBsZSBub25jZQ==");
        // 5 bytes; 16 bytes without padding; not base64; 17 bytes.
        for key in ["c2hvcnQ=", "dGhlIHNhbXBsZSBub25jZQ", "not a base64 nonce!!", "dGhlIHNhbXBsZSBub25jZXM="]
        {
            let bad = upgrade_with("13", key);
            assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{key}");
            let body: Value = bad.json().unwrap();
            assert!(body["detail"].as_str().unwrap().contains("Sec-WebSocket-Key"), "{key}: {body}");
        }
        let old = upgrade("8");
        assert_eq!(old.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(old.headers()["sec-websocket-version"], "13");
        // The same request at version 13 switches protocols, with the accept
        // key RFC 6455 gives for that nonce.
        let ok = upgrade("13");
        assert_eq!(ok.status(), StatusCode::SWITCHING_PROTOCOLS);
        // The same headers on HEAD (which the route also answers) do not.
        let head = http1
            .head(&url)
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
            .unwrap();
        assert_eq!(head.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ok.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}

/// A WebSocket client over TLS on a socket with a 4 KiB receive buffer: once
/// it stops polling, data stops leaving the server.
async fn slow_client(
    addr: std::net::SocketAddr,
    ca: &[u8],
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4_096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    tokio_tungstenite::client_async(format!("wss://{addr}/atlas/api/ws"), tls).await.unwrap().0
}

/// Client messages are read through a small buffer (tungstenite zeroes it
/// before every read): one of nearly the 4 KiB limit, arriving in pieces, is
/// still read whole and answered; one over the limit is refused with an error
/// that says so and a "message too big" close (1009), and ends the connection.
#[test]
fn client_messages_up_to_the_limit_are_read_whole_and_larger_ones_refused() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    let _brokers = setup(&s);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let addr: std::net::SocketAddr = s.external.trim_start_matches("https://").parse().unwrap();
    let ca = std::fs::read(s.data_dir.join("pki/ca.crt")).unwrap();
    // JSON allows whitespace between members: the padding changes nothing else.
    let padded = |bytes: usize| {
        let head = r#"{"type":"subscribe","channels":["heartbeat"],"#;
        let tail = r#""productIds":[1]}"#;
        format!("{head}{}{tail}", " ".repeat(bytes - head.len() - tail.len()))
    };
    rt.block_on(async {
        let mut ws = slow_client(addr, &ca).await;
        let near = padded(4_000);
        assert_eq!(near.len(), 4_000);
        ws.send(Message::text(near)).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        assert_eq!(v["type"], "subscriptions", "{v}");
        ws.send(Message::text(padded(5_000))).await.unwrap();
        // Heartbeats may still be on their way; then the error, the close, the end.
        let (error, close) = tokio::time::timeout(Duration::from_secs(10), async {
            let (mut error, mut close) = (Value::Null, None);
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap();
                        match v["type"].as_str() {
                            Some("heartbeat") => {}
                            Some("error") => error = v,
                            _ => panic!("unexpected {v}"),
                        }
                    }
                    Some(Ok(Message::Close(frame))) => close = frame,
                    Some(Err(_)) | None => return (error, close),
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .expect("a message over the limit must end the connection");
        assert_eq!(error["reason"], "message too big", "{error}");
        assert!(error["message"].as_str().unwrap().contains("4096 bytes"), "{error}");
        let close = close.expect("a close frame");
        assert_eq!(u16::from(close.code), 1009);
    });
}

/// A subscriber that stops reading is not queued for without limit: once its
/// queue is full the hub drops it, and when it reads again it finds, after what
/// was already on its way, an error naming the reason and then the close. The
/// exchange meanwhile goes on serving everyone else.
#[test]
fn a_subscriber_that_stops_reading_is_disconnected_with_a_reason() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        None,
        &[("ATLAS_RATE_LIMIT_QUERIES", "0"), ("ATLAS_RATE_LIMIT_ORDERS", "0")],
    );
    let (alice, _bob) = setup(&s);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let addr: std::net::SocketAddr = s.external.trim_start_matches("https://").parse().unwrap();
    let ca = std::fs::read(s.data_dir.join("pki/ca.crt")).unwrap();
    let mut ws = rt.block_on(async {
        let mut ws = slow_client(addr, &ca).await;
        ws.send(Message::text(r#"{"type":"subscribe","channels":["level2"],"productIds":[1]}"#))
            .await
            .unwrap();
        for expected in ["subscriptions", "snapshot"] {
            let m = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
            assert_eq!(v["type"], expected, "{v}");
        }
        ws
    });
    let metric = |name: &str| -> f64 {
        let text = s.admin_client().get(format!("{}/metrics", s.internal)).send().unwrap().text().unwrap();
        let line = text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')));
        line.unwrap_or_else(|| panic!("/metrics lacks {name}")).parse().unwrap()
    };
    assert_eq!(metric("atlas_feed_connections"), 1.0);
    assert_eq!(metric("atlas_feed_slow_consumers_total"), 0.0);
    // It stops reading. Each order rests at a price of its own: one level2
    // update apiece, spread over far more of the hub's 5 ms flushes than a
    // connection may have queued.
    let placed = 2_000u64;
    for i in 0..placed {
        let price = format!("{}.{:02}", 10 + i / 100, i % 100);
        assert_eq!(order(&alice, "BUY", &price, 1), StatusCode::CREATED);
    }
    // Everyone else is still served: the REST book shows the orders (to its
    // depth limit of 1,000 levels).
    let (_, book) = alice.get("/atlas/api/orderBook/1?depth=1000");
    assert_eq!(book["bids"].as_array().unwrap().len(), 1_000, "{book}");
    // It reads again: what was on its way, then the reason, then the close.
    let (updates, error, closed) = rt.block_on(async {
        let (mut updates, mut error, mut closed) = (0u64, Value::Null, false);
        while let Ok(Some(m)) = tokio::time::timeout(std::time::Duration::from_secs(30), ws.next()).await {
            match m {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    match v["type"].as_str() {
                        Some("l2update") => updates += 1,
                        Some("error") => error = v,
                        _ => {}
                    }
                }
                Ok(Message::Close(_)) | Err(_) => {
                    closed = true;
                    break;
                }
                Ok(_) => {}
            }
        }
        (updates, error, closed)
    });
    assert_eq!(error["reason"], "slow consumer", "{error} after {updates} updates");
    assert!(error["message"].as_str().unwrap().contains("reconnect and resubscribe"), "{error}");
    assert!(closed, "no close after {updates} updates");
    // It was cut off: it never got all the updates.
    assert!(updates < placed, "{updates} updates");
    // The operator sees it: one slow consumer cut off, and its connection
    // gone (the hub hears of it shortly after the close).
    assert_eq!(metric("atlas_feed_slow_consumers_total"), 1.0);
    let mut connections = metric("atlas_feed_connections");
    for _ in 0..50 {
        if connections == 0.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        connections = metric("atlas_feed_connections");
    }
    assert_eq!(connections, 0.0);
}
