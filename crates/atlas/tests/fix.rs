//! The FIX 4.4 acceptor against the running binary: logon authentication,
//! order entry and execution reports (also for what REST and the other side of
//! a trade do), cancels, replaces, mass cancels, session-level rejects,
//! sequence numbers kept across a restart, resend requests answered with
//! possible duplicates and gap fills, gaps asked for, garbled messages dropped,
//! cancel-on-disconnect, a cancel sent right behind its order (before the
//! acknowledgement) that still cancels it, the order-to-ack metric, and the
//! process setting that latency depends on (no transparent huge pages).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::fix::{Credentials, FixClient, seed, show};
use server::{Api, Server, broker};

/// Atlas with ACME and two brokers (alice, bob), each with a user and an API key.
fn setup(dir: &std::path::Path) -> (Server, Vec<Credentials>) {
    let s = Server::start(dir, None);
    let keys = seed(&s);
    (s, keys)
}

fn ca(s: &Server) -> Vec<u8> {
    std::fs::read(s.data_dir.join("pki/ca.crt")).unwrap()
}

fn text(m: &atlas_wire::fix::Message, tag: u32) -> &str {
    m.text(tag).unwrap_or("")
}

/// The next ExecutionReport (skipping heartbeats), checked to be one.
fn report(c: &mut FixClient) -> atlas_wire::fix::Message {
    let (m, before) = c.recv_type("8");
    assert!(before.iter().all(|b| b.msg_type() == b"0"), "{:?}", before.iter().map(show).collect::<Vec<_>>());
    m
}

fn order(api: &Api, id: &str) -> Value {
    let (st, b) = api.get(&format!("/atlas/api/order/{id}"));
    assert_eq!(st, StatusCode::OK, "{b}");
    b
}

