//! QuickFIX's server-side FIX 4.4 acceptance scripts, replayed over TCP
//! against Atlas's acceptor. The scripts come from the `quickfix-tokio` crate
//! on crates.io (scripts/test downloads and checks it; they are not copied into
//! this repository); `ATLAS_FIX_ACCEPTANCE_DIR` may point elsewhere.
//!
//! A script (`*.def`) connects (`iCONNECT`), sends (`I…`), expects (`E…`) and
//! expects a disconnect (`eDISCONNECT`), on numbered connections. Replaying one
//! against a real venue needs these translations, applied uniformly:
//! - CompIDs: the scripts' initiator `TW` is a fresh API key per script, the
//!   acceptor `ISLD` is `ATLAS`;
//! - every Logon carries the API key, passphrase and signature (553/554/95/96),
//!   and a Logon with MsgSeqNum 1 asks for a reset (141=Y) — the scripts assume
//!   an acceptor that starts each logon over at 1, Atlas keeps numbers unless
//!   asked;
//! - BodyLength and CheckSum are computed unless the script gives them (the
//!   garbled-message scripts do); `<TIME>`, `<TIME±n>` are the current time;
//! - expected fields are compared by value except times (52, 60, 122), lengths
//!   and checksums and the free text (58); extra fields are allowed;
//! - the scripts were written for QuickFIX's test application, which echoes
//!   every application message back. Where a script expects such an echo,
//!   Atlas's business answer to that message stands for it: an
//!   ExecutionReport, OrderCancelReject or BusinessMessageReject naming the
//!   echo's ClOrdID (11, or 379 in a BusinessMessageReject), or, for an echo
//!   without one, a BusinessMessageReject of its type (372). The test
//!   application's own reply to a message (the News it sends for an
//!   XMLnonFIX in `ReceiveXmlMessage`) is stood for the same way, by a
//!   BusinessMessageReject of the type it replies to. It shows what the
//!   echo shows, that the session layer delivered the message to the
//!   application (once). Only its header is compared (34, 43, 49, 56): the
//!   body, and flags such as PossResend (97), are the echoed message's, not
//!   Atlas's answer's;
//! - Atlas's other business answers are skipped. Each took one of Atlas's
//!   sequence numbers, so the acceptor's numbers the script expects after it
//!   (MsgSeqNum 34, and NewSeqNo 36 of a gap fill) are shifted by the answers
//!   skipped so far.
//!
//! Every script runs; the report lists each with PASS or why it failed. The
//! test fails if a script in [`PASSING`] fails (a regression) or if one not in
//! it passes (keep the list true); [`TIMING_DEPENDENT`] scripts are only reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use atlas_wire::fix::{Message, length_tag_of};
use reqwest::StatusCode;
use serde_json::json;
use server::fix::{Credentials, FixClient, show, sign, time_offset};
use server::{Server, admin};

/// The scripts Atlas passes (the rest are listed, with reasons, in the report).
const PASSING: &[&str] = &[
    "10_MsgSeqNumEqual",
    "10_MsgSeqNumGreater",
    "10_MsgSeqNumLess",
    "11a_NewSeqNoGreater",
    "11b_NewSeqNoEqual",
    "11c_NewSeqNoLess",
    "13b_UnsolicitedLogoutMessage",
    "14a_BadField",
    "14b_RequiredFieldMissing",
    "14c_TagNotDefinedForMsgType",
    "14d_TagSpecifiedWithoutValue",
    "14e_IncorrectEnumValue",
    "14f_IncorrectDataFormat",
    "14g_HeaderBodyTrailerFieldsOutOfOrder",
    "14h_RepeatedTag",
    "14i_RepeatingGroupCountNotEqual",
    "15_HeaderAndBodyFieldsOrderedDifferently",
    "19a_PossResendMessageThatHAsAlreadyBeenSent",
    "19b_PossResendMessageThatHasNotBeenSent",
    "1a_ValidLogonMsgSeqNumTooHigh",
    "1a_ValidLogonWithCorrectMsgSeqNum",
    "1b_DuplicateIdentity",
    "1c_InvalidSenderCompID",
    "1c_InvalidTargetCompID",
    "1d_InvalidLogonBadSendingTime",
    "1d_InvalidLogonLengthInvalid",
    "1d_InvalidLogonWrongBeginString",
    "1e_NotLogonMessage",
    "20_SimultaneousResendRequest",
    "21_RepeatingGroupSpecifierWithValueOfZero",
    "2a_MsgSeqNumCorrect",
    "2b_MsgSeqNumTooHigh",
    "2c_MsgSeqNumTooLow",
    "2d_GarbledMessage",
    "2e_PossDupAlreadyReceived",
    "2e_PossDupNotReceived",
    "2f_PossDupOrigSendingTimeTooHigh",
    "2g_PossDupNoOrigSendingTime",
    "2i_BeginStringValueUnexpected",
    "2k_CompIDDoesNotMatchProfile",
    "2o_SendingTimeValueOutOfRange",
    "2q_MsgTypeNotValid",
    "2r_UnregisteredMsgType",
    "2t_FirstThreeFieldsOutOfOrder",
    "3b_InvalidChecksum",
    "3c_GarbledMessage",
    "4a_NoDataSentDuringHeartBtInt",
    "4b_ReceivedTestRequest",
    "7_ReceiveRejectMessage",
    "8_AdminAndApplicationMessages",
    "8_OnlyAdminMessages",
    "8_OnlyApplicationMessages",
    "AlreadyLoggedOn",
    "ComponentFieldRequired",
    "FieldTypeError_NestedGroup",
    "FieldTypeError_RepeatingGroup",
    "FieldTypeError_Top",
    "InternationalCharacters",
    "ReceiveXmlMessage",
    "RejectResentMessage",
    "ResendRepeatingGroup",
    "ReverseRoute",
    "ReverseRouteWithEmptyRoutingTags",
    "SessionReset",
];

