//! TLS listeners: rustls server configurations (TLS 1.2 and 1.3 only, the ring
//! provider's modern suites) and the accept loop that serves an axum router on
//! each connection, HTTP/1.1 or HTTP/2 by ALPN.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::pki::CertFiles;

/// Open connections per listener, at most; beyond it new ones are closed at once.
pub const CONNECTIONS_MAX: usize = 4_096;
/// A TLS handshake must finish within this.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connections open at once from one client IP, per listener.
pub const CONNECTIONS_PER_IP_DEFAULT: u32 = 256;
/// A request's headers must arrive within this (slow clients, "slowloris").
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Headers per request, at most (more: 431; the gateway checks HTTP/2's).
const HEADERS_MAX: usize = crate::gateway::HEADERS_MAX;
/// Bytes of a request's head (line and headers) HTTP/1 buffers, at most.
const HEAD_BYTES_MAX: usize = 16 * 1024;
/// HTTP/2 streams per connection at once.
const H2_STREAMS_MAX: u32 = 128;

/// Connections open per client IP, with a cap.
pub(crate) struct PerIp {
    max: u32,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>,
}

/// One counted connection; uncounted when dropped.
pub(crate) struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: std::net::IpAddr,
}

impl PerIp {
    /// A cap of `max` connections per IP (0: none).
    pub(crate) fn new(max: u32) -> Arc<PerIp> {
        Arc::new(PerIp { max, open: Default::default() })
    }