#[test]
fn orders_over_fix_are_orders_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let (alice, bob) = (broker(&s, "alice"), broker(&s, "bob"));

    // A wrong passphrase, or a signature by another key's secret: Logout, closed.
    for creds in [
        Credentials { passphrase: "wrong-passphrase".into(), ..keys[0].clone() },
        Credentials { secret: keys[1].secret.clone(), ..keys[0].clone() },
    ] {
        let mut c = FixClient::tls(&s.fix, &ca(&s), &creds);
        let m = c.logon_message(1, &[]);
        c.raw(&m);
        let answer = c.recv();
        assert_eq!(answer.msg_type(), b"5", "{}", show(&answer));
        assert!(text(&answer, 58).contains("bad credentials"), "{}", show(&answer));
        assert!(c.closed().0);
    }
    // Anything but a Logon first: closed without a word.
    let mut c = FixClient::plain(&s.fix_plain, &keys[0]);
    c.send("0", &[]);
    let (closed, seen) = c.closed();
    assert!(closed && seen.is_empty());

    let mut a = FixClient::tls(&s.fix, &ca(&s), &keys[0]);
    let logon = a.logon(&[(141, "Y")]);
    assert_eq!(
        (text(&logon, 49), text(&logon, 56), text(&logon, 108)),
        ("ATLAS", keys[0].key.as_str(), "30")
    );
    // A second connection of the same session is refused; the first goes on.
    let mut again = FixClient::plain(&s.fix_plain, &keys[0]);
    let m = again.logon_message(1, &[]);
    again.raw(&m);
    assert!(again.closed().0);

    // A limit order: New, visible over REST.
    let buy = [(11, "a1"), (55, "ACME"), (54, "1"), (38, "10"), (40, "2"), (44, "10.00"), (59, "1")];
    a.send("D", &buy);
    let new = report(&mut a);
    assert_eq!(
        (text(&new, 150), text(&new, 39), text(&new, 11), text(&new, 151), text(&new, 14)),
        ("0", "0", "a1", "10", "0"),
        "{}",
        show(&new)
    );
    let id = text(&new, 37).to_owned();
    let rest = order(&alice, &id);
    assert_eq!(
        (rest["status"].as_str(), rest["clientOrderId"].as_str()),
        (Some("BOOKED"), Some("a1")),
        "{rest}"
    );

    // Bob sells 4 over REST: alice's session reports the fill.
    let (st, b) = bob.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "SELL", "type": "LIMIT", "quantity": 4, "price": "10.00"}),
    );
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let fill = report(&mut a);
    assert_eq!(
        (
            text(&fill, 150),
            text(&fill, 39),
            text(&fill, 32),
            text(&fill, 31),
            text(&fill, 14),
            text(&fill, 151)
        ),
        ("F", "1", "4", "10.00", "4", "6"),
        "{}",
        show(&fill)
    );
    assert_eq!((text(&fill, 1057), text(&fill, 6), text(&fill, 37)), ("N", "10.00", id.as_str()));

    // A replace changes quantity and prices only: a side, type or time in
    // force other than the order's is refused, as is a field Atlas does not do.
    for (tag, value) in [(54, "2"), (40, "1"), (59, "3"), (111, "1")] {
        let mut f =
            vec![(11, "a2x"), (41, "a1"), (55, "ACME"), (54, "1"), (38, "8"), (40, "2"), (44, "9.99")];
        f.retain(|(t, _)| *t != tag);
        f.push((tag, value));
        a.send("G", &f);
        let (r, _) = a.recv_type("9");
        assert_eq!((text(&r, 434), text(&r, 11)), ("2", "a2x"), "{tag}={value}: {}", show(&r));
    }
    // Replace: a2 for a1, 8 at 9.99.
    a.send("G", &[(11, "a2"), (41, "a1"), (55, "ACME"), (54, "1"), (38, "8"), (40, "2"), (44, "9.99")]);
    let rep = report(&mut a);
    assert_eq!(
        (text(&rep, 150), text(&rep, 39), text(&rep, 11), text(&rep, 41), text(&rep, 38), text(&rep, 151)),
        ("5", "1", "a2", "a1", "8", "4"),
        "{}",
        show(&rep)
    );
    let rest = order(&alice, &id);
    assert_eq!(
        (rest["price"].as_str(), rest["originalQuantity"].as_i64()),
        (Some("9.99"), Some(8)),
        "{rest}"
    );

    // Cancelled over REST: the session hears of it, under the current ClOrdID.
    let (st, b) = alice.delete(&format!("/atlas/api/order/{id}"));
    assert_eq!(st, StatusCode::OK, "{b}");
    let cxl = report(&mut a);
    assert_eq!((text(&cxl, 150), text(&cxl, 39), text(&cxl, 11), text(&cxl, 151)), ("4", "4", "a2", "0"));

    // An order placed over REST is cancelled over FIX (by OrderID).
    let (st, b) = alice.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 3, "price": "9.00", "clientOrderId": "rest-1"}),
    );
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let rest_new = report(&mut a);
    assert_eq!((text(&rest_new, 150), text(&rest_new, 11)), ("0", "rest-1"));
    let rest_id = b["id"].as_u64().unwrap().to_string();
    a.send("F", &[(11, "c1"), (37, &rest_id), (55, "ACME"), (54, "1")]);
    let cxl = report(&mut a);
    assert_eq!(
        (text(&cxl, 150), text(&cxl, 11), text(&cxl, 37)),
        ("4", "c1", rest_id.as_str()),
        "{}",
        show(&cxl)
    );
    assert_eq!(order(&alice, &rest_id)["status"], "CANCELLED");

    // Bob cannot see alice's order over REST, nor cancel it over FIX.
    a.send("D", &[(11, "a3"), (55, "ACME"), (54, "2"), (38, "5"), (40, "2"), (44, "12.00")]);
    let a3 = report(&mut a);
    let a3_id = text(&a3, 37).to_owned();
    assert_eq!(bob.get(&format!("/atlas/api/order/{a3_id}")).0, StatusCode::NOT_FOUND);
    let mut b_fix = FixClient::plain(&s.fix_plain, &keys[1]);
    b_fix.logon(&[(141, "Y")]);
    b_fix.send("F", &[(11, "steal"), (37, &a3_id), (55, "ACME"), (54, "2")]);
    let (cr, _) = b_fix.recv_type("9");
    assert_eq!((text(&cr, 434), text(&cr, 102), text(&cr, 11)), ("1", "1", "steal"), "{}", show(&cr));

    // Bob buys 5 over FIX and trades with a3: both sides reported, aggressor flags right.
    b_fix.send("D", &[(11, "b1"), (55, "ACME-USD"), (54, "1"), (38, "5"), (40, "1")]);
    let (b_new, b_fill) = (report(&mut b_fix), report(&mut b_fix));
    assert_eq!(
        (text(&b_new, 150), text(&b_fill, 150), text(&b_fill, 39)),
        ("0", "F", "2"),
        "{}",
        show(&b_fill)
    );
    assert_eq!((text(&b_fill, 1057), text(&b_fill, 31)), ("Y", "12.00"));
    let a_fill = report(&mut a);
    assert_eq!(
        (text(&a_fill, 150), text(&a_fill, 39), text(&a_fill, 11), text(&a_fill, 1057)),
        ("F", "2", "a3", "N")
    );

    // IOC with nothing to meet: New, then Canceled; FOK likewise.
    a.send("D", &[(11, "ioc"), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "1.00"), (59, "3")]);
    let (n, c) = (report(&mut a), report(&mut a));
    assert_eq!((text(&n, 150), text(&c, 150), text(&c, 39), text(&c, 11)), ("0", "4", "4", "ioc"));

    // Refusals: unknown symbol, off-tick price, post-only that would trade (a
    // resting ask first), duplicate ClOrdID.
    a.send("D", &[(11, "x1"), (55, "NOPE"), (54, "1"), (38, "1"), (40, "2"), (44, "1.00")]);
    let r = report(&mut a);
    assert_eq!(
        (text(&r, 150), text(&r, 39), text(&r, 103), text(&r, 11)),
        ("8", "8", "1", "x1"),
        "{}",
        show(&r)
    );
    a.send("D", &[(11, "x2"), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "1.001")]);
    let r = report(&mut a);
    assert_eq!(text(&r, 150), "8");
    assert!(text(&r, 58).contains("tick"), "{}", show(&r));
    b_fix.send("D", &[(11, "b2"), (55, "ACME"), (54, "2"), (38, "1"), (40, "2"), (44, "11.00")]);
    report(&mut b_fix);
    a.send("D", &[(11, "x3"), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "11.00"), (18, "6")]);
    let r = report(&mut a);
    assert_eq!(text(&r, 150), "8", "{}", show(&r));
    a.send("D", &buy);
    let r = report(&mut a);
    assert_eq!((text(&r, 150), text(&r, 103)), ("8", "6"), "{}", show(&r));

    // Session-level rejects: a required tag missing, a bad Side, an empty value,
    // an invalid MsgType; an unsupported application message gets a business reject.
    a.send("D", &[(11, "x4"), (55, "ACME"), (54, "1"), (38, "1"), (44, "1.00")]);
    let (r, _) = a.recv_type("3");
    assert_eq!((text(&r, 373), text(&r, 371), text(&r, 372)), ("1", "40", "D"), "{}", show(&r));
    // OrderQty is only conditionally required (FIX 4.4): its absence, or a
    // fraction of a unit, is the business's refusal.
    for qty in [None, Some("1.5")] {
        let mut f = vec![(11, "x4q"), (55, "ACME"), (54, "1"), (40, "2"), (44, "1.00")];
        f.extend(qty.map(|q| (38, q)));
        a.send("D", &f);
        let r = report(&mut a);
        assert_eq!((text(&r, 150), text(&r, 103)), ("8", "13"), "{qty:?}: {}", show(&r));
    }
    a.send("D", &[(11, "x5"), (55, "ACME"), (54, "X"), (38, "1"), (40, "2"), (44, "1.00")]);
    let (r, _) = a.recv_type("3");
    assert_eq!((text(&r, 373), text(&r, 371)), ("5", "54"));
    a.send("D", &[(11, "x6"), (55, ""), (54, "1"), (38, "1"), (40, "2"), (44, "1.00")]);
    let (r, _) = a.recv_type("3");
    assert_eq!(text(&r, 373), "4");
    a.send("ZZ", &[]);
    let (r, _) = a.recv_type("3");
    assert_eq!(text(&r, 373), "11");
    a.send("R", &[(131, "q1")]);
    let (r, _) = a.recv_type("j");
    assert_eq!((text(&r, 380), text(&r, 372)), ("3", "R"));
    // The data dictionary: a tag FIX does not define, one the message type
    // does not carry, a value outside the enumeration, a bad format, a wrong
    // group count; the Reject names the tag and goes back the way it came.
    let with = |extra: &[(u32, &'static str)]| {
        let mut f = vec![(11, "dd"), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "1.00")];
        f.extend_from_slice(extra);
        f
    };
    for (extra, reason, tag) in [
        (&[(5000, "x")][..], "0", "5000"),
        (&[(112, "x")][..], "2", "112"),
        (&[(21, "4")][..], "5", "21"),
        (&[(60, "yesterday")][..], "6", "60"),
        (&[(386, "2"), (336, "PRE")][..], "16", "386"),
    ] {
        a.send("D", &with(extra));
        let (r, before) = a.recv_type("3");
        assert!(before.iter().all(|m| m.msg_type() != b"8"), "an order was acted on: {extra:?}");
        assert_eq!((text(&r, 373), text(&r, 371)), (reason, tag), "{extra:?}: {}", show(&r));
    }
    a.send("D", &[(115, "DESK7"), (11, "rr"), (55, "ACME"), (54, "1"), (38, "x"), (40, "2")]);
    let (r, _) = a.recv_type("3");
    assert_eq!((text(&r, 373), text(&r, 371), text(&r, 128)), ("6", "38", "DESK7"), "{}", show(&r));
    // FIX 4.4 values and fields Atlas does not do: refused as business, never
    // ignored (a MaxFloor ignored would show the whole order).
    for extra in [&[(111, "1")][..], &[(18, "G")], &[(59, "6")], &[(126, "20261122-16:00:00")]] {
        a.send("D", &with(extra));
        let r = report(&mut a);
        assert_eq!((text(&r, 150), text(&r, 103)), ("8", "11"), "{extra:?}: {}", show(&r));
    }
    for (tag, value) in [(54, "9"), (40, "K")] {
        let mut f = with(&[]);
        f.retain(|(t, _)| *t != tag);
        f.push((tag, value));
        a.send("D", &f);
        let r = report(&mut a);
        assert_eq!((text(&r, 150), text(&r, 103)), ("8", "11"), "{tag}={value}: {}", show(&r));
    }

    // Mass cancel of two resting orders.
    for cl in ["m1", "m2"] {
        a.send("D", &[(11, cl), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "5.00")]);
        report(&mut a);
    }
    a.send("q", &[(11, "mc"), (530, "7")]);
    let (r, before) = a.recv_type("r");
    assert_eq!((text(&r, 531), text(&r, 533)), ("7", "2"), "{}", show(&r));
    let mut cancelled: Vec<String> =
        before.iter().filter(|m| m.msg_type() == b"8").map(|m| text(m, 11).to_owned()).collect();
    while cancelled.len() < 2 {
        cancelled.push(text(&report(&mut a), 11).to_owned());
    }
    cancelled.sort();
    assert_eq!(cancelled, ["m1", "m2"]);

    // TestRequest → Heartbeat with its id; Logout → Logout, closed.
    a.send("1", &[(112, "ping-1")]);
    let (h, _) = a.recv_type("0");
    assert_eq!(text(&h, 112), "ping-1");
    a.send("5", &[]);
    let (l, _) = a.recv_type("5");
    assert_eq!(text(&l, 35), "5");
    assert!(a.closed().0);
    drop(b_fix);
    s.stop();
}

