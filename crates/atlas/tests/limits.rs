//! Rate limits take effect at the configured numbers: with 5 order-entry and 10
//! other requests per second (bursts of 10 and 20), a burst of orders from one
//! broker is cut at about the burst with `429 RATE_LIMITED` and `Retry-After`,
//! queries have their own bucket, health endpoints are exempt, and after waiting
//! the broker can trade again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use reqwest::StatusCode;
use serde_json::json;
use server::{Server, admin, broker, code};

#[test]
fn rate_limits_cut_bursts_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        None,
        &[("ATLAS_RATE_LIMIT_ORDERS", "5"), ("ATLAS_RATE_LIMIT_QUERIES", "10")],
    );
    let adm = admin(&s);
    adm.post("/atlas/internal/api/product/equity", json!({"symbol": "ACME"}));
    adm.post("/atlas/internal/api/participant/broker", json!({"name": "Broker alice"}));
    let (st, _) = adm.post(
        "/atlas/internal/api/participant/broker/1/user",
        json!({"username": "alice", "password": "alice-password", "role": "broker"}),
    );
    assert_eq!(st, StatusCode::CREATED);
    // Let the internal calls' IP bucket refill (the same loopback address).
    std::thread::sleep(std::time::Duration::from_secs(3));
    let alice = broker(&s, "alice");
    let body = json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "1.00"});
    let mut created = 0;
    let mut limited = None;
    for _ in 0..30 {
        let r = alice.send(alice.req(reqwest::Method::POST, "/atlas/api/order").json(&body));
        match r.0 {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited = Some(r);
                break;
            }
            other => panic!("unexpected {other}: {}", r.1),
        }
    }
    // Burst 10, plus what refilled at 5/s while the requests ran.
    assert!((10..=14).contains(&created), "{created} orders before the limit");
    let limited = limited.expect("the burst must be cut");
    assert_eq!(limited.1["code"], "RATE_LIMITED");
    // Queries draw from their own bucket; health checks from none.
    assert_eq!(alice.get("/atlas/api/orderBook/1").0, StatusCode::OK);
    for _ in 0..50 {
        assert_eq!(alice.get("/healthz").0, StatusCode::OK);
    }
    // The headers of a refusal (a token may have refilled meanwhile on a busy
    // machine: take the first refusal within a few tries).
    let raw = (0..20)
        .map(|_| alice.req(reqwest::Method::POST, "/atlas/api/order").json(&body).send().unwrap())
        .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .expect("still limited");
    let retry: u64 = raw.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(raw.headers()["ratelimit-limit"], "5");
    assert_eq!(raw.headers()["ratelimit-remaining"], "0");
    assert_eq!(raw.headers()["ratelimit-policy"], "5;w=1");
    assert!(raw.headers()["ratelimit-reset"].to_str().unwrap().parse::<u32>().unwrap() >= 1);
    // Retry-After is honest: after it, orders go through again.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(alice.post("/atlas/api/order", body).0, StatusCode::CREATED);
}

