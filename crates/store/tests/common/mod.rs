//! A throwaway PostgreSQL cluster for tests: initdb and pg_ctl from Debian's
//! packages in a temporary directory, on a free loopback port, stopped on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster; dropping it stops the server and deletes its files.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
    /// The superuser's password when TCP logins need one.
    password: Option<String>,
}

fn pg_bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = std::fs::read_dir(root)
        .unwrap_or_else(|_| {
            panic!("PostgreSQL is not installed ({root:?} missing); scripts/test installs it")
        })
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    let v = versions.last().expect("no PostgreSQL version under /usr/lib/postgresql");
    root.join(v.to_string()).join("bin")
}

fn id(args: &[&str]) -> String {
    let out = Command::new("id").args(args).output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl PgCluster {
    /// Starts a fresh cluster that trusts every login.
    pub fn start() -> PgCluster {
        PgCluster::start_auth(None)
    }

    /// Starts a fresh cluster where TCP logins need a password (SCRAM); the
    /// superuser's is `password`.
    pub fn start_with_passwords(password: &str) -> PgCluster {
        PgCluster::start_auth(Some(password))
    }

    fn start_auth(password: Option<&str>) -> PgCluster {
        let bin = pg_bin();
        // initdb refuses to run as root: run the server as the package's user.
        let as_postgres = id(&["-u"]) == "0";
        let dir = tempfile::Builder::new().prefix("atlas-pg-").tempdir().expect("temp dir");
        if as_postgres {
            let uid: u32 = id(&["-u", "postgres"]).parse().expect("postgres uid");
            let gid: u32 = id(&["-g", "postgres"]).parse().expect("postgres gid");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let c = PgCluster { dir, bin, port, as_postgres, password: password.map(str::to_owned) };
        let data = c.data();
        let mut args = vec!["-D", data.as_str(), "-U", "postgres", "-E", "UTF8", "--no-sync"];
        let pwfile = c.dir.path().join("pwfile").display().to_string();
        match password {
            None => args.push("--auth=trust"),
            Some(p) => {
                std::fs::write(&pwfile, p).expect("pwfile");
                args.extend(["--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile", pwfile.as_str()]);
            }
        }
        c.run("initdb", &args);
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", port, c.dir.path().display());
        let log = c.dir.path().join("log").display().to_string();
        c.run("pg_ctl", &["-D", &data, "-o", &opts, "-l", &log, "-w", "start"]);
        c
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let out = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&path).args(args).output()
        } else {
            Command::new(&path).args(args).output()
        }
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new, empty database; returns its URL.
    pub fn database(&self, name: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let admin = sqlx::PgPool::connect(&self.url("postgres")).await.unwrap();
            // Test-chosen names only: letters and underscores.
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name}");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
        });
        self.url(name)
    }

    fn url(&self, db: &str) -> String {
        match &self.password {
            Some(p) => format!("postgres://postgres:{p}@127.0.0.1:{}/{db}", self.port),
            None => format!("postgres://postgres@127.0.0.1:{}/{db}", self.port),
        }
    }

    /// Runs SQL statements as the superuser in database `db`.
    pub fn sql(&self, db: &str, statements: &[&str]) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let admin = sqlx::PgPool::connect(&self.url(db)).await.unwrap();
            for st in statements {
                sqlx::query(sqlx::AssertSqlSafe(st.to_string())).execute(&admin).await.unwrap();
            }
            admin.close().await;
        });
    }

    /// Stops the server now (the outage tests start it again with `resume`).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts a stopped server again on the same port.
    pub fn resume(&self) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"]);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data();
        let path = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&path).args(args).output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}

/// (id, status, traded, open, cancelled, notional) of an orders row.
type StoredOrder = (i64, String, i64, i64, i64, String);

/// The orders and trades tables must equal a fold of the whole journal: replays
/// every entry on a fresh engine, folds the events into rows, and compares them
/// with what the database holds. `target` is a PostgreSQL URL or a SQLite path.
pub fn tables_match_journal(store: &mut dyn atlas_journal::Storage, target: &str) {
    use atlas_journal::projection::{Effects, Projection};
    let mut engine = atlas_engine::Engine::default();
    let mut projection = Projection::default();
    let mut fx = Effects::default();
    let mut events = Vec::new();
    let mut orders = std::collections::BTreeMap::new();
    let mut trades = 0i64;
    store
        .for_each_batch(atlas_types::Seq(0), &mut |b| {
            for e in b.decode()? {
                events.clear();
                engine.apply(&e.to_command(), &mut events);
                fx.clear();
                projection.apply(&e, &events, &mut fx);
                for r in &fx.orders {
                    orders.insert(
                        r.id.0 as i64,
                        (
                            r.status.as_str().to_owned(),
                            r.traded.0,
                            r.open.0,
                            r.cancelled.0,
                            r.notional.to_string(),
                        ),
                    );
                }
                trades += fx.trades.len() as i64;
            }
            Ok(())
        })
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (rows, stored_trades): (Vec<StoredOrder>, i64) = rt.block_on(async {
        let q = "SELECT id, status, traded_qty, open_qty, cancelled_qty, notional FROM orders ORDER BY id";
        let c = "SELECT COUNT(*) FROM trades";
        if target.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(target).await.unwrap();
            (
                sqlx::query_as(q).fetch_all(&pool).await.unwrap(),
                sqlx::query_scalar(c).fetch_one(&pool).await.unwrap(),
            )
        } else {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{target}")).await.unwrap();
            (
                sqlx::query_as(q).fetch_all(&pool).await.unwrap(),
                sqlx::query_scalar(c).fetch_one(&pool).await.unwrap(),
            )
        }
    });
    assert_eq!(stored_trades, trades, "trades table differs from the journal");
    assert_eq!(rows.len(), orders.len(), "orders table differs from the journal");
    for (id, status, traded, open, cancelled, notional) in rows {
        assert_eq!(orders.get(&id), Some(&(status, traded, open, cancelled, notional)), "order {id}");
    }
    assert!(trades > 0 && !orders.is_empty());
}