#[test]
fn sequence_numbers_persist_and_gaps_are_filled() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[(141, "Y")]);
    for i in 0..3 {
        let cl = format!("o{i}");
        a.send("D", &[(11, &cl), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "1.00")]);
        report(&mut a);
    }
    a.send("1", &[(112, "t")]);
    a.recv_type("0");
    // A garbled message (wrong checksum) is dropped: the same number is still expected.
    let mut bad = a.message("1", a.next_out, &[(112, "garbled")]);
    let n = bad.len();
    bad[n - 2] = if bad[n - 2] == b'0' { b'1' } else { b'0' };
    a.raw(&bad);
    a.send("1", &[(112, "after")]);
    let (h, _) = a.recv_type("0");
    assert_eq!(text(&h, 112), "after");

    // Ask for everything again: app messages come back as possible duplicates
    // with their original time, admin messages as gap fills; every number once.
    a.send("2", &[(7, "1"), (16, "0")]);
    let mut covered = Vec::new();
    let mut reports = 0;
    while let Some(m) = a.try_recv(Duration::from_secs(2)) {
        let seq: u64 = text(&m, 34).parse().unwrap();
        assert_eq!(text(&m, 43), "Y", "{}", show(&m));
        match m.msg_type() {
            b"4" => {
                assert_eq!(text(&m, 123), "Y");
                let to: u64 = text(&m, 36).parse().unwrap();
                covered.extend(seq..to);
            }
            b"8" => {
                assert!(!text(&m, 122).is_empty());
                reports += 1;
                covered.push(seq);
            }
            other => panic!("unexpected resend {:?}: {}", other, show(&m)),
        }
        if covered.len() >= 6 {
            break;
        }
    }
    // Logon 1, three reports 2..4, heartbeat 5, heartbeat 6 → the last sent was 6,
    // and the gap fill's NewSeqNo is 7.
    assert_eq!(reports, 3);
    assert_eq!(covered, (1..=6).collect::<Vec<u64>>());

    // Log out; the next logon continues the numbers (no reset).
    a.send("5", &[]);
    a.recv_type("5");
    let sent_by_client = a.next_out;
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.next_out = sent_by_client;
    let logon = a.logon(&[]);
    assert_eq!(text(&logon, 34), "8", "{}", show(&logon));

    // ... also across a restart of the exchange.
    a.send("5", &[]);
    a.recv_type("5");
    let sent_by_client = a.next_out;
    let (data, _) = s.stop();
    let s = Server::start(&data, None);
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.next_out = sent_by_client;
    let logon = a.logon(&[]);
    assert_eq!(text(&logon, 34), "10", "{}", show(&logon));

    // A logon with a number too high: Logon, then a ResendRequest for the gap;
    // the client fills it and the session goes on.
    a.send("5", &[]);
    a.recv_type("5");
    let expected = a.next_out;
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.next_out = expected + 5;
    a.logon(&[]);
    let (rr, _) = a.recv_type("2");
    assert_eq!((text(&rr, 7), text(&rr, 16)), (expected.to_string().as_str(), "0"));
    let fill = a.message(
        "4",
        expected,
        &[(43, "Y"), (122, &server::fix::now()), (123, "Y"), (36, &(expected + 6).to_string())],
    );
    a.raw(&fill);
    a.send("1", &[(112, "filled")]);
    let (h, _) = a.recv_type("0");
    assert_eq!(text(&h, 112), "filled");

    // Too low without PossDupFlag: Logout naming the numbers, closed.
    let low = a.message("1", 2, &[(112, "low")]);
    a.raw(&low);
    let (l, _) = a.recv_type("5");
    assert!(text(&l, 58).contains("MsgSeqNum too low"), "{}", show(&l));
    assert!(a.closed().0);
    s.stop();
}

/// The next expected number is written with what the session sends (and when
/// it ends), not after every message read: after a crash, what was read and not
/// answered is asked for again, like any gap, and the session goes on.
#[test]
fn after_a_crash_messages_read_and_not_answered_are_asked_for_again() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[(141, "Y")]);
    a.send("D", &[(11, "before-crash"), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "1.00")]);
    report(&mut a);
    // A connection that drops: the session's end writes what it read (here a
    // heartbeat, which gets no answer), so nothing is asked for again.
    a.send("0", &[]);
    let next = a.next_out;
    drop(a);
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.next_out = next;
    a.logon(&[]);
    a.send("1", &[(112, "reconnected")]);
    let (h, before) = a.recv_type("0");
    assert_eq!(text(&h, 112), "reconnected");
    assert!(before.iter().all(|m| m.msg_type() != b"2"), "{:?}", before.iter().map(show).collect::<Vec<_>>());
    // Another heartbeat; the exchange reads it and dies.
    let heartbeat = a.next_out;
    a.send("0", &[]);
    std::thread::sleep(Duration::from_millis(500));
    let (data, _) = s.crash();
    let s = Server::start(&data, None);
    let mut a2 = FixClient::plain(&s.fix_plain, &keys[0]);
    a2.next_out = a.next_out;
    let logon = a2.logon(&[]);
    // Logon, report, Logon and heartbeat were sent before the crash.
    assert_eq!(text(&logon, 34), "5", "{}", show(&logon));
    let (rr, _) = a2.recv_type("2");
    assert_eq!((text(&rr, 7), text(&rr, 16)), (heartbeat.to_string().as_str(), "0"), "{}", show(&rr));
    // The client fills the gap (a heartbeat is not resent; the Logon was
    // taken) and goes on.
    let fill = a2.message(
        "4",
        heartbeat,
        &[(43, "Y"), (122, &server::fix::now()), (123, "Y"), (36, &a2.next_out.to_string())],
    );
    a2.raw(&fill);
    a2.send("1", &[(112, "after-crash")]);
    let (h, _) = a2.recv_type("0");
    assert_eq!(text(&h, 112), "after-crash");
    s.stop();
}