/// Scripts whose outcome depends on timer phases (our heartbeat and test
/// request ticks against the script's waits): reported, never asserted.
const TIMING_DEPENDENT: &[&str] = &["6_SendTestRequest"];

enum Line {
    Connect(usize),
    Disconnect(usize),
    ExpectDisconnect(usize),
    Send(usize, String),
    Expect(usize, String),
    Sleep(f64),
}

fn scripts_dir() -> PathBuf {
    if let Ok(d) = std::env::var("ATLAS_FIX_ACCEPTANCE_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/quickfix-acceptance/fix44")
}

fn parse(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(secs) = line.strip_prefix("sleep(").and_then(|r| r.strip_suffix(')')) {
            out.push(Line::Sleep(secs.parse().unwrap_or(0.0)));
            continue;
        }
        let (kind, rest) = line.split_at(1);
        // An optional "N," connection number.
        let (conn, body) = match rest.split_once(',') {
            Some((n, b)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => (n.parse().unwrap(), b),
            _ => (1, rest),
        };
        out.push(match (kind, body) {
            ("i", "CONNECT") => Line::Connect(conn),
            ("i", "DISCONNECT") => Line::Disconnect(conn),
            ("e", "DISCONNECT") => Line::ExpectDisconnect(conn),
            ("I", m) => Line::Send(conn, m.to_owned()),
            ("E", m) => Line::Expect(conn, m.to_owned()),
            _ => continue,
        });
    }
    out
}

const NO_EQUALS: &str = "\u{2}";

/// A script's message as its fields; a data field right after its length
/// field takes that many bytes, SOH included (`ReceiveXmlMessage` sends a FIX
/// message inside XmlData).
fn pieces(m: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut parts = m.split('\x01');
    while let Some(p) = parts.next() {
        if p.is_empty() {
            continue;
        }
        let Some((t, v)) = p.split_once('=') else {
            // A piece without '=' (a garbled field), kept as written.
            out.push((p.to_owned(), NO_EQUALS.to_owned()));
            continue;
        };
        let mut v = v.to_owned();
        let length = t.parse().ok().and_then(length_tag_of).and_then(|len_tag| match out.last() {
            Some((prev, n)) if *prev == len_tag.to_string() => n.parse::<usize>().ok(),
            _ => None,
        });
        if let Some(n) = length {
            while v.len() < n {
                let Some(more) = parts.next() else { break };
                v.push('\x01');
                v.push_str(more);
            }
        }
        out.push((t.to_owned(), v));
    }
    out
}

fn time_with_offset(spec: &str, at: SystemTime) -> Option<String> {
    let inner = spec.strip_prefix("<TIME")?.strip_suffix('>')?;
    let offset: i64 = if inner.is_empty() { 0 } else { inner.parse().ok()? };
    Some(time_offset(at, offset))
}

