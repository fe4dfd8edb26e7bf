//! Secrets from files, as a secret mount provides them: the database URL and
//! password and the bootstrap administrator's password. The database password
//! rotates without a restart (PostgreSQL with SCRAM logins: the old password
//! stops working, every connection is cut, and the exchange carries on with
//! the new one), and no secret ever reaches the log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../store/tests/common/mod.rs"]
mod pg;
mod server;

use reqwest::StatusCode;
use serde_json::json;
use server::{Api, Server, login};

const SUPERUSER_PASSWORD: &str = "superuser-secret-0";
const FIRST: &str = "first-db-password-1";
const SECOND: &str = "second-db-password-2";
const ADMIN_FROM_FILE: &str = "admin-password-from-a-file";

fn order(alice: &Api, price: &str) -> StatusCode {
    alice
        .post(
            "/atlas/api/order",
            json!({"productId": 1, "side": "BUY", "type": "LIMIT", "quantity": 1, "price": price}),
        )
        .0
}

#[test]
fn database_credentials_rotate_without_a_restart() {
    let cluster = pg::PgCluster::start_with_passwords(SUPERUSER_PASSWORD);
    cluster.sql(
        "postgres",
        &[
            &format!("CREATE ROLE atlas_app LOGIN PASSWORD '{FIRST}'"),
            "CREATE DATABASE atlas OWNER atlas_app",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mount");
    std::fs::create_dir_all(&mount).unwrap();
    let (url_file, pw_file, admin_file) = (mount.join("url"), mount.join("password"), mount.join("admin"));
    std::fs::write(&url_file, format!("postgres://atlas_app@127.0.0.1:{}/atlas\n", cluster.port)).unwrap();
    std::fs::write(&pw_file, format!("{FIRST}\n")).unwrap();
    std::fs::write(&admin_file, ADMIN_FROM_FILE).unwrap();
    let s = Server::start_with(
        &dir.path().join("data"),
        None,
        &[
            ("ATLAS_DATABASE_URL_FILE", url_file.to_str().unwrap()),
            ("ATLAS_DATABASE_PASSWORD_FILE", pw_file.to_str().unwrap()),
            ("ATLAS_ADMIN_PASSWORD_FILE", admin_file.to_str().unwrap()),
            ("ATLAS_RATE_LIMIT_ORDERS", "0"),
            ("ATLAS_RATE_LIMIT_QUERIES", "0"),
        ],
    );
    // The administrator's password came from the file (not ATLAS_ADMIN_PASSWORD).
    let adm =
        login(s.admin_client(), &s.internal, "/atlas/internal/api/auth/token", "admin", ADMIN_FROM_FILE);
    assert_eq!(
        adm.post("/atlas/internal/api/product/equity", json!({"symbol": "ACME"})).0,
        StatusCode::CREATED
    );
    adm.post("/atlas/internal/api/participant/broker", json!({"name": "Broker alice"}));
    adm.post(
        "/atlas/internal/api/participant/broker/1/user",
        json!({"username": "alice", "password": "alice-password", "role": "broker"}),
    );
    let alice = server::broker(&s, "alice");
    assert_eq!(order(&alice, "10.00"), StatusCode::CREATED);

    // Rotation: the database takes the new password, the mount gets it, and
    // every open connection is cut (as a failover or a recycle would).
    cluster.sql("postgres", &[&format!("ALTER ROLE atlas_app PASSWORD '{SECOND}'")]);
    std::fs::write(&pw_file, format!("{SECOND}\n")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !s.log().contains("database credentials reloaded") {
        assert!(std::time::Instant::now() < deadline, "the password file was not picked up");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    cluster.sql(
        "postgres",
        &["SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'atlas_app'"],
    );
    // New connections log in with the new password: orders (the journal's
    // connection) and queries (the services' pool) work again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut placed = 0;
    while placed < 3 {
        if order(&alice, "10.01") == StatusCode::CREATED && alice.get("/atlas/api/order").0 == StatusCode::OK
        {
            placed += 1;
        }
        assert!(std::time::Instant::now() < deadline, "the exchange did not recover with the new password");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(adm.get("/atlas/internal/api/audit?limit=5").0, StatusCode::OK);

    // A broken file keeps the working credentials.
    std::fs::write(&url_file, "not a url").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !s.log().contains("database credentials not reloaded") {
        assert!(std::time::Instant::now() < deadline, "the broken file went unnoticed");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(order(&alice, "10.02"), StatusCode::CREATED);

    // No secret reached the log.
    let log = s.log();
    for secret in [FIRST, SECOND, SUPERUSER_PASSWORD, ADMIN_FROM_FILE, "alice-password"] {
        assert!(!log.contains(secret), "the log holds a secret: {secret}");
    }
    assert!(!log.contains(alice.token.as_deref().unwrap()));
}

#[test]
fn a_missing_secret_file_stops_the_start_with_a_clear_message() {
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
        ])
        .env("ATLAS_DATABASE_URL_FILE", dir.path().join("nope"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reading the secret file") && err.contains("nope"), "{err}");
}