/// A client may cancel an order before its acknowledgement: the exchange has
/// the New ahead of the Cancel on the same session, so the cancel applies.
#[test]
fn a_cancel_right_behind_its_order_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[(141, "Y")]);
    for i in 0..10 {
        let (cl, cancel_cl) = (format!("quick{i}"), format!("quick{i}-cancel"));
        let mut both = a.message(
            "D",
            a.next_out,
            &[(11, &cl), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "3.00"), (59, "1")],
        );
        both.extend(a.message("F", a.next_out + 1, &[(11, &cancel_cl), (41, &cl), (55, "ACME"), (54, "1")]));
        a.next_out += 2;
        // One write: the Cancel is read before the New is committed.
        a.raw(&both);
        let new = report(&mut a);
        assert_eq!((text(&new, 150), text(&new, 11)), ("0", cl.as_str()), "{}", show(&new));
        let (m, before) = a.recv_type("8");
        let all: Vec<String> = before.iter().chain([&m]).map(show).collect();
        assert!(before.iter().all(|b| b.msg_type() == b"0"), "a reject among {all:?}");
        assert_eq!(
            (text(&m, 150), text(&m, 39), text(&m, 11), text(&m, 41)),
            ("4", "4", cancel_cl.as_str(), cl.as_str()),
            "{all:?}"
        );
    }
    // An order refused by the engine (post-only that would trade) with a
    // cancel right behind it: the refusal is reported first, then the cancel
    // is rejected (there is no order), without waiting out the commit wait.
    let bob = broker(&s, "bob");
    let (st, b) = bob.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "SELL", "type": "LIMIT", "quantity": 1, "price": "3.00"}),
    );
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let mut both = a.message(
        "D",
        a.next_out,
        &[(11, "po"), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "3.00"), (59, "1"), (18, "6")],
    );
    both.extend(a.message("F", a.next_out + 1, &[(11, "po-cancel"), (41, "po"), (55, "ACME"), (54, "1")]));
    a.next_out += 2;
    a.raw(&both);
    let refused = report(&mut a);
    assert_eq!((text(&refused, 150), text(&refused, 11)), ("8", "po"), "{}", show(&refused));
    let (m, before) = a.recv_type("9");
    assert!(before.iter().all(|b| b.msg_type() == b"0"), "{:?}", before.iter().map(show).collect::<Vec<_>>());
    assert_eq!((text(&m, 11), text(&m, 41)), ("po-cancel", "po"), "{}", show(&m));
    // An order that trades in full as it enters, with a cancel right behind
    // it: New, the fill, then the cancel is rejected as too late (102=0).
    let mut both = a.message(
        "D",
        a.next_out,
        &[(11, "gone"), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "3.00"), (59, "1")],
    );
    both.extend(a.message(
        "F",
        a.next_out + 1,
        &[(11, "gone-cancel"), (41, "gone"), (55, "ACME"), (54, "1")],
    ));
    a.next_out += 2;
    a.raw(&both);
    let new = report(&mut a);
    assert_eq!((text(&new, 150), text(&new, 11)), ("0", "gone"), "{}", show(&new));
    let fill = report(&mut a);
    assert_eq!((text(&fill, 150), text(&fill, 39), text(&fill, 11)), ("F", "2", "gone"), "{}", show(&fill));
    let (m, before) = a.recv_type("9");
    assert!(before.iter().all(|b| b.msg_type() == b"0"), "{:?}", before.iter().map(show).collect::<Vec<_>>());
    assert_eq!(
        (text(&m, 11), text(&m, 41), text(&m, 37), text(&m, 102)),
        ("gone-cancel", "gone", text(&new, 37), "0"),
        "{}",
        show(&m)
    );
    s.stop();
}

#[test]
fn cancel_on_disconnect_cancels_the_sessions_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let alice = broker(&s, "alice");
    let (st, b) = alice.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "2.00"}),
    );
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let rest_id = b["id"].as_u64().unwrap().to_string();
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[(141, "Y"), (8013, "S")]);
    a.send("D", &[(11, "cod"), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "1.00")]);
    let id = text(&report(&mut a), 37).to_owned();
    drop(a);
    // The session's order is cancelled; the one entered over REST is not.
    let deadline = Instant::now() + Duration::from_secs(10);
    while order(&alice, &id)["status"] != "CANCELLED" {
        assert!(Instant::now() < deadline, "not cancelled: {}", order(&alice, &id));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(order(&alice, &rest_id)["status"], "BOOKED");
    // With Y, every order of the participant goes.
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[(141, "Y"), (8013, "Y")]);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    while order(&alice, &rest_id)["status"] != "CANCELLED" {
        assert!(Instant::now() < deadline, "not cancelled: {}", order(&alice, &rest_id));
        std::thread::sleep(Duration::from_millis(50));
    }
    s.stop();
}

/// Orders still in flight when the connection drops are the session's too:
/// cancel-on-disconnect cancels them once they are committed. The client
/// writes its orders and hangs up without reading an answer, so the session
/// sees the end of the stream before the orders' commits. (Only the orders
/// already reported to the session were cancelled, so these stayed booked.)
#[test]
fn cancel_on_disconnect_cancels_orders_still_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let alice = broker(&s, "alice");
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[(141, "Y"), (8013, "S")]);
    let mut burst = Vec::new();
    for i in 0..200 {
        let cl = format!("cod-{i}");
        let body = [(11, cl.as_str()), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "1.00")];
        burst.extend(a.message("D", a.next_out, &body));
        a.next_out += 1;
    }
    a.raw(&burst);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (st, b) = alice.get("/atlas/api/order?status=ALL&limit=500");
        assert_eq!(st, StatusCode::OK, "{b}");
        let orders = b["orders"].as_array().unwrap();
        let open: Vec<&Value> = orders.iter().filter(|o| o["status"] != "CANCELLED").collect();
        if orders.len() == 200 && open.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} orders not cancelled on disconnect, e.g. {:?}",
            open.len(),
            orders.len(),
            open.first()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.stop();
}

/// A client that logs out right behind its orders hears of each of them
/// before the Logout answering its own: the acknowledgements, the fills and
/// the cancels it asked for, a mass cancel's included. (The Logout was answered at once and the session
/// ended, so the reports of the orders still in flight were never sent.)
#[test]
fn a_logout_is_answered_after_the_reports_of_what_came_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[(141, "Y")]);
    // An order already acknowledged, below the others' price: the cancel
    // below names it, so the session does not wait for anything to resolve it.
    a.send("D", &[(11, "early"), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "0.50")]);
    assert_eq!(text(&report(&mut a), 150), "0");
    let mut burst = Vec::new();
    let mut add = |a: &mut FixClient, msg_type: &str, body: &[(u32, &str)]| {
        burst.extend(a.message(msg_type, a.next_out, body));
        a.next_out += 1;
    };
    for i in 0..100 {
        let cl = format!("lo-{i}");
        add(&mut a, "D", &[(11, &cl), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "1.00")]);
    }
    add(&mut a, "D", &[(11, "hit"), (55, "ACME"), (54, "2"), (38, "5"), (40, "2"), (44, "1.00")]);
    add(&mut a, "F", &[(11, "early-cancel"), (41, "early"), (55, "ACME"), (54, "1"), (38, "1")]);
    add(&mut a, "5", &[]);
    a.raw(&burst);
    let (_, before) = a.recv_type("5");
    let shown = || before.iter().map(show).collect::<Vec<_>>();
    let of =
        |exec_type: &str| before.iter().filter(|m| m.msg_type() == b"8" && text(m, 150) == exec_type).count();
    assert_eq!(of("0"), 101, "{:?}", shown());
    // The sell filled five buys, each trade reported to both sides (the
    // session's own orders).
    assert_eq!(of("F"), 10, "{:?}", shown());
    let cancelled: Vec<_> = before.iter().filter(|m| m.msg_type() == b"8" && text(m, 150) == "4").collect();
    assert_eq!(cancelled.len(), 1, "{:?}", shown());
    assert_eq!((text(cancelled[0], 11), text(cancelled[0], 41)), ("early-cancel", "early"));
    drop(a);

    // A mass cancel right before the Logout: its report comes from its
    // answer, the orders it cancelled from the feed's next batch.
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[(141, "Y")]);
    let mut burst = a.message("q", a.next_out, &[(11, "mass"), (530, "7")]);
    burst.extend(a.message("5", a.next_out + 1, &[]));
    a.next_out += 2;
    a.raw(&burst);
    let (_, before) = a.recv_type("5");
    let shown = || before.iter().map(show).collect::<Vec<_>>();
    let cancelled = before.iter().filter(|m| m.msg_type() == b"8" && text(m, 150) == "4").count();
    assert_eq!(cancelled, 95, "{:?}", shown());
    assert_eq!(before.iter().filter(|m| m.msg_type() == b"r").count(), 1, "{:?}", shown());
    s.stop();
}

