//! `atlas up`: the flags of API.md's "Running it", handed to the services.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Options of `atlas up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Where the database, certificates and secrets live.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// The external (broker) listener.
    #[arg(long, default_value = "127.0.0.1:8443")]
    external_addr: SocketAddr,
    /// The internal (operator, mutual TLS) listener.
    #[arg(long, default_value = "127.0.0.1:9443")]
    internal_addr: SocketAddr,
    /// The FIX 4.4 acceptor (TLS, with the external listener's certificate).
    #[arg(long, env = "ATLAS_FIX_ADDR", default_value = "127.0.0.1:9878")]
    fix_addr: SocketAddr,
    /// Also accept FIX without TLS on this address, for tools that cannot do
    /// TLS; refused unless it is a loopback address.
    #[arg(long, env = "ATLAS_FIX_PLAIN_ADDR")]
    fix_plain_addr: Option<SocketAddr>,
    /// PostgreSQL instead of the embedded SQLite, e.g. postgres://user@host/db.
    #[arg(long, env = "ATLAS_DATABASE_URL")]
    database_url: Option<String>,
    /// A file holding the PostgreSQL URL (a secret mount); re-read when it
    /// changes, so rotated credentials apply without a restart.
    #[arg(long, env = "ATLAS_DATABASE_URL_FILE", conflicts_with = "database_url")]
    database_url_file: Option<PathBuf>,
    /// A file holding only the database password (replaces the URL's); re-read
    /// when it changes.
    #[arg(long, env = "ATLAS_DATABASE_PASSWORD_FILE")]
    database_password_file: Option<PathBuf>,
    /// Order entry (place, amend, cancel) requests per second, per credential and
    /// per IP, with bursts of twice that; 0 disables the limit.
    #[arg(long, env = "ATLAS_RATE_LIMIT_ORDERS", default_value_t = atlas_services::limits::ORDERS_PER_SECOND_DEFAULT)]
    rate_limit_orders: u32,
    /// Every other request per second, per credential and per IP; 0 disables it.
    #[arg(long, env = "ATLAS_RATE_LIMIT_QUERIES", default_value_t = atlas_services::limits::QUERIES_PER_SECOND_DEFAULT)]
    rate_limit_queries: u32,
    /// Failed logins of one user name before exponential back-off (1 s, doubling,
    /// at most 15 min); 0 disables it.
    #[arg(long, env = "ATLAS_LOGIN_FAILURES_PER_USER", default_value_t = atlas_services::limits::LOGIN_FAILURES_PER_USER_DEFAULT)]
    login_failures_per_user: u32,
    /// Failed logins from one client IP before back-off; 0 disables it.
    #[arg(long, env = "ATLAS_LOGIN_FAILURES_PER_IP", default_value_t = atlas_services::limits::LOGIN_FAILURES_PER_IP_DEFAULT)]
    login_failures_per_ip: u32,
    /// Connections open at once from one client IP, per listener; 0: no cap.
    #[arg(long, env = "ATLAS_CONNECTIONS_PER_IP", default_value_t = atlas_services::CONNECTIONS_PER_IP_DEFAULT)]
    connections_per_ip: u32,
    /// Market data feed (WebSocket) connections from one client IP; 0: no cap.
    #[arg(long, env = "ATLAS_FEED_CONNECTIONS_PER_IP", default_value_t = atlas_services::marketdata::CONNECTIONS_PER_IP_DEFAULT)]
    feed_connections_per_ip: u32,
    /// Seconds a connection may stay without traffic before it is closed; 0: never.
    #[arg(long, env = "ATLAS_IDLE_TIMEOUT_SECONDS", default_value_t = atlas_services::IDLE_TIMEOUT_DEFAULT.as_secs())]
    idle_timeout_seconds: u64,
    /// The token signing keys: a directory of PKCS#8 ECDSA P-256 PEM files (a
    /// secret mount); the newest by name signs, all verify. Default
    /// `DATA_DIR/secrets/jwt`, created with one key. `atlas pki jwt-key` adds one.
    #[arg(long, env = "ATLAS_JWT_KEYS_DIR")]
    jwt_keys_dir: Option<PathBuf>,
    /// What the web application firewall's signature rules (SQL injection, XSS,
    /// traversal, …) do: `block` (403), `detect` (log and count only, for
    /// tuning) or `off`. IP lists apply in every mode.
    #[arg(long, env = "ATLAS_WAF", default_value = "block")]
    waf: atlas_services::waf::WafMode,
    /// Networks or addresses refused on both listeners, comma-separated
    /// (`203.0.113.0/24,198.51.100.7`).
    #[arg(long, env = "ATLAS_DENY_NETWORKS", default_value = "", value_parser = networks)]
    deny_networks: Networks,
    /// Networks admitted on the external listener; empty admits all.
    #[arg(long, env = "ATLAS_EXTERNAL_ALLOW", default_value = "", value_parser = networks)]
    external_allow: Networks,
    /// Networks admitted on the internal listener (which also requires a client
    /// certificate); empty admits all.
    #[arg(long, env = "ATLAS_INTERNAL_ALLOW", default_value = atlas_services::waf::INTERNAL_ALLOW_DEFAULT, value_parser = networks)]
    internal_allow: Networks,
    /// Client certificate identities (URI names, comma-separated; a trailing
    /// `*` matches any rest) the internal listener admits; a CA-issued
    /// certificate with another identity is refused in the handshake.
    #[arg(long, env = "ATLAS_INTERNAL_CLIENT_IDS", default_value = atlas_services::INTERNAL_CLIENT_IDS_DEFAULT, value_delimiter = ',')]
    internal_client_ids: Vec<String>,
    /// Log lines on standard error as `text` or `json` (one object per line); the
    /// level filter is `ATLAS_LOG` (default `info`, e.g. `atlas_services=debug`).
    #[arg(long, env = "ATLAS_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ATLAS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// A parsed network list (a newtype, so that clap takes the list as one value).
#[derive(Clone, Debug)]
struct Networks(Vec<atlas_services::waf::IpNet>);

fn networks(s: &str) -> Result<Networks, String> {
    atlas_services::waf::parse_networks(s).map(Networks)
}

/// Runs the exchange until SIGINT or SIGTERM.
pub fn run(args: UpArgs) -> anyhow::Result<()> {
    init_logs(&args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("atlas-io").build()?;
    runtime.block_on(atlas_services::run(atlas_services::UpConfig {
        data_dir: args.data_dir,
        external_addr: args.external_addr,
        internal_addr: args.internal_addr,
        fix_addr: args.fix_addr,
        fix_plain_addr: args.fix_plain_addr,
        database: atlas_services::secrets::DatabaseSecrets {
            url: args.database_url,
            url_file: args.database_url_file,
            password_file: args.database_password_file,
        },
        rate_limit_orders: args.rate_limit_orders,
        rate_limit_queries: args.rate_limit_queries,
        login_failures_per_user: args.login_failures_per_user,
        login_failures_per_ip: args.login_failures_per_ip,
        connections_per_ip: args.connections_per_ip,
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout_seconds),
        feed_connections_per_ip: args.feed_connections_per_ip,
        jwt_keys_dir: args.jwt_keys_dir,
        internal_client_ids: args.internal_client_ids,
        waf_mode: args.waf,
        deny_networks: args.deny_networks.0,
        external_allow: args.external_allow.0,
        internal_allow: args.internal_allow.0,
    }))
}