/// Failed logins back off exponentially per name and per IP, at the configured
/// numbers, before any password work; the right password during a block is
/// refused too; after the wait it works and clears the name's count.
#[test]
fn failed_logins_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        None,
        &[
            ("ATLAS_RATE_LIMIT_ORDERS", "0"),
            ("ATLAS_RATE_LIMIT_QUERIES", "0"),
            ("ATLAS_LOGIN_FAILURES_PER_USER", "2"),
            ("ATLAS_LOGIN_FAILURES_PER_IP", "6"),
        ],
    );
    let adm = admin(&s);
    adm.post("/atlas/internal/api/participant/broker", json!({"name": "Broker alice"}));
    adm.post(
        "/atlas/internal/api/participant/broker/1/user",
        json!({"username": "alice", "password": "alice-password", "role": "broker"}),
    );
    let raw = server::Api { client: s.client(), base: s.external.clone(), token: None };
    let login = |user: &str, password: &str| {
        raw.post("/atlas/api/auth/token", json!({"username": user, "password": password}))
    };
    assert_eq!(code(&login("alice", "wrong-password-1")), (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"));
    assert_eq!(code(&login("alice", "wrong-password-2")), (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"));
    // Blocked now, even with the right password; the answer says how long.
    let blocked = raw
        .req(reqwest::Method::POST, "/atlas/api/auth/token")
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .unwrap();
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = blocked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(code(&login("alice", "alice-password")), (StatusCode::TOO_MANY_REQUESTS, "LOGIN_THROTTLED"));
    std::thread::sleep(std::time::Duration::from_millis(1_100 * retry));
    assert_eq!(login("alice", "alice-password").0, StatusCode::OK, "after the wait");
    // A name that does not exist is throttled the same way (nothing to learn).
    login("nobody", "x-password-1");
    login("nobody", "x-password-2");
    assert_eq!(code(&login("nobody", "x-password-3")), (StatusCode::TOO_MANY_REQUESTS, "LOGIN_THROTTLED"));
    // Per IP: this address has failed 4 times; two more failures under new
    // names block every name from it, including alice's right password.
    login("mallory", "x-password-1");
    login("trudy", "x-password-1");
    assert_eq!(code(&login("alice", "alice-password")), (StatusCode::TOO_MANY_REQUESTS, "LOGIN_THROTTLED"));
}

/// Request heads and connections are bounded: too many headers, an over-long
/// URI, and more connections from one IP than the cap are refused; the cap frees
/// up when connections close.
#[test]
fn heads_and_connections_are_bounded() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        None,
        &[
            ("ATLAS_RATE_LIMIT_ORDERS", "0"),
            ("ATLAS_RATE_LIMIT_QUERIES", "0"),
            ("ATLAS_CONNECTIONS_PER_IP", "4"),
        ],
    );
    let c = s.client();
    let mut many = c.get(format!("{}/healthz", s.external));
    for i in 0..80 {
        many = many.header(format!("x-filler-{i}"), "1");
    }
    assert_eq!(many.send().unwrap().status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let long = format!("{}/atlas/api/product/equity?symbol={}", s.external, "A".repeat(5_000));
    let r = c.get(long).send().unwrap();
    assert_eq!(r.status(), StatusCode::URI_TOO_LONG);
    drop(c);
    std::thread::sleep(std::time::Duration::from_millis(300));

    // Four raw connections are held open (waiting for their TLS handshakes);
    // a fifth from the same IP is closed at once.
    let addr = s.external.trim_start_matches("https://").to_owned();
    let held: Vec<_> = (0..4).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut fifth = std::net::TcpStream::connect(&addr).unwrap();
    fifth.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(fifth.read(&mut buf).unwrap(), 0, "the fifth connection is closed");
    let mut first = held[0].try_clone().unwrap();
    first.set_read_timeout(Some(std::time::Duration::from_millis(300))).unwrap();
    assert!(first.read(&mut buf).is_err(), "the held ones stay open");
    drop(held);
    drop(first);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(s.client().get(format!("{}/healthz", s.external)).send().unwrap().status(), StatusCode::OK);
}

/// A connection that goes quiet is closed after the idle timeout (here 1 s,
/// well before the 10 s allowed for a request's head), after serving what it
/// asked for.
#[test]
fn idle_connections_are_closed() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        None,
        &[("ATLAS_RATE_LIMIT_QUERIES", "0"), ("ATLAS_IDLE_TIMEOUT_SECONDS", "1")],
    );
    let addr = s.external.trim_start_matches("https://").to_owned();
    let mut client = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-quiet", "-servername", "localhost"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    stdin.flush().unwrap();
    let started = std::time::Instant::now();
    // stdin stays open: only the server can end the session.
    let status = loop {
        if let Some(st) = client.try_wait().unwrap() {
            break Some(st);
        }
        if started.elapsed() > std::time::Duration::from_secs(8) {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = client.kill();
    let mut out = String::new();
    client.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(out.contains("200 OK"), "the request was served first: {out:?}");
    assert!(status.is_some(), "the idle connection was still open after 8 s");
    drop(stdin);
}

/// The per-IP limit is taken before the request's body is read: a client over
/// its limit gets its 429 at once, not after the server has waited for (and
/// read) a body it will refuse. Three order requests announce a body and send
/// none; with 1 request per second (burst 2), two wait for their bodies and
/// one is refused without one. The connections are set up first and the
/// three heads written together, so no token comes back in between (a TLS
/// handshake each, on a busy CI machine, once took long enough for one to);
/// which of the three the server takes last is its choice.
#[test]
fn a_client_over_its_limit_is_refused_before_its_body_is_read() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        None,
        &[("ATLAS_RATE_LIMIT_ORDERS", "1"), ("ATLAS_RATE_LIMIT_QUERIES", "0")],
    );
    let ca = std::fs::read(s.data_dir.join("pki/ca.crt")).unwrap();
    let addr = s.external.trim_start_matches("https://").to_owned();
    let head = "POST /atlas/api/order HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n";
    let mut conns: Vec<_> = (0..3)
        .map(|_| {
            let mut tls = server::fix::tls_stream(&addr, &ca);
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock).unwrap();
            }
            tls.sock.set_read_timeout(Some(std::time::Duration::from_millis(20))).unwrap();
            tls
        })
        .collect();
    for tls in &mut conns {
        tls.write_all(head.as_bytes()).unwrap();
    }
    // Each connection's answer so far. The body read would time out after
    // 10 s (408); the refusal comes first.
    let mut answers = vec![Vec::new(); conns.len()];
    let read_all = |conns: &mut [rustls::StreamOwned<_, _>], answers: &mut [Vec<u8>]| {
        for (tls, answer) in conns.iter_mut().zip(answers.iter_mut()) {
            // A connection with its status line is done: what the server
            // does with it next (closing it, with or without a TLS
            // close_notify) is not this test's matter.
            if answer.len() >= 12 {
                continue;
            }
            let mut buf = [0u8; 64];
            match tls.read(&mut buf) {
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("reading an answer: {e}"),
            }
        }
    };
    let started = std::time::Instant::now();
    while answers.iter().all(|a| a.len() < 12) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(8),
            "no answer before the body read's timeout"
        );
        read_all(&mut conns, &mut answers);
    }
    // The two within the limit are still waiting for their bodies.
    let settled = std::time::Instant::now();
    while settled.elapsed() < std::time::Duration::from_millis(300) {
        read_all(&mut conns, &mut answers);
    }
    let refused: Vec<_> = answers.iter().filter(|a| !a.is_empty()).collect();
    assert_eq!(
        refused.len(),
        1,
        "{:?}",
        answers.iter().map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>()
    );
    assert!(refused[0].starts_with(b"HTTP/1.1 429"), "{}", String::from_utf8_lossy(refused[0]));
}