/// OrderStatusRequest (H) and OrderMassStatusRequest (AF) report orders as
/// committed, whoever entered them, in ExecutionReports 150=I: by ClOrdID or
/// OrderID, one product's or all open orders, one side's; another
/// participant's order is as unknown as a made-up one.
#[test]
fn status_requests_report_the_participants_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let (alice, bob) = (broker(&s, "alice"), broker(&s, "bob"));
    let (st, b) = bob.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": "0.50"}),
    );
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let bobs = b["id"].as_u64().unwrap().to_string();
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[]);
    a.send("D", &[(11, "st-1"), (55, "ACME"), (54, "1"), (38, "3"), (40, "2"), (44, "1.00")]);
    let first = text(&report(&mut a), 37).to_owned();
    // Alice's sell fills one of her buy's three: its New and both fills.
    a.send("D", &[(11, "st-2"), (55, "ACME"), (54, "2"), (38, "1"), (40, "2"), (44, "1.00")]);
    let reports: Vec<_> = (0..3).map(|_| report(&mut a)).collect();
    let second = text(&reports[0], 37).to_owned();
    // An order entered over REST is the participant's too.
    let (st, b) = alice.post(
        "/atlas/api/order",
        json!({"productId": 1, "side": "SELL", "type": "LIMIT", "quantity": 4, "price": "5.00"}),
    );
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let third = b["id"].as_u64().unwrap().to_string();
    let m = report(&mut a);
    assert_eq!((text(&m, 37), text(&m, 150)), (third.as_str(), "0"), "{}", show(&m));
    let status = |a: &mut FixClient| {
        let m = report(a);
        assert_eq!((text(&m, 150), text(&m, 17)), ("I", "0"), "{}", show(&m));
        m
    };

    a.send("H", &[(11, "st-1"), (55, "ACME"), (54, "1"), (790, "q1")]);
    let m = status(&mut a);
    assert_eq!(
        (text(&m, 37), text(&m, 11), text(&m, 39), text(&m, 14), text(&m, 151), text(&m, 6), text(&m, 790)),
        (first.as_str(), "st-1", "1", "1", "2", "1.00", "q1"),
        "{}",
        show(&m)
    );
    a.send("H", &[(37, &second), (11, "st-2"), (55, "ACME"), (54, "2")]);
    let m = status(&mut a);
    assert_eq!((text(&m, 37), text(&m, 39), text(&m, 151)), (second.as_str(), "2", "0"), "{}", show(&m));
    a.send("H", &[(37, &third), (11, "whatever"), (55, "ACME"), (54, "2")]);
    let m = status(&mut a);
    assert_eq!((text(&m, 37), text(&m, 39), text(&m, 38)), (third.as_str(), "0", "4"), "{}", show(&m));
    for unknown in [
        vec![(11, "nope"), (55, "ACME"), (54, "1")],
        vec![(37, bobs.as_str()), (11, "x"), (55, "ACME"), (54, "1")],
    ] {
        a.send("H", &unknown);
        let m = status(&mut a);
        assert_eq!((text(&m, 39), text(&m, 103)), ("8", "5"), "{}", show(&m));
    }

    let mass = |a: &mut FixClient, body: &[(u32, &str)]| -> Vec<atlas_wire::fix::Message> {
        a.send("AF", body);
        let mut got = Vec::new();
        loop {
            let m = status(a);
            let last = text(&m, 912) == "Y";
            got.push(m);
            if last {
                return got;
            }
        }
    };
    let open = |ms: &[atlas_wire::fix::Message]| {
        let mut ids: Vec<String> = ms.iter().map(|m| text(m, 37).to_owned()).collect();
        ids.sort();
        ids
    };
    let all = mass(&mut a, &[(584, "m1"), (585, "7")]);
    let mut both = vec![first.clone(), third.clone()];
    both.sort();
    assert_eq!(open(&all), both);
    assert!(
        all.iter().all(|m| text(m, 584) == "m1" && text(m, 911) == "2"),
        "{:?}",
        all.iter().map(show).collect::<Vec<_>>()
    );
    let sells = mass(&mut a, &[(584, "m2"), (585, "7"), (54, "2")]);
    assert_eq!(open(&sells), vec![third.clone()]);
    let acme = mass(&mut a, &[(584, "m3"), (585, "1"), (55, "ACME")]);
    assert_eq!(open(&acme), both);

    // Refused: a product request without its symbol, a kind Atlas does not do.
    a.send("AF", &[(584, "m4"), (585, "1")]);
    let (j, _) = a.recv_type("j");
    assert_eq!(text(&j, 380), "5", "{}", show(&j));
    a.send("AF", &[(584, "m5"), (585, "3")]);
    let (j, _) = a.recv_type("j");
    assert_eq!(text(&j, 380), "0", "{}", show(&j));

    // None open: one report says so.
    let (st, b) = alice.delete("/atlas/api/order?productId=1");
    assert_eq!(st, StatusCode::OK, "{b}");
    for _ in 0..2 {
        let m = report(&mut a);
        assert_eq!(text(&m, 150), "4", "{}", show(&m));
    }
    let none = mass(&mut a, &[(584, "m6"), (585, "7")]);
    assert_eq!(
        (none.len(), text(&none[0], 37), text(&none[0], 911), text(&none[0], 39)),
        (1, "NONE", "0", "8")
    );

    s.stop();
}

/// Status requests are queries, under the query rate limit like REST reads
/// (the default here: 50/s with a burst of 100): of 300 in one write, the
/// excess gets BusinessMessageRejects (at least 100 of them unless answering
/// took 2 s), and a later one is answered again.
#[test]
fn status_requests_are_rate_limited_as_queries() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        None,
        &[("ATLAS_RATE_LIMIT_ORDERS", "0"), ("ATLAS_LOGIN_FAILURES_PER_IP", "0")],
    );
    let keys = seed(&s);
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[]);
    let mut burst = Vec::new();
    for _ in 0..300 {
        burst.extend(a.message("AF", a.next_out, &[(584, "flood"), (585, "7")]));
        a.next_out += 1;
    }
    a.raw(&burst);
    let (mut answered, mut refused) = (0, 0);
    while answered + refused < 300 {
        let m = a.recv();
        match m.msg_type() {
            b"8" => answered += 1,
            b"j" => {
                assert!(text(&m, 58).starts_with("rate limit"), "{}", show(&m));
                refused += 1;
            }
            _ => {}
        }
    }
    assert!(answered >= 1 && refused >= 100, "{answered} answered, {refused} refused");
    std::thread::sleep(Duration::from_millis(1_100));
    a.send("AF", &[(584, "later"), (585, "7")]);
    let m = report(&mut a);
    assert_eq!(text(&m, 584), "later", "{}", show(&m));
    s.stop();
}

/// A ClOrdID repeated while its first order is still in flight (both in one
/// write, so the repeat is refused before the first is committed) leaves the
/// first order the session's own: it is acknowledged, cancelled when the
/// session ends, and each NewOrderSingle's first report is counted once in
/// `atlas_fix_order_ack_seconds`. (The repeat's refusal used to take the
/// first's place among the orders in flight, so the first was no longer
/// counted as entered here and cancel-on-disconnect left it on the book.)
#[test]
fn a_clordid_repeated_in_flight_leaves_the_first_order_the_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let alice = broker(&s, "alice");
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[(141, "Y"), (8013, "S")]);
    let body = [(11, "twice"), (55, "ACME"), (54, "1"), (38, "1"), (40, "2"), (44, "1.00")];
    let mut both = a.message("D", a.next_out, &body);
    both.extend(a.message("D", a.next_out + 1, &body));
    a.next_out += 2;
    a.raw(&both);
    let (first, second) = (report(&mut a), report(&mut a));
    let (new, refused) = if text(&first, 150) == "0" { (first, second) } else { (second, first) };
    assert_eq!((text(&new, 150), text(&new, 11)), ("0", "twice"), "{}", show(&new));
    assert_eq!((text(&refused, 150), text(&refused, 103)), ("8", "6"), "{}", show(&refused));
    let id = text(&new, 37).to_owned();
    assert_eq!(text(&refused, 37), id, "the refusal names the order that holds the ClOrdID");

    let metrics = s.admin_client().get(format!("{}/metrics", s.internal)).send().unwrap();
    let metrics = metrics.text().unwrap();
    let count = metrics.lines().find_map(|l| l.strip_prefix("atlas_fix_order_ack_seconds_count "));
    assert_eq!(count, Some("2"), "{metrics}");

    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    while order(&alice, &id)["status"] != "CANCELLED" {
        assert!(Instant::now() < deadline, "not cancelled on disconnect: {}", order(&alice, &id));
        std::thread::sleep(Duration::from_millis(50));
    }
    s.stop();
}