/// The bytes to send for a script's message.
fn outgoing(m: &str, c: &Credentials) -> Vec<u8> {
    let mut f = pieces(m);
    // One clock reading for the whole message: read per field, SendingTime
    // and OrigSendingTime (both `<TIME>`) could fall in different
    // milliseconds, OrigSendingTime the later, which the acceptor rightly
    // rejects (a flake of `RejectResentMessage` on a loaded machine).
    let at = SystemTime::now();
    for (t, v) in f.iter_mut() {
        match (t.as_str(), v.as_str()) {
            ("49", "TW") => *v = c.key.clone(),
            ("56", "ISLD") => *v = "ATLAS".into(),
            (_, x) if x.starts_with("<TIME") => {
                *v = time_with_offset(x, at).unwrap_or_else(|| time_offset(at, 0))
            }
            _ => {}
        }
    }
    let get = |f: &[(String, String)], tag: &str| f.iter().find(|(t, _)| t == tag).map(|(_, v)| v.clone());
    if get(&f, "35").as_deref() == Some("A") {
        if get(&f, "34").as_deref() == Some("1") && get(&f, "141").is_none() {
            f.push(("141".into(), "Y".into()));
        }
        let sig = sign(
            &c.secret,
            &[
                &get(&f, "52").unwrap_or_default(),
                "A",
                &get(&f, "34").unwrap_or_default(),
                &get(&f, "49").unwrap_or_default(),
                &get(&f, "56").unwrap_or_default(),
                &c.passphrase,
            ],
        );
        f.push(("553".into(), c.key.clone()));
        f.push(("554".into(), c.passphrase.clone()));
        f.push(("95".into(), sig.len().to_string()));
        f.push(("96".into(), sig));
    }
    let join = |f: &[(String, String)]| {
        let mut s = String::new();
        for (t, v) in f {
            s.push_str(t);
            if v != NO_EQUALS {
                s.push('=');
                s.push_str(v);
            }
            s.push('\x01');
        }
        s
    };
    if f.iter().any(|(t, _)| t == "10") {
        // Given length and checksum: sent as written (a garbled message).
        return join(&f).into_bytes();
    }
    // A BodyLength given by the script is kept (a wrong one is the test).
    let given_length = get(&f, "9");
    let body: Vec<(String, String)> = f.iter().skip(1).filter(|(t, _)| t != "9").cloned().collect();
    let body = join(&body);
    let length = given_length.unwrap_or_else(|| body.len().to_string());
    let mut out = format!("{}={}\x019={length}\x01", f[0].0, f[0].1);
    out.push_str(&body);
    let sum = out.bytes().fold(0u8, |a, b| a.wrapping_add(b));
    out.push_str(&format!("10={sum:03}\x01"));
    out.into_bytes()
}

const ADMIN: &[&str] = &["0", "1", "2", "3", "4", "5", "A"];
const BUSINESS_ANSWERS: &[&[u8]] = &[b"8", b"9", b"j", b"r"];

/// Whether Atlas's business answer `got` stands for the expected echo `m`
/// (or for the test application's reply to `sent`, the type of the message
/// last sent on the connection).
fn answers(got: &Message, echo: &str, sent: Option<&str>) -> bool {
    let f = pieces(echo);
    let get = |tag: &str| f.iter().find(|(t, _)| t == tag).map(|(_, v)| v.as_str());
    match get("11") {
        Some(id) => got.text(if got.msg_type() == b"j" { 379 } else { 11 }) == Some(id),
        None => got.msg_type() == b"j" && (got.text(372) == get("35") || got.text(372) == sent),
    }
}

/// The header fields an echo is compared on.
const ECHO_HEADER: &[u32] = &[34, 43, 49, 56];

/// Checks a received message against an expected one; `shift`: Atlas's
/// business answers skipped so far; `echo`: compare the header only.
fn matches(got: &Message, expected: &str, c: &Credentials, shift: u64, echo: bool) -> Result<(), String> {
    for (t, v) in pieces(expected) {
        let Ok(tag) = t.parse::<u32>() else { continue };
        if matches!(tag, 8 | 9 | 10 | 52 | 60 | 122 | 58) || (echo && !ECHO_HEADER.contains(&tag)) {
            continue;
        }
        let want = match (tag, v.as_str()) {
            (49, "ISLD") => "ATLAS".to_owned(),
            (56, "TW") => c.key.clone(),
            (34 | 36, n) => n.parse::<u64>().map_or(v.clone(), |n| (n + shift).to_string()),
            _ => v,
        };
        if got.text(tag) != Some(want.as_str()) {
            return Err(format!("expected {tag}={want}, got {:?} in {}", got.text(tag), show(got)));
        }
    }
    Ok(())
}