    pub(crate) fn take(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<IpSlot> {
        if self.max == 0 {
            return Some(IpSlot { per_ip: self.clone(), ip });
        }
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot { per_ip: self.clone(), ip })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if self.per_ip.max == 0 {
            return;
        }
        let mut open = self.per_ip.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(files: &CertFiles) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading {}", files.key.display()))?;
    Ok((certs, key))
}

fn builder() -> anyhow::Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>> {
    Ok(ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?)
}

fn finish(mut config: ServerConfig) -> Arc<ServerConfig> {
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// How often a listener looks at its certificate files (on a handshake).
const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(1);

fn certified(files: &CertFiles) -> anyhow::Result<rustls::sign::CertifiedKey> {
    let (certs, key) = load(files)?;
    let key = provider().key_provider.load_private_key(key)?;
    let certified = rustls::sign::CertifiedKey::new(certs, key);
    certified.keys_match().context("the certificate and the key do not belong together")?;
    Ok(certified)
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A listener's certificate, served from its files and re-read when they
/// change (looked at, at most once a second, when a handshake comes), so a
/// rotated certificate takes effect without a restart; established connections
/// keep the one they started with. A pair that does not load (half-written
/// during a rotation, or a key that does not match) leaves the current one in
/// place until the files are right.
#[derive(Debug)]
struct Reloading {
    files: CertFiles,
    state: std::sync::Mutex<ReloadState>,
}

#[derive(Debug)]
struct ReloadState {
    current: Arc<rustls::sign::CertifiedKey>,
    stamps: (Option<std::time::SystemTime>, Option<std::time::SystemTime>),
    checked: std::time::Instant,
}

impl Reloading {
    fn new(files: &CertFiles) -> anyhow::Result<Arc<Reloading>> {
        let stamps = (modified(&files.cert), modified(&files.key));
        let current = Arc::new(certified(files)?);
        Ok(Arc::new(Reloading {
            files: files.clone(),
            state: std::sync::Mutex::new(ReloadState { current, stamps, checked: std::time::Instant::now() }),
        }))
    }
}

impl rustls::server::ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if st.checked.elapsed() >= RELOAD_CHECK_EVERY {
            st.checked = std::time::Instant::now();
            let stamps = (modified(&self.files.cert), modified(&self.files.key));
            if stamps != st.stamps
                && let Ok(fresh) = certified(&self.files)
            {
                st.current = Arc::new(fresh);
                st.stamps = stamps;
            }
        }
        Some(st.current.clone())
    }
}

/// The external listener's configuration: server authentication only.
pub fn external(files: &CertFiles) -> anyhow::Result<Arc<ServerConfig>> {
    Ok(finish(builder()?.with_no_client_auth().with_cert_resolver(Reloading::new(files)?)))
}

/// The internal listener's configuration: clients must present a certificate
/// issued by the CA in `ca_cert` whose URI identity matches one of
/// `client_ids` (`spiffe://atlas/user/*`: a trailing `*` matches any rest), so
/// a valid certificate of a service or listener not on the list is refused.
pub fn internal(
    files: &CertFiles,
    ca_cert: &Path,
    client_ids: &[String],
) -> anyhow::Result<Arc<ServerConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(ca_cert)? {
        roots.add(ca?)?;
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
    let verifier = Arc::new(PinnedClients { inner, allowed: client_ids.to_vec() });
    Ok(finish(builder()?.with_client_cert_verifier(verifier).with_cert_resolver(Reloading::new(files)?)))
}

/// The URI names of a certificate.
pub fn uri_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some((*u).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Does an identity match a pattern (exact, or a prefix ending in `*`)?
pub fn identity_matches(pattern: &str, id: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => id.starts_with(prefix),
        None => pattern == id,
    }
}

/// Client certificates: the CA's checks, then the identity pin.
#[derive(Debug)]
struct PinnedClients {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    allowed: Vec<String>,
}

impl rustls::server::danger::ClientCertVerifier for PinnedClients {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let ids = uri_names(end_entity);
        if ids.iter().any(|id| self.allowed.iter().any(|p| identity_matches(p, id))) {
            Ok(verified)
        } else {
            tracing::warn!(identities = ?ids, "internal listener: client certificate identity not admitted");
            metrics::counter!("atlas_tls_client_identity_refused_total").increment(1);
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Default: a connection with no bytes either way for this long is closed.
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(120);

/// When a connection last moved a byte (milliseconds since it opened).
struct Activity {
    opened: std::time::Instant,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity { opened: std::time::Instant::now(), last_ms: Default::default() }
    }
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `timeout` (never, for a zero timeout).
    async fn idle(&self, timeout: Duration) {
        if timeout.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let last = Duration::from_millis(self.last_ms.load(std::sync::atomic::Ordering::Relaxed));
            let quiet = self.opened.elapsed().saturating_sub(last);
            if quiet >= timeout {
                return;
            }
            tokio::time::sleep(timeout - quiet).await;
        }
    }
}

/// A stream that notes its activity.
struct Tracked<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The identities the internal listener admits by default: people (operators'
/// and admins' client certificates) and services.
pub const INTERNAL_CLIENT_IDS_DEFAULT: &str = "spiffe://atlas/user/*,spiffe://atlas/service/*";

/// The kernel's send buffer of each accepted connection (Linux doubles it for
/// its bookkeeping). Left to itself it grows to `tcp_wmem`'s maximum, 4 MiB,
/// behind a client that stops reading: a thousand stalled feed subscribers
/// would pin 4 GiB of kernel memory, and the feed's slow-consumer cut-off
/// would come only after megabytes. 64 KiB still fills a 10 ms path at 50 Mbit/s.
const SEND_BUFFER_BYTES: usize = 64 * 1024;

/// The client's address, for per-IP limits.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::IpAddr);

/// Serves `app` over TLS on `listener` until `shutdown` turns true: at most
/// `CONNECTIONS_MAX` connections, `connections_per_ip` from one address (0: no
/// cap), bounded request heads and a deadline for them.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    connections_per_ip: u32,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let per_ip = PerIp::new(connections_per_ip);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(_) => {
                    // Out of descriptors, say: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(tcp);
            continue;
        };
        let Some(slot) = per_ip.take(peer.ip()) else {
            drop(tcp);
            continue;
        };
        let (acceptor, app, mut shutdown) = (acceptor.clone(), app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let (_permit, _slot) = (permit, slot);
            let _ = tcp.set_nodelay(true);
            let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER_BYTES);
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                return;
            };
            // The peer goes into each request's extensions (for per-IP limits);
            // re-layering the router per connection would rebuild every route.
            let ip = Peer(peer.ip());
            let service = tower::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ip);
                tower::ServiceExt::oneshot(app.clone(), req)
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_headers(HEADERS_MAX)
                .max_buf_size(HEAD_BYTES_MAX);
            builder
                .http2()
                .timer(hyper_util::rt::TokioTimer::new())
                .max_concurrent_streams(H2_STREAMS_MAX)
                .max_header_list_size(HEAD_BYTES_MAX as u32);
            let activity = Arc::new(Activity::default());
            let stream = Tracked { io: stream, activity: activity.clone() };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
                _ = activity.idle(idle_timeout) => {
                    // Nothing read or written for the whole timeout: close it
                    // (HTTP/2 says GOAWAY first), freeing the slot.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}