/// A ClOrdID is used once a day, by a new order or by a replace: a
/// NewOrderSingle repeating a replace's ClOrdID is refused (103=6, naming the
/// order), and so is a replace repeating any used ClOrdID (OrderCancelReject
/// 102=6), leaving the order as it was. A replace's ClOrdID names the order
/// for a cancel right behind the replace and in a later session. (A replace's
/// ClOrdID was not kept as used, so a new order could take it and the
/// session's ClOrdID map then named the wrong order for later cancels; and
/// only the session that made a replace could use its ClOrdID, once the
/// replace was reported.)
#[test]
fn a_replaces_clordid_is_in_use_like_a_new_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let alice = broker(&s, "alice");
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[]);
    let new = |cl: &'static str| vec![(11, cl), (55, "ACME"), (54, "1"), (38, "5"), (40, "2"), (44, "1.00")];
    let replace = |cl: &'static str, orig: &'static str, qty: &'static str| {
        vec![(11, cl), (41, orig), (55, "ACME"), (54, "1"), (38, qty), (40, "2"), (44, "1.00")]
    };
    a.send("D", &new("first"));
    let id = text(&report(&mut a), 37).to_owned();
    a.send("G", &replace("second", "first", "4"));
    let rep = report(&mut a);
    assert_eq!((text(&rep, 150), text(&rep, 11), text(&rep, 38)), ("5", "second", "4"), "{}", show(&rep));

    a.send("D", &new("second"));
    let refused = report(&mut a);
    assert_eq!(
        (text(&refused, 150), text(&refused, 103), text(&refused, 37)),
        ("8", "6", id.as_str()),
        "{}",
        show(&refused)
    );
    for (cl, orig) in [("first", "second"), ("second", "second")] {
        a.send("G", &replace(cl, orig, "3"));
        let (r, _) = a.recv_type("9");
        assert_eq!(
            (text(&r, 434), text(&r, 102), text(&r, 11), text(&r, 37)),
            ("2", "6", cl, id.as_str()),
            "{cl}: {}",
            show(&r)
        );
    }
    assert_eq!(
        order(&alice, &id)["originalQuantity"].as_i64(),
        Some(4),
        "the refused replaces changed nothing"
    );
    // The order still answers to its replace's ClOrdID, and a new one works.
    a.send("G", &replace("third", "second", "3"));
    let rep = report(&mut a);
    assert_eq!((text(&rep, 150), text(&rep, 11), text(&rep, 41)), ("5", "third", "second"), "{}", show(&rep));
    // A ClOrdID the journal would not keep (over 64 characters) is refused
    // like a new order's, and the order stays as it was.
    let long: &'static str = Box::leak("x".repeat(65).into_boxed_str());
    a.send("G", &replace(long, "third", "2"));
    let (r, _) = a.recv_type("9");
    assert_eq!((text(&r, 434), text(&r, 102), text(&r, 37)), ("2", "99", id.as_str()), "{}", show(&r));
    assert!(text(&r, 58).contains("1 to 64 printable ASCII"), "{}", show(&r));
    assert_eq!(order(&alice, &id)["originalQuantity"].as_i64(), Some(3));
    // REST finds it by its replace's ClOrdID as well (Coinbase's client:
    // lookup), and cancels by one.
    let (st, got) = alice.get("/coinbase/orders/client:third");
    assert_eq!((st, got["id"].as_str()), (StatusCode::OK, Some(id.as_str())), "{got}");
    a.send("D", &new("rest"));
    let rest_id = text(&report(&mut a), 37).to_owned();
    a.send("G", &replace("rest-2", "rest", "4"));
    assert_eq!(text(&report(&mut a), 150), "5");
    let (st, cancelled) = alice.delete("/coinbase/orders/client:rest-2");
    assert_eq!((st, cancelled.as_str()), (StatusCode::OK, Some(rest_id.as_str())), "{cancelled}");
    let cxl = report(&mut a);
    assert_eq!((text(&cxl, 150), text(&cxl, 37)), ("4", rest_id.as_str()), "{}", show(&cxl));

    // A cancel right behind a replace (one write) names the replace's
    // ClOrdID while the replace is in flight.
    a.send("D", &new("other"));
    let other = text(&report(&mut a), 37).to_owned();
    let mut both = a.message("G", a.next_out, &replace("other-2", "other", "2"));
    both.extend(a.message("F", a.next_out + 1, &[(11, "other-3"), (41, "other-2"), (55, "ACME"), (54, "1")]));
    a.next_out += 2;
    a.raw(&both);
    let (rep, cxl) = (report(&mut a), report(&mut a));
    assert_eq!((text(&rep, 150), text(&rep, 11)), ("5", "other-2"), "{}", show(&rep));
    assert_eq!(
        (text(&cxl, 150), text(&cxl, 11), text(&cxl, 37)),
        ("4", "other-3", other.as_str()),
        "{}",
        show(&cxl)
    );
    drop(a);

    // A later session finds the order by its replace's ClOrdID too.
    let mut b = FixClient::plain(&s.fix_plain, &keys[0]);
    b.logon(&[(141, "Y")]);
    b.send("F", &[(11, "fourth"), (41, "third"), (55, "ACME"), (54, "1")]);
    let cxl = report(&mut b);
    assert_eq!((text(&cxl, 150), text(&cxl, 37)), ("4", id.as_str()), "{}", show(&cxl));
    s.stop();
}

