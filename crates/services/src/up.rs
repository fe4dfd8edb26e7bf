//! `atlas up`: every service in one process. Opens the storage (SQLite in the
//! data directory by default), recovers the shard, creates the PKI, the token key
//! and the bootstrap administrator on first start, reconciles products with the
//! engine, then serves both listeners until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use tokio::net::TcpListener;

use atlas_journal::{Sequencer, SequencerConfig, Storage};
use atlas_store::{Db, PgStore, SqliteStore};

use crate::app::{self, App};
use crate::auth::{Role, TokenKeys, check_password_rules, hash_password};
use crate::model::now_ns;
use crate::{pki, products, tls};

/// The SQLite database's file name in the data directory.
pub const DATABASE_FILE: &str = "atlas.db";
/// Length of a generated bootstrap password.
const GENERATED_PASSWORD_CHARS: usize = 24;

/// How `atlas up` is configured.
#[derive(Clone, Debug)]
pub struct UpConfig {
    /// Where the database, PKI and secrets live.
    pub data_dir: PathBuf,
    /// The external listener.
    pub external_addr: SocketAddr,
    /// The internal listener.
    pub internal_addr: SocketAddr,
    /// The FIX acceptor (TLS).
    pub fix_addr: SocketAddr,
    /// A plaintext FIX acceptor for tools without TLS (loopback only).
    pub fix_plain_addr: Option<SocketAddr>,
    /// PostgreSQL instead of SQLite, if a URL (or a URL file) is set.
    pub database: crate::secrets::DatabaseSecrets,
    /// Order-entry requests per second per credential and per IP (0: no limit).
    pub rate_limit_orders: u32,
    /// Other requests per second per credential and per IP (0: no limit).
    pub rate_limit_queries: u32,
    /// Failed logins of one user name before back-off (0: no throttling).
    pub login_failures_per_user: u32,
    /// Failed logins from one IP before back-off (0: no throttling).
    pub login_failures_per_ip: u32,
    /// Connections open at once from one client IP, per listener (0: no cap).
    pub connections_per_ip: u32,
    /// Market data feed (WebSocket) connections per client IP (0: no cap).
    pub feed_connections_per_ip: u32,
    /// Connections with no traffic for this long are closed (zero: never).
    pub idle_timeout: std::time::Duration,
    /// The token signing keys' directory (default `DATA_DIR/secrets/jwt`).
    pub jwt_keys_dir: Option<PathBuf>,
    /// Client certificate identities (URI SANs; a trailing `*` matches any
    /// rest) the internal listener admits.
    pub internal_client_ids: Vec<String>,
    /// What the firewall's signature rules do.
    pub waf_mode: crate::waf::WafMode,
    /// Addresses refused on both listeners.
    pub deny_networks: Vec<ipnet::IpNet>,
    /// Networks admitted on the external listener (empty: all).
    pub external_allow: Vec<ipnet::IpNet>,
    /// Networks admitted on the internal listener (empty: all).
    pub internal_allow: Vec<ipnet::IpNet>,
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    Ok(())
}

fn generated_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; GENERATED_PASSWORD_CHARS];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect()
}

/// Creates the `admin` user on a database without users. Its password comes from
/// `ATLAS_ADMIN_PASSWORD_FILE` or `ATLAS_ADMIN_PASSWORD`, or is generated and written once to `DIR/admin-password`.
async fn bootstrap_admin(db: &Db, data_dir: &std::path::Path) -> anyhow::Result<()> {
    if db.user_count().await? > 0 {
        return Ok(());
    }
    let password = match crate::secrets::admin_password()? {
        Some(p) => {
            check_password_rules(p.expose())
                .map_err(|e| anyhow::anyhow!("ATLAS_ADMIN_PASSWORD: {}", e.detail))?;
            p.expose().to_owned()
        }
        None => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let p = generated_password();
            let path = data_dir.join("admin-password");
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            writeln!(f, "{p}")?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), "bootstrap user 'admin' created; its password is in the file");
            p
        }
    };
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await?
        .map_err(|_| anyhow::anyhow!("hashing the bootstrap password"))?;
    db.insert_user("admin", &hash, Role::Admin.as_str(), None, now_ns()).await?;
    Ok(())
}

/// A running exchange (see [`start`]).
pub struct Running {
    /// The external listener's bound address.
    pub external_addr: SocketAddr,
    /// The internal listener's bound address.
    pub internal_addr: SocketAddr,
    /// The FIX acceptor's bound address.
    pub fix_addr: SocketAddr,
    /// The plaintext FIX acceptor's bound address, if any.
    pub fix_plain_addr: Option<SocketAddr>,
    /// The PKI's files.
    pub pki: pki::Pki,
    stop_tx: tokio::sync::watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    sequencer: Sequencer,
}

impl Running {
    /// Subscribes to the shard's committed market data (what the feed hub
    /// reads), from now on.
    pub fn market_feed(&self) -> atlas_journal::market::MarketFeed {
        self.sequencer.handle().market_feed()
    }

    /// The day's client order ids in use (what the idempotency state holds).
    pub fn client_order_ids(&self) -> u64 {
        self.sequencer.handle().client_order_ids()
    }

    /// Stops the listeners (letting requests in flight finish) and the shard.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop_tx.send(true);
        for s in self.servers {
            let _ = s.await;
        }
        let sequencer = self.sequencer;
        tokio::task::spawn_blocking(move || sequencer.shutdown()).await?;
        Ok(())
    }
}

