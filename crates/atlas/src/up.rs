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
    /// The FIX acceptor (not served yet: FIX comes with its issue).
    #[arg(long, default_value = "127.0.0.1:9878")]
    fix_addr: SocketAddr,
    /// PostgreSQL instead of the embedded SQLite, e.g. postgres://user@host/db.
    #[arg(long, env = "ATLAS_DATABASE_URL")]
    database_url: Option<String>,
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
}

/// Runs the exchange until SIGINT or SIGTERM.
pub fn run(args: UpArgs) -> anyhow::Result<()> {
    eprintln!("atlas up: the FIX acceptor ({}) is not served yet", args.fix_addr);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("atlas-io").build()?;
    runtime.block_on(atlas_services::run(atlas_services::UpConfig {
        data_dir: args.data_dir,
        external_addr: args.external_addr,
        internal_addr: args.internal_addr,
        database_url: args.database_url,
        rate_limit_orders: args.rate_limit_orders,
        rate_limit_queries: args.rate_limit_queries,
        login_failures_per_user: args.login_failures_per_user,
        login_failures_per_ip: args.login_failures_per_ip,
        connections_per_ip: args.connections_per_ip,
    }))
}