/// A cancel's ClOrdID is used up like an order's: a cancel that reuses one
/// gets OrderCancelReject 102=6 and cancels nothing; an accepted cancel's
/// ClOrdID refuses a later order or cancel, names the order it cancelled (a
/// status request finds it), and stays used after a restart.
#[test]
fn a_cancels_clordid_is_in_use_like_a_new_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let alice = broker(&s, "alice");
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[]);
    let new = |cl: &'static str| vec![(11, cl), (55, "ACME"), (54, "1"), (38, "5"), (40, "2"), (44, "1.00")];
    let cancel = |cl: &'static str, orig: &'static str| vec![(11, cl), (41, orig), (55, "ACME"), (54, "1")];
    a.send("D", &new("a"));
    let first = text(&report(&mut a), 37).to_owned();
    a.send("D", &new("b"));
    let second = text(&report(&mut a), 37).to_owned();

    // Reusing an order's ClOrdID: refused, nothing cancelled.
    a.send("F", &cancel("b", "a"));
    let (r, _) = a.recv_type("9");
    assert_eq!(
        (text(&r, 434), text(&r, 102), text(&r, 11), text(&r, 37)),
        ("1", "6", "b", first.as_str()),
        "{}",
        show(&r)
    );
    assert!(text(&r, 58).contains(&format!("in use by order {second}")), "{}", show(&r));
    assert_eq!(
        order(&alice, &first)["status"].as_str(),
        Some("BOOKED"),
        "the refused cancel changed nothing"
    );

    // An accepted cancel uses its ClOrdID up.
    a.send("F", &cancel("x", "a"));
    let cxl = report(&mut a);
    assert_eq!((text(&cxl, 150), text(&cxl, 11), text(&cxl, 41)), ("4", "x", "a"), "{}", show(&cxl));
    a.send("D", &new("x"));
    let refused = report(&mut a);
    assert_eq!(
        (text(&refused, 150), text(&refused, 103), text(&refused, 37)),
        ("8", "6", first.as_str()),
        "{}",
        show(&refused)
    );
    a.send("F", &cancel("x", "b"));
    let (r, _) = a.recv_type("9");
    assert_eq!((text(&r, 102), text(&r, 37)), ("6", second.as_str()), "{}", show(&r));
    assert_eq!(order(&alice, &second)["status"].as_str(), Some("BOOKED"));
    // It names the order it cancelled.
    a.send("H", &[(11, "x"), (55, "ACME"), (54, "1")]);
    let st = report(&mut a);
    assert_eq!((text(&st, 150), text(&st, 39), text(&st, 37)), ("I", "4", first.as_str()), "{}", show(&st));
    // So do REST's client: lookup and a replace that names it (too late).
    let (code, got) = alice.get("/coinbase/orders/client:x");
    assert_eq!((code, got["id"].as_str()), (StatusCode::OK, Some(first.as_str())), "{got}");
    a.send("G", &[(11, "y2"), (41, "x"), (55, "ACME"), (54, "1"), (38, "4"), (40, "2"), (44, "1.00")]);
    let (r, _) = a.recv_type("9");
    assert_eq!((text(&r, 434), text(&r, 102), text(&r, 37)), ("2", "0", first.as_str()), "{}", show(&r));
    drop(a);

    // Rebuilt from the journal, the ClOrdID is still used; another works.
    let (data, _) = s.stop();
    let s = Server::start(&data, None);
    let mut b = FixClient::plain(&s.fix_plain, &keys[0]);
    b.logon(&[(141, "Y")]);
    b.send("F", &cancel("x", "b"));
    let (r, _) = b.recv_type("9");
    assert_eq!((text(&r, 102), text(&r, 37)), ("6", second.as_str()), "{}", show(&r));
    b.send("F", &cancel("y", "b"));
    let cxl = report(&mut b);
    assert_eq!(
        (text(&cxl, 150), text(&cxl, 11), text(&cxl, 37)),
        ("4", "y", second.as_str()),
        "{}",
        show(&cxl)
    );
    s.stop();
}

/// Sends `messages` in one write, so the session reads them all before any
/// is committed.
fn send_together(c: &mut FixClient, messages: &[(&str, Vec<(u32, &str)>)]) {
    let mut bytes = Vec::new();
    for (msg_type, body) in messages {
        bytes.extend(c.message(msg_type, c.next_out, body));
        c.next_out += 1;
    }
    c.raw(&bytes);
}

/// The answers (ExecutionReports and OrderCancelRejects) to the requests
/// `ids` name, by ClOrdID, once each has one; then anything else that comes
/// within half a second, which must not answer any of them again.
fn answers(c: &mut FixClient, ids: &[&str]) -> HashMap<String, atlas_wire::fix::Message> {
    let mut got: HashMap<String, atlas_wire::fix::Message> = HashMap::new();
    while got.len() < ids.len() {
        let m = c.recv();
        let cl = text(&m, 11).to_owned();
        if matches!(m.msg_type(), b"8" | b"9") && ids.contains(&cl.as_str()) {
            assert!(got.insert(cl, m.clone()).is_none(), "answered twice: {}", show(&m));
        }
    }
    while let Some(m) = c.try_recv(Duration::from_millis(500)) {
        assert!(!ids.contains(&text(&m, 11)), "answered twice: {}", show(&m));
    }
    got
}

/// Cancels and replaces a client sends for one order without waiting for the
/// answers (pipelined, as a market maker does) are each answered once, under
/// their own ClOrdID and, for a replace, with its own terms; and a replace
/// sets the terms it carries, whatever the one ahead of it changed.
#[test]
fn requests_in_flight_for_one_order_are_each_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let alice = broker(&s, "alice");
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[]);
    let new = |cl: &'static str| vec![(11, cl), (55, "ACME"), (54, "1"), (38, "5"), (40, "2"), (44, "1.00")];
    let cancel = |cl: &'static str| vec![(11, cl), (41, "a"), (55, "ACME"), (54, "1")];
    let replace = |cl: &'static str, orig: &'static str, qty: &'static str, px: &'static str| {
        vec![(11, cl), (41, orig), (55, "ACME"), (54, "1"), (38, qty), (40, "2"), (44, px)]
    };

    // Two cancels: the first cancels, the second is too late.
    a.send("D", &new("a"));
    let first = text(&report(&mut a), 37).to_owned();
    send_together(&mut a, &[("F", cancel("c1")), ("F", cancel("c2"))]);
    let got = answers(&mut a, &["c1", "c2"]);
    let (c1, c2) = (&got["c1"], &got["c2"]);
    assert_eq!(
        (c1.msg_type(), text(c1, 150), text(c1, 41), text(c1, 37)),
        (&b"8"[..], "4", "a", first.as_str()),
        "{}",
        show(c1)
    );
    assert_eq!(
        (c2.msg_type(), text(c2, 434), text(c2, 102), text(c2, 37)),
        (&b"9"[..], "1", "0", first.as_str()),
        "too late: {}",
        show(c2)
    );
    assert_eq!(order(&alice, &first)["status"], "CANCELLED");

    // Three replaces naming the order by its first ClOrdID: each is answered
    // with its own terms, and the last one's stand (its price back where the
    // first took it from, which the committed order still had when the
    // session read it).
    a.send("D", &new("b"));
    let second = text(&report(&mut a), 37).to_owned();
    send_together(
        &mut a,
        &[
            ("G", replace("r1", "b", "4", "0.99")),
            ("G", replace("r2", "b", "3", "0.99")),
            ("G", replace("r3", "b", "3", "1.00")),
        ],
    );
    let got = answers(&mut a, &["r1", "r2", "r3"]);
    for (cl, orig, qty, px) in [("r1", "b", "4", "0.99"), ("r2", "b", "3", "0.99"), ("r3", "b", "3", "1.00")]
    {
        let r = &got[cl];
        assert_eq!(
            (r.msg_type(), text(r, 150), text(r, 41), text(r, 38), text(r, 44), text(r, 151)),
            (&b"8"[..], "5", orig, qty, px, qty),
            "{cl}: {}",
            show(r)
        );
    }
    let row = order(&alice, &second);
    assert_eq!((row["originalQuantity"].as_i64(), row["price"].as_str()), (Some(3), Some("1.00")), "{row}");

    // A replace back to terms the committed order still has (the one ahead
    // of it in flight changed them) is not "nothing to change".
    send_together(
        &mut a,
        &[("G", replace("r4", "r3", "2", "1.00")), ("G", replace("r5", "r3", "3", "1.00"))],
    );
    let got = answers(&mut a, &["r4", "r5"]);
    assert_eq!((text(&got["r4"], 150), text(&got["r4"], 38)), ("5", "2"), "{}", show(&got["r4"]));
    assert_eq!((text(&got["r5"], 150), text(&got["r5"], 38)), ("5", "3"), "{}", show(&got["r5"]));
    assert_eq!(order(&alice, &second)["originalQuantity"].as_i64(), Some(3));
    s.stop();
}