/// Starts every service and both listeners; returns once they are listening.
pub async fn start(config: UpConfig) -> anyhow::Result<Running> {
    crate::metrics::install();
    create_private_dir(&config.data_dir)?;
    // The journal's stores drive their connections on private runtimes: open them
    // (and recover the shard) on a blocking thread, outside this runtime.
    let credentials = if config.database.is_postgres() { Some(config.database.credentials()?) } else { None };
    let (creds, path) = (credentials.clone(), config.data_dir.join(DATABASE_FILE));
    let sequencer = tokio::task::spawn_blocking(move || -> anyhow::Result<Sequencer> {
        let storage: Box<dyn Storage> = match &creds {
            Some(c) => Box::new(PgStore::connect_with(c, 0)?),
            None => Box::new(SqliteStore::open(&path)?),
        };
        Sequencer::start(storage, SequencerConfig::default()).context("recovering the shard")
    })
    .await??;
    let db = match &credentials {
        Some(c) => {
            let db = Db::connect_pg_with(c).await?;
            config.database.clone().watch(c.clone());
            db
        }
        None => Db::open_sqlite(&config.data_dir.join(DATABASE_FILE)).await?,
    };
    let key_dir = config.jwt_keys_dir.clone().unwrap_or_else(|| config.data_dir.join("secrets").join("jwt"));
    let tokens = TokenKeys::load_or_create(&key_dir)?;
    let pki = pki::ensure(&config.data_dir, config.external_addr.ip(), config.internal_addr.ip())?;
    bootstrap_admin(&db, &config.data_dir).await?;
    let app = Arc::new(App {
        db,
        seq: sequencer.handle(),
        tokens,
        ready: Default::default(),
        products: Default::default(),
        risk: Default::default(),
        rate_limits: crate::limits::RateLimits::new(config.rate_limit_orders, config.rate_limit_queries),
        logins: crate::limits::LoginThrottle::new(
            config.login_failures_per_user,
            config.login_failures_per_ip,
        ),
        disabled: Default::default(),
        waf_external: crate::waf::Waf::new(
            config.waf_mode,
            config.external_allow.clone(),
            config.deny_networks.clone(),
        )?,
        waf_internal: crate::waf::Waf::new(
            config.waf_mode,
            config.internal_allow.clone(),
            config.deny_networks.clone(),
        )?,
        market: Default::default(),
    });
    let _ = app.market.set(crate::marketdata::MarketData::start(
        Arc::downgrade(&app),
        app.seq.clone(),
        config.feed_connections_per_ip,
    ));
    for p in app.db.participants().await? {
        if p.status != "ACTIVE" {
            app.disable(p.id);
        }
    }
    products::reconcile(&app).await.context("reconciling products with the engine")?;
    crate::risk::load(&app).await.context("loading risk limits")?;
    app.ready.store(true, Ordering::Release);

    let external = TcpListener::bind(config.external_addr).await.context("binding the external listener")?;
    let internal = TcpListener::bind(config.internal_addr).await.context("binding the internal listener")?;
    let fix = TcpListener::bind(config.fix_addr).await.context("binding the FIX listener")?;
    let fix_plain = match config.fix_plain_addr {
        Some(addr) => {
            crate::fix::check_plaintext_addr(addr)?;
            Some(TcpListener::bind(addr).await.context("binding the plaintext FIX listener")?)
        }
        None => None,
    };
    let (external_addr, internal_addr) = (external.local_addr()?, internal.local_addr()?);
    let fix_addr = fix.local_addr()?;
    let fix_plain_addr = fix_plain.as_ref().map(TcpListener::local_addr).transpose()?;
    // Idle rate-limit keys are forgotten every minute, so the maps stay bounded.
    {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                app.rate_limits.retain_recent();
                app.logins.retain_recent();
            }
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let external_tls = tls::external(&pki.external)?;
    let internal_tls = tls::internal(&pki.internal, &pki.ca_cert, &config.internal_client_ids)?;
    let fix_acceptor = crate::fix::Acceptor::new(app.clone(), config.data_dir.join("fix"));
    let mut servers = vec![
        tokio::spawn(crate::fix::serve(
            fix,
            Some(external_tls.clone()),
            fix_acceptor.clone(),
            config.connections_per_ip,
            stop_rx.clone(),
        )),
        tokio::spawn(tls::serve(
            external,
            external_tls,
            app::external(app.clone()),
            config.connections_per_ip,
            config.idle_timeout,
            stop_rx.clone(),
        )),
        tokio::spawn(tls::serve(
            internal,
            internal_tls,
            app::internal(app.clone()),
            config.connections_per_ip,
            config.idle_timeout,
            stop_rx.clone(),
        )),
    ];
    if let Some(plain) = fix_plain {
        servers.push(tokio::spawn(crate::fix::serve(
            plain,
            None,
            fix_acceptor,
            config.connections_per_ip,
            stop_rx,
        )));
    }
    Ok(Running { external_addr, internal_addr, fix_addr, fix_plain_addr, pki, stop_tx, servers, sequencer })
}

/// Runs the exchange until SIGINT or SIGTERM.
pub async fn run(config: UpConfig) -> anyhow::Result<()> {
    // Listening for the signals before the line below is printed: whoever
    // reads it may send SIGTERM at once, which must shut the exchange down
    // cleanly, not kill it by the signal's default action.
    let shutdown = shutdown_signal()?;
    let running = start(config).await?;
    // Tests and scripts read the bound addresses from this line.
    let plain = running.fix_plain_addr.map(|a| format!(" fix-plain tcp://{a}")).unwrap_or_default();
    println!(
        "atlas up: external https://{} internal https://{} fix tls://{}{plain} (CA {})",
        running.external_addr,
        running.internal_addr,
        running.fix_addr,
        running.pki.ca_cert.display()
    );
    shutdown.await;
    tracing::info!("shutting down");
    running.shutdown().await
}

/// Installs the SIGTERM and SIGINT handlers now; the future ends at the first
/// of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