fn run(lines: &[Line], s: &Server, c: &Credentials) -> Result<(), String> {
    let mut conns: BTreeMap<usize, FixClient> = BTreeMap::new();
    let mut shift = 0;
    // The type of the last message sent on each connection.
    let mut sent: BTreeMap<usize, String> = BTreeMap::new();
    for line in lines {
        match line {
            Line::Connect(n) => {
                conns.insert(*n, FixClient::plain(&s.fix_plain, c));
            }
            Line::Disconnect(n) => {
                conns.remove(n);
            }
            Line::Sleep(secs) => std::thread::sleep(Duration::from_secs_f64(*secs)),
            Line::Send(n, m) => {
                let conn = conns.get_mut(n).ok_or("send on a closed connection")?;
                conn.raw(&outgoing(m, c));
                if let Some((_, t)) = pieces(m).into_iter().find(|(t, _)| t == "35") {
                    sent.insert(*n, t);
                }
            }
            Line::Expect(n, m) => {
                let msg_type =
                    pieces(m).into_iter().find(|(t, _)| t == "35").map(|(_, v)| v).unwrap_or_default();
                // A BusinessMessageReject is the acceptor's own answer, not an echo.
                let echo = !ADMIN.contains(&msg_type.as_str()) && msg_type != "j";
                let conn = conns.get_mut(n).ok_or("expect on a closed connection")?;
                loop {
                    let got = conn.try_recv(Duration::from_secs(15)).ok_or_else(|| {
                        format!("nothing (or a disconnect) where 35={msg_type} was expected")
                    })?;
                    let business = BUSINESS_ANSWERS.contains(&got.msg_type())
                        && !(msg_type == "j" && got.msg_type() == b"j");
                    if business && !(echo && answers(&got, m, sent.get(n).map(String::as_str))) {
                        shift += 1;
                        continue;
                    }
                    if echo && !business {
                        return Err(format!(
                            "{} where an answer to a 35={msg_type} was expected",
                            show(&got)
                        ));
                    }
                    matches(&got, m, c, shift, echo)?;
                    break;
                }
            }
            Line::ExpectDisconnect(n) => {
                let conn = conns.get_mut(n).ok_or("expect a disconnect of a closed connection")?;
                let (closed, seen) = conn.closed();
                if let Some(m) =
                    seen.iter().find(|m| !matches!(m.msg_type(), b"5" | b"3" | b"8" | b"9" | b"j"))
                {
                    return Err(format!("before the disconnect: {}", show(m)));
                }
                if !closed {
                    return Err("not disconnected".into());
                }
                conns.remove(n);
            }
        }
    }
    Ok(())
}

#[test]
fn quickfix_acceptance_scripts() {
    let dir = scripts_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/test downloads the scripts)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "def"))
        .collect();
    files.sort();
    assert!(files.len() > 50, "too few scripts in {}", dir.display());
    let data = tempfile::tempdir().unwrap();
    let s = Server::start(data.path(), None);
    let adm = admin(&s);
    let (st, b) = adm.post("/atlas/internal/api/participant/broker", json!({"name": "Acceptance"}));
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let id = b["id"].as_u64().unwrap();
    let mut report = String::new();
    let (mut passed, mut surprises) = (Vec::new(), Vec::new());
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let (st, key) = adm.post(&format!("/atlas/internal/api/participant/broker/{id}/apikey"), json!({}));
        assert_eq!(st, StatusCode::CREATED, "{key}");
        server::record_secrets(None, &key);
        let creds = Credentials::of(&key);
        let lines = parse(&std::fs::read_to_string(file).unwrap());
        let result = run(&lines, &s, &creds);
        let listed = PASSING.contains(&name.as_str());
        let timing = TIMING_DEPENDENT.contains(&name.as_str());
        match &result {
            Ok(()) => {
                report.push_str(&format!("PASS {name}\n"));
                passed.push(name.clone());
                if !listed && !timing {
                    surprises.push(format!("{name} passes but is not listed in PASSING"));
                }
            }
            Err(why) => {
                report.push_str(&format!("FAIL {name}: {why}\n"));
                if listed {
                    surprises.push(format!("{name} regressed: {why}"));
                }
            }
        }
    }
    report.push_str(&format!("{} of {} scripts pass\n", passed.len(), files.len()));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fix-acceptance.txt");
    std::fs::write(&out, &report).unwrap();
    println!("{report}");
    assert!(surprises.is_empty(), "{}\n(report: {})", surprises.join("\n"), out.display());
    s.stop();
}