/// A replace of a stop-limit order that has triggered may repeat its StopPx
/// (clients send the order's fields whole); a different one is refused.
#[test]
fn a_triggered_stop_limit_is_replaced_with_its_stop_price_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let (alice, bob) = (broker(&s, "alice"), broker(&s, "bob"));
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[]);
    let stop_limit = |cl: &'static str, orig: Option<&'static str>, qty: &'static str, stop: &'static str| {
        let mut m = vec![(11, cl), (55, "ACME"), (54, "1"), (38, qty), (40, "4"), (99, stop), (44, "1.20")];
        m.extend(orig.map(|o| (41, o)));
        m
    };
    a.send("D", &stop_limit("s1", None, "5", "1.10"));
    let id = text(&report(&mut a), 37).to_owned();
    // A trade at 1.10 (bob sells, alice buys over REST) triggers it.
    for (api, side) in [(&bob, "SELL"), (&alice, "BUY")] {
        let (st, b) = api.post(
            "/atlas/api/order",
            json!({"productId": 1, "side": side, "type": "LIMIT", "quantity": 1, "price": "1.10"}),
        );
        assert_eq!(st, StatusCode::CREATED, "{b}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while order(&alice, &id)["bookedQuantity"] != 5 {
        assert!(Instant::now() < deadline, "not triggered: {}", order(&alice, &id));
        std::thread::sleep(Duration::from_millis(20));
    }
    // The answer to `cl` (the trade's reports come first).
    let answer = |c: &mut FixClient, cl: &str| loop {
        let m = c.recv();
        if matches!(m.msg_type(), b"8" | b"9") && text(&m, 11) == cl {
            break m;
        }
    };
    a.send("G", &stop_limit("s2", Some("s1"), "4", "1.10"));
    let r = answer(&mut a, "s2");
    assert_eq!((r.msg_type(), text(&r, 150), text(&r, 38)), (&b"8"[..], "5", "4"), "{}", show(&r));
    a.send("G", &stop_limit("s3", Some("s2"), "3", "1.05"));
    let r = answer(&mut a, "s3");
    assert_eq!(
        (r.msg_type(), text(&r, 434), text(&r, 58)),
        (&b"9"[..], "2", "a stop price is not allowed for this order type, or once it has triggered"),
        "{}",
        show(&r)
    );
    assert_eq!(order(&alice, &id)["originalQuantity"].as_i64(), Some(4));
    s.stop();
}

/// A garbled Logon (a wrong CheckSum, a wrong BeginString) ends the
/// connection at once and without an answer, as the specification says: a
/// valid Logon right behind it in the same write is never read. (Dropped
/// like a garbled message of a session, it left the connection waiting for
/// the logon timeout, or logged on with the valid one.)
#[test]
fn a_garbled_logon_ends_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let wrong_checksum = |m: &[u8]| {
        let mut m = m.to_vec();
        let at = m.len() - 4;
        let sum: u32 = std::str::from_utf8(&m[at..at + 3]).unwrap().parse().unwrap();
        m[at..at + 3].copy_from_slice(format!("{:03}", (sum + 1) % 256).as_bytes());
        m
    };
    let wrong_begin_string = |m: &[u8]| {
        let mut m = m.to_vec();
        assert!(m.starts_with(b"8=FIX.4.4\x01"));
        m[8] = b'2';
        m
    };
    for garble in [&wrong_checksum as &dyn Fn(&[u8]) -> Vec<u8>, &wrong_begin_string] {
        let mut c = FixClient::plain(&s.fix_plain, &keys[0]);
        let good = c.logon_message(1, &[(141, "Y")]);
        let mut both = garble(&good);
        assert_ne!(both, good);
        both.extend_from_slice(&good);
        c.raw(&both);
        let (closed, seen) = c.closed();
        assert!(
            closed && seen.is_empty(),
            "closed {closed}, {:?}",
            seen.iter().map(show).collect::<Vec<_>>()
        );
    }
    // The key itself is fine.
    let mut c = FixClient::plain(&s.fix_plain, &keys[0]);
    assert_eq!(c.logon(&[(141, "Y")]).msg_type(), b"A");
    s.stop();
}

#[test]
fn revoked_keys_and_repeated_failures_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let refused = |creds: &Credentials| {
        let mut c = FixClient::plain(&s.fix_plain, creds);
        let m = c.logon_message(1, &[(141, "Y")]);
        c.raw(&m);
        let answer = c.recv();
        assert_eq!(answer.msg_type(), b"5", "{}", show(&answer));
        assert!(c.closed().0);
        text(&answer, 58).to_owned()
    };
    // A revoked key no longer logs on.
    let adm = server::admin(&s);
    let (st, b) = adm.delete(&format!("/atlas/internal/api/participant/broker/2/apikey/{}", keys[1].key));
    assert_eq!(st, StatusCode::NO_CONTENT, "{b}");
    assert!(refused(&keys[1]).contains("bad credentials"));
    // Five wrong passphrases for one key: then even the right one waits (the
    // back-off of failed password logins), and says so.
    let wrong = Credentials { passphrase: "wrong-passphrase".into(), ..keys[0].clone() };
    for _ in 0..5 {
        assert!(refused(&wrong).contains("bad credentials"));
    }
    assert!(refused(&keys[0]).contains("too many failed logons"));
    s.stop();
}

/// Huge pages made the engine stall for milliseconds whenever its heap grew
/// (see `no_transparent_huge_pages` in main.rs); the process turns them off.
#[cfg(target_os = "linux")]
#[test]
fn the_exchange_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let thp = status.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(str::trim);
    assert_eq!(thp, Some("0"), "{status}");
    s.stop();
}

/// `atlas_fix_order_ack_seconds` on `/metrics` counts every NewOrderSingle's
/// first report once: accepted (reported from the committed batch), refused
/// by the session's checks, and refused by the engine (a repeated ClOrdID);
/// a cancel is not an order's acknowledgement.
#[test]
fn order_to_ack_latency_is_measured_once_per_new_order() {
    let dir = tempfile::tempdir().unwrap();
    let (s, keys) = setup(dir.path());
    let mut a = FixClient::plain(&s.fix_plain, &keys[0]);
    a.logon(&[]);
    let fields = |cl: &'static str, symbol: &'static str| {
        vec![(11, cl), (55, symbol), (54, "1"), (38, "1"), (40, "2"), (44, "1.00")]
    };
    a.send("D", &fields("lat-1", "ACME"));
    let new = report(&mut a);
    assert_eq!((text(&new, 150), text(&new, 11)), ("0", "lat-1"), "{}", show(&new));
    a.send("D", &fields("lat-2", "NOPE"));
    let unknown = report(&mut a);
    assert_eq!((text(&unknown, 150), text(&unknown, 103)), ("8", "1"), "{}", show(&unknown));
    a.send("D", &fields("lat-1", "ACME"));
    let repeated = report(&mut a);
    assert_eq!((text(&repeated, 150), text(&repeated, 103)), ("8", "6"), "{}", show(&repeated));
    a.send("F", &[(11, "lat-3"), (41, "lat-1"), (55, "ACME"), (54, "1")]);
    let cancelled = report(&mut a);
    assert_eq!((text(&cancelled, 150), text(&cancelled, 11)), ("4", "lat-3"), "{}", show(&cancelled));

    let metrics = s.admin_client().get(format!("{}/metrics", s.internal)).send().unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().unwrap();
    let count = text.lines().find_map(|l| l.strip_prefix("atlas_fix_order_ack_seconds_count "));
    assert_eq!(count, Some("3"), "{text}");
    // The buckets resolve the 2 ms budget.
    assert!(text.contains("atlas_fix_order_ack_seconds_bucket{le=\"0.002\"} "), "{text}");
    s.stop();
}
