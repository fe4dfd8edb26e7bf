//! The FIX 4.4 order-entry acceptor: a TLS listener (and, for tools without
//! TLS, an optional plaintext one that only binds loopback addresses), one task
//! per connection running the session layer (`session.rs`), a persistent store
//! per session (`store.rs`), and execution reports built from what the
//! sequencer commits (`exec.rs`). Orders go through the same risk checks,
//! sequencer and tables as REST; a session is one API key.

pub mod exec;
pub mod session;
pub mod store;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::app::App;

/// The acceptor's TargetCompID.
pub const COMP_ID: &str = "ATLAS";
/// FIX connections open at once, at most.
pub const CONNECTIONS_MAX: usize = 1_024;

/// What the sessions share.
pub struct Acceptor {
    pub(crate) app: Arc<App>,
    /// Where the session stores live (`DATA_DIR/fix`).
    pub(crate) root: PathBuf,
    /// SenderCompIDs logged on now (one connection per session).
    pub(crate) live: Mutex<HashSet<String>>,
}

impl Acceptor {
    /// An acceptor keeping its sessions under `root`.
    pub fn new(app: Arc<App>, root: PathBuf) -> Arc<Acceptor> {
        Arc::new(Acceptor { app, root, live: Mutex::default() })
    }
}

/// Refuses a plaintext FIX address that is not loopback.
pub fn check_plaintext_addr(addr: SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        anyhow::bail!("the plaintext FIX listener only binds loopback addresses (got {addr}); use TLS");
    }
    Ok(())
}

/// Accepts FIX connections on `listener` (TLS if `tls` is given) until
/// `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    acceptor: Arc<Acceptor>,
    connections_per_ip: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = tls.map(TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let per_ip = crate::tls::PerIp::new(connections_per_ip);
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        // Reap finished sessions so the set stays bounded.
        while sessions.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
        let Some(slot) = per_ip.take(peer.ip()) else { continue };
        let (tls, acceptor, shutdown) = (tls.clone(), acceptor.clone(), shutdown.clone());
        sessions.spawn(async move {
            let (_permit, _slot) = (permit, slot);
            let _ = tcp.set_nodelay(true);
            match tls {
                Some(tls) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, tls.accept(tcp)).await
                    else {
                        return;
                    };
                    session::run(acceptor, stream, peer.ip(), shutdown).await;
                }
                None => session::run(acceptor, tcp, peer.ip(), shutdown).await,
            }
        });
    }
    // Sessions say Logout on shutdown; give them a moment to.
    let _ =
        tokio::time::timeout(Duration::from_secs(5), async { while sessions.join_next().await.is_some() {} })
            .await;
}
