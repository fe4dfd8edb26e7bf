//! The terminal commands against a running `atlas up`: an operator lists a
//! product, admits a broker and gives it a user; the broker places, amends,
//! lists and cancels orders and reads the book and the tape; `--json` prints the
//! API's JSON; errors exit non-zero with the API's code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::process::{Command, Output};

use serde_json::Value;
use server::{ADMIN_PASSWORD, Server};

fn atlas(s: &Server, user: &str, password: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        .args(["--url", &s.external, "--internal-url", &s.internal, "--user", user])
        .arg("--pki-dir")
        .arg(s.data_dir.join("pki"))
        .env("ATLAS_PASSWORD", password)
        .env("ATLAS_NEW_PASSWORD", "carol-password-1")
        .output()
        .expect("run atlas")
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn operators_and_brokers_at_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    let admin = |args: &[&str]| atlas(&s, "admin", ADMIN_PASSWORD, args);
    let table =
        ok(admin(&["product", "create", "ACME", "--tick-size", "0.05", "--description", "Acme Corp"]));
    assert!(
        table.lines().next().unwrap().starts_with("id  symbol  tickSize"),
        "a table with a header:\n{table}"
    );
    assert!(table.contains("ACME") && table.contains("0.05"), "{table}");
    let list: Value = serde_json::from_str(&ok(admin(&["product", "list", "--json"]))).unwrap();
    assert_eq!(list[0]["symbol"], "ACME");
    ok(admin(&["participant", "create", "Carol & Co"]));
    ok(admin(&["participant", "add-user", "1", "carol"]));

    let carol = |args: &[&str]| atlas(&s, "carol", "carol-password-1", args);
    let placed: Value = serde_json::from_str(&ok(carol(&[
        "order",
        "place",
        "--product",
        "1",
        "--side",
        "sell",
        "--quantity",
        "10",
        "--price",
        "10.05",
        "--json",
    ])))
    .unwrap();
    assert_eq!(placed["status"], "BOOKED");
    let id = placed["id"].as_u64().unwrap().to_string();
    let amended = ok(carol(&["order", "amend", &id, "--quantity", "7"]));
    assert!(amended.contains("BOOKED") && amended.contains(" 7 "), "{amended}");
    let book = ok(carol(&["book", "1"]));
    assert!(book.contains("offer") && book.contains("10.05"), "{book}");
    assert!(ok(carol(&["order", "list"])).contains(&id));
    // A bad price: non-zero exit, and the API's code on stderr.
    let bad =
        carol(&["order", "place", "--product", "1", "--side", "buy", "--quantity", "1", "--price", "10.01"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("PRICE_NOT_ON_TICK"));
    let cancelled = ok(carol(&["order", "cancel", &id]));
    assert!(cancelled.contains("CANCELLED"), "{cancelled}");
    assert!(ok(carol(&["trades", "1"])).starts_with("id"));
    // A trade (carol with herself) that an operator busts from the terminal.
    for side in ["sell", "buy"] {
        ok(carol(&[
            "order",
            "place",
            "--product",
            "1",
            "--side",
            side,
            "--quantity",
            "1",
            "--price",
            "10.00",
        ]));
    }
    let tape: Value = serde_json::from_str(&ok(carol(&["trades", "1", "--json"]))).unwrap();
    let trade = tape[0]["id"].as_u64().unwrap().to_string();
    let busted = ok(admin(&["bust", &trade]));
    assert!(busted.lines().nth(1).is_some_and(|l| l.starts_with(&trade) && l.ends_with("true")), "{busted}");
    assert_eq!(ok(carol(&["trades", "1", "--json"])).trim(), "[]", "a busted trade leaves the tape");
    let again = admin(&["bust", &trade]);
    assert!(
        !again.status.success() && String::from_utf8_lossy(&again.stderr).contains("TRADE_ALREADY_BUSTED")
    );
    // The wrong password: refused, non-zero.
    assert!(!atlas(&s, "carol", "wrong-password-0", &["order", "list"]).status.success());

    // DAY orders expire at the end of the day.
    ok(carol(&[
        "order",
        "place",
        "--product",
        "1",
        "--side",
        "buy",
        "--quantity",
        "1",
        "--price",
        "9.00",
        "--time-in-force",
        "day",
    ]));
    let eod: Value = serde_json::from_str(&ok(admin(&["end-of-day", "--product", "1", "--json"]))).unwrap();
    assert_eq!(eod["expired"], 1, "{eod}");
    // An operator user (admins only), who can then work at the terminal.
    let made = ok(admin(&["user", "create", "olga", "--role", "operator"]));
    assert!(made.contains("olga") && made.contains("operator"), "{made}");
    assert!(ok(atlas(&s, "olga", "carol-password-1", &["participant", "list"])).contains("Carol & Co"));
    // API keys: made, then revoked; revoking again is an error.
    let key: Value = serde_json::from_str(&ok(admin(&["participant", "add-key", "1", "--json"]))).unwrap();
    let k = key["key"].as_str().unwrap();
    assert!(ok(admin(&["participant", "revoke-key", "1", k])).contains("true"));
    assert!(!admin(&["participant", "revoke-key", "1", k]).status.success());
    // The internal listener must be who it says: a pin to another identity
    // refuses it (its certificate is valid for this CA, but names internal).
    let impostor = admin(&["participant", "list", "--internal-identity", "spiffe://atlas/service/risk"]);
    assert!(!impostor.status.success());
    assert!(
        String::from_utf8_lossy(&impostor.stderr).contains("the server is not spiffe://atlas/service/risk"),
        "{impostor:?}"
    );
    let odd = admin(&["participant", "revoke-key", "1", "../../product/equity/1"]);
    assert!(!odd.status.success() && String::from_utf8_lossy(&odd.stderr).contains("is not an API key"));
    // Rename, then disable: carol can no longer log in.
    assert!(ok(admin(&["participant", "rename", "1", "Carol and Co"])).contains("Carol and Co"));
    assert!(ok(admin(&["participant", "disable", "1"])).contains("DISABLED"));
    assert!(!carol(&["order", "list"]).status.success());
}

/// `atlas bench fix` and `atlas bench feed` at a small size run to the end:
/// every order acknowledged, none rejected, every subscriber served. (Their
/// figures mean nothing in a debug build and are not checked.)
#[test]
fn the_fix_and_feed_benchmarks_run_to_the_end() {
    let bench = |args: &[&str]| {
        ok(Command::new(env!("CARGO_BIN_EXE_atlas")).arg("bench").args(args).output().unwrap())
    };
    for burst in ["0", "1000"] {
        let out =
            bench(&["fix", "--orders", "2000", "--rate", "1000", "--seconds", "2", "--burst-us", burst]);
        // Both phases: 2,000 pipelined, then 1,000/s for 2 s.
        assert_eq!(out.matches("2000 orders acknowledged in").count(), 2, "{out}");
        assert_eq!(out.matches("(0 rejected)").count(), 2, "{out}");
        assert!(out.contains("open loop at 1000/s"), "{out}");
        assert!(out.contains("of which the sender's lateness (due → written): p50"), "{out}");
    }
    for burst in ["0", "1000"] {
        let out = bench(&[
            "feed",
            "--subscribers",
            "8",
            "--measured",
            "4",
            "--rate",
            "500",
            "--seconds",
            "2",
            "--burst-us",
            burst,
        ]);
        assert!(
            out.contains(if burst == "0" { "each sent when due" } else { "in bursts every 1000 µs" }),
            "{out}"
        );
        assert!(out.contains("8 subscribers have their snapshots"), "{out}");
        assert!(out.contains("order flow: 1000 messages") && out.contains("; 0 rejected,"), "{out}");
        assert!(out.contains("publish lag (commit → subscriber) over"), "{out}");
        assert!(out.contains("subscribers dropped as too slow: 0; closed otherwise: 0"), "{out}");
    }
}

/// Benchmark options that would hang, overflow or allocate without limit are
/// refused at once with the reason, before any exchange starts.
#[test]
fn benchmark_options_beyond_their_limits_are_refused() {
    for (args, reason) in [
        (&["fix", "--window", "0"][..], "--window"),
        (&["fix", "--orders", "0"], "--orders"),
        (&["fix", "--burst-us", "18446744073709551615"], "--burst-us"),
        (&["fix", "--rate", "0"], "--rate"),
        (&["fix", "--rate", "10000000", "--seconds", "3600"], "more than the 50000000 orders"),
        (&["feed", "--rate", "10000000", "--seconds", "3600"], "more than the 50000000 orders"),
        (&["feed", "--seconds", "0"], "--seconds"),
        (&["feed", "--subscribers", "10001"], "--subscribers"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_atlas")).arg("bench").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("atlas bench"), "{args:?} started a run");
    }
}

/// `atlas up` listens for SIGTERM before it prints the line that tells
/// whoever started it where it listens: a SIGTERM sent the moment that line
/// is read shuts it down cleanly (exit 0), each time. (The handler used to be
/// installed after the line, so a prompt SIGTERM could kill the process by
/// the signal's default action, as a supervisor stopping it early would.)
///
/// The old window was microseconds wide, so the test keeps both CPUs busy
/// meanwhile (the server is then often preempted just after printing): without
/// the fix it failed in about half its runs here; with it, it cannot.
#[test]
fn a_sigterm_right_after_start_shuts_down_cleanly() {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    for _ in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        // `stop` sends SIGTERM and requires a successful exit.
        Server::start(dir.path(), None).stop();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
}
