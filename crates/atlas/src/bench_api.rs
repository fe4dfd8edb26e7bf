//! `atlas bench api`: REST order entry end to end — TLS, the gateway, the order
//! service, matching and the durable commit — over keep-alive HTTPS (HTTP/1.1)
//! connections from this machine (a lean hyper client with prepared requests, so
//! the load generator takes little of the CPU it shares with the exchange). Starts
//! its own `atlas up` in process on a
//! fresh data directory (SQLite unless `--database-url`), then measures: orders
//! closed-loop on every connection, an authenticated no-op endpoint the same way
//! (the ratio shows what the exchange adds to the HTTP stack), and orders
//! open-loop at a fixed rate (latency counted from each request's scheduled time,
//! so stalls are not hidden). Prints a live progress line and the histograms.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Options of `atlas bench api`.
#[derive(Args, Debug)]
pub struct ApiArgs {
    /// Keep-alive HTTPS connections, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Orders per second of the open-loop phase.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Data directory for the exchange (a fresh temporary one by default).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL instead of SQLite (an empty database).
    #[arg(long)]
    database_url: Option<String>,
    /// Instead of the usual phases: the cost of the gateway's protections.
    /// Two exchanges in this process, one with every protection on (WAF
    /// signatures, IP allow and deny lists, rate limits counted at a rate never
    /// reached, connection caps) and one with them off, loaded in turns
    /// (on, off, on, off) so drift hits both alike.
    #[arg(long, conflicts_with = "database_url")]
    compare_protections: bool,
}

/// The exchange's configuration for the benchmark, with the gateway's
/// protections on (as `atlas up` runs, rate limits aside: they are counted but
/// set far above the load) or off.
pub(crate) fn config(
    data_dir: &std::path::Path,
    database_url: Option<String>,
    protected: bool,
) -> anyhow::Result<atlas_services::UpConfig> {
    use atlas_services::waf::{WafMode, parse_networks};
    let nets = |s: &str| parse_networks(s).map_err(|e| anyhow::anyhow!(e));
    Ok(atlas_services::UpConfig {
        data_dir: data_dir.to_owned(),
        external_addr: "127.0.0.1:0".parse()?,
        internal_addr: "127.0.0.1:0".parse()?,
        fix_addr: "127.0.0.1:0".parse()?,
        fix_plain_addr: None,
        database: atlas_services::secrets::DatabaseSecrets { url: database_url, ..Default::default() },
        rate_limit_orders: if protected { 1_000_000 } else { 0 },
        rate_limit_queries: if protected { 1_000_000 } else { 0 },
        login_failures_per_user: if protected {
            atlas_services::limits::LOGIN_FAILURES_PER_USER_DEFAULT
        } else {
            0
        },
        login_failures_per_ip: if protected {
            atlas_services::limits::LOGIN_FAILURES_PER_IP_DEFAULT
        } else {
            0
        },
        connections_per_ip: if protected { atlas_services::CONNECTIONS_PER_IP_DEFAULT } else { 0 },
        idle_timeout: atlas_services::IDLE_TIMEOUT_DEFAULT,
        feed_connections_per_ip: atlas_services::marketdata::CONNECTIONS_PER_IP_DEFAULT,
        jwt_keys_dir: None,
        internal_client_ids: atlas_services::INTERNAL_CLIENT_IDS_DEFAULT
            .split(',')
            .map(str::to_owned)
            .collect(),
        waf_mode: if protected { WafMode::Block } else { WafMode::Off },
        deny_networks: if protected { nets("203.0.113.0/24,198.51.100.7")? } else { vec![] },
        external_allow: if protected { nets("127.0.0.0/8,::1/128,10.0.0.0/8")? } else { vec![] },
        internal_allow: nets(atlas_services::waf::INTERNAL_ALLOW_DEFAULT)?,
    })
}

const PASSWORD: &str = "bench-password-0001";

fn client(ca: &[u8], identity: Option<&[u8]>) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca)?)
        .http1_only()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30));
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem)?);
    }
    Ok(b.build()?)
}

async fn call(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut r = c.request(method, &url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url}: {status} {v}");
    }
    Ok(v)
}

/// What [`setup`] made: a broker's access token and an API key of the broker
/// (`key`, `secret`, `passphrase`).
pub(crate) struct Setup {
    pub(crate) token: String,
    pub(crate) api_key: Value,
}

/// Creates the product, a broker, its user and an API key.
pub(crate) async fn setup(
    running: &atlas_services::up::Running,
    data_dir: &std::path::Path,
) -> anyhow::Result<Setup> {
    let ca = std::fs::read(&running.pki.ca_cert)?;
    let mut identity = std::fs::read(&running.pki.admin.cert)?;
    identity.extend(std::fs::read(&running.pki.admin.key)?);
    let internal = format!("https://{}", running.internal_addr);
    let external = format!("https://{}", running.external_addr);
    let admin = client(&ca, Some(&identity))?;
    // The bootstrap password: from the environment, or as `atlas up` generated it.
    let password = match std::env::var("ATLAS_ADMIN_PASSWORD") {
        Ok(p) => p,
        Err(_) => std::fs::read_to_string(data_dir.join("admin-password"))
            .context("reading the generated admin password")?
            .trim()
            .to_owned(),
    };
    let login = admin
        .post(format!("{internal}/atlas/internal/api/auth/token"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await?
        .json::<Value>()
        .await?;
    let token = login["accessToken"].as_str().context("admin login")?.to_owned();
    let post = |path: &str, body: Value| {
        call(&admin, reqwest::Method::POST, format!("{internal}{path}"), &token, Some(body))
    };
    post("/atlas/internal/api/product/equity", json!({"symbol": "BENCH", "tickSize": "0.01"})).await?;
    let broker = post("/atlas/internal/api/participant/broker", json!({"name": "Bench broker"})).await?;
    post(
        &format!("/atlas/internal/api/participant/broker/{}/user", broker["id"]),
        json!({"username": "bench", "password": PASSWORD, "role": "broker"}),
    )
    .await?;
    let api_key =
        post(&format!("/atlas/internal/api/participant/broker/{}/apikey", broker["id"]), json!({})).await?;
    let ext = client(&ca, None)?;
    let login = ext
        .post(format!("{external}/atlas/api/auth/token"))
        .json(&json!({"username": "bench", "password": PASSWORD}))
        .send()
        .await?
        .json::<Value>()
        .await?;
    Ok(Setup { token: login["accessToken"].as_str().context("broker login")?.to_owned(), api_key })
}

#[derive(Clone, Copy)]
pub(crate) enum Load {
    Orders,
    Noop,
}

pub(crate) struct Phase {
    pub(crate) histogram: Histogram<u64>,
    pub(crate) done: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
}

/// Where and as whom the load goes.
pub(crate) struct Target<'a> {
    pub(crate) ca: &'a [u8],
    pub(crate) base: &'a str,
    pub(crate) token: &'a str,
}

/// One keep-alive HTTPS connection of the load generator: a hyper HTTP/1.1
/// client connection over rustls, requests built from prepared parts.
struct Conn {
    send: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
}

/// What every request of a phase shares, prepared once.
struct Prepared {
    tls: tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    host: hyper::header::HeaderValue,
    auth: hyper::header::HeaderValue,
    buy: bytes::Bytes,
    sell: bytes::Bytes,
}

impl Prepared {
    fn new(ca: &[u8], base: &str, token: &str) -> anyhow::Result<Prepared> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca) {
            roots.add(cert?)?;
        }
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let authority = base.trim_start_matches("https://");
        let order = |side: &str| {
            bytes::Bytes::from(
                json!({"productId": 1, "side": side, "type": "LIMIT", "quantity": 1, "price": "100.00"})
                    .to_string(),
            )
        };
        Ok(Prepared {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            addr: authority.parse().context("the bench server's address")?,
            host: hyper::header::HeaderValue::from_str(authority)?,
            auth: hyper::header::HeaderValue::from_str(&format!("Bearer {token}"))?,
            buy: order("BUY"),
            sell: order("SELL"),
        })
    }

    async fn connect(&self) -> anyhow::Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        let tls = self.tls.connect(name, tcp).await?;
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(Conn { send })
    }

    /// One request; true if it answered 2xx (its body read).
    async fn request(&self, c: &mut Conn, load: Load, buy: bool) -> bool {
        use http_body_util::BodyExt;
        use hyper::header;
        let (method, path, body) = match load {
            Load::Orders => (
                hyper::Method::POST,
                "/atlas/api/order",
                if buy { self.buy.clone() } else { self.sell.clone() },
            ),
            Load::Noop => (hyper::Method::GET, "/atlas/api/auth/whoami", bytes::Bytes::new()),
        };
        let mut req = hyper::Request::new(http_body_util::Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = hyper::Uri::from_static(path);
        let h = req.headers_mut();
        h.insert(header::HOST, self.host.clone());
        h.insert(header::AUTHORIZATION, self.auth.clone());
        if matches!(load, Load::Orders) {
            h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        }
        if c.send.ready().await.is_err() {
            return false;
        }
        match c.send.send_request(req).await {
            Ok(resp) => {
                let ok = resp.status().is_success();
                ok && resp.into_body().collect().await.is_ok()
            }
            Err(_) => false,
        }
    }
}

/// Runs one phase on `connections` connections for `seconds`: closed loop when
/// `rate` is 0, otherwise open loop at `rate` requests/s in all.
pub(crate) async fn phase(
    label: &str,
    target: &Target<'_>,
    load: Load,
    connections: usize,
    seconds: u64,
    rate: u64,
) -> anyhow::Result<Phase> {
    let Target { ca, base, token } = *target;
    let prepared = Arc::new(Prepared::new(ca, base, token)?);
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(prepared.connect().await?);
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (i, mut c) in conns.into_iter().enumerate() {
        let (prepared, done, errors) = (prepared.clone(), done.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut h =
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|_| unreachable!());
            let mut k: u64 = 0;
            loop {
                // Open loop: this connection's share of the schedule.
                let scheduled = if let Some(gap_ns) = 1_000_000_000u64.checked_div(rate) {
                    let n = k * connections as u64 + i as u64;
                    let at = start + Duration::from_nanos(n.saturating_mul(gap_ns));
                    if at >= end {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    at
                } else {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    now
                };
                let ok = prepared.request(&mut c, load, (k + i as u64).is_multiple_of(2)).await;
                let ns = u64::try_from(scheduled.elapsed().as_nanos()).unwrap_or(u64::MAX);
                h.saturating_record(ns.max(1));
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                k += 1;
            }
            h
        }));
    }
    // The live progress line.
    let progress = {
        let (done, label) = (done.clone(), label.to_owned());
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = done.load(Ordering::Relaxed);
                eprint!("\r\x1b[K  {label}: {:>8} requests/s, {:>9} done   ", now - last, now);
                let _ = std::io::stderr().flush();
                last = now;
            }
        })
    };
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for t in tasks {
        histogram.add(t.await?)?;
    }
    progress.abort();
    eprint!("\r\x1b[K");
    Ok(Phase {
        histogram,
        done: done.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    })
}

fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

pub(crate) fn report(label: &str, p: &Phase) -> f64 {
    let per_s = p.done as f64 / p.elapsed.as_secs_f64();
    let h = &p.histogram;
    println!(
        "  {label:<34} {per_s:>9.0}/s  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} errors)",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        p.errors
    );
    per_s
}

/// Runs the benchmark.
pub fn run(args: ApiArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; figures are meaningless (use --release)");
    }
    if args.connections == 0 || args.seconds == 0 {
        bail!("--connections and --seconds must be positive");
    }
    let tmp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let config = config(&data_dir, args.database_url.clone(), true)?;
    // The exchange on its own runtime (two workers, like `atlas up` on this
    // machine); the load on another.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("atlas-io")
        .enable_all()
        .build()?;
    let running = server.block_on(atlas_services::up::start(config))?;
    if args.compare_protections {
        let result = compare_protections(&args, &server, &running, &data_dir);
        server.block_on(running.shutdown())?;
        return result;
    }
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench")
        .enable_all()
        .build()?;
    let backend = if args.database_url.is_some() {
        "PostgreSQL".to_owned()
    } else {
        format!("SQLite in {}", data_dir.display())
    };
    println!(
        "atlas bench api: REST order entry over HTTPS (HTTP/1.1 keep-alive), {backend}, {} connections, {} s per phase",
        args.connections, args.seconds
    );
    let result = client_rt.block_on(async {
        let token = setup(&running, &data_dir).await?.token;
        let ca = std::fs::read(&running.pki.ca_cert)?;
        let base = format!("https://{}", running.external_addr);
        let t = Target { ca: &ca, base: &base, token: &token };
        let c = args.connections;
        // Warm-up: connections, caches, the book.
        phase("warm-up", &t, Load::Orders, c, 1, 0).await?;
        let orders = phase("orders, closed loop", &t, Load::Orders, c, args.seconds, 0).await?;
        let noop = phase("whoami, closed loop", &t, Load::Noop, c, args.seconds, 0).await?;
        let open = phase("orders, open loop", &t, Load::Orders, c, args.seconds, args.rate).await?;
        let o = report("orders, closed loop", &orders);
        let n = report("no-op (whoami), closed loop", &noop);
        println!("  ratio orders / no-op: {:.2}", o / n.max(1.0));
        report(&format!("orders, open loop at {}/s", args.rate), &open);
        Ok::<_, anyhow::Error>(())
    });
    server.block_on(running.shutdown())?;
    result
}

/// `--compare-protections`: order entry with the gateway's protections on
/// (`running`) and off (a second exchange), in alternating phases.
fn compare_protections(
    args: &ApiArgs,
    server: &tokio::runtime::Runtime,
    protected: &atlas_services::up::Running,
    protected_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let bare_tmp = tempfile::tempdir()?;
    let bare = server.block_on(atlas_services::up::start(config(bare_tmp.path(), None, false)?))?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench")
        .enable_all()
        .build()?;
    println!(
        "atlas bench api --compare-protections: orders over HTTPS, SQLite, {} connections, 4 alternating phases of {} s",
        args.connections, args.seconds
    );
    let result = client_rt.block_on(async {
        let mut targets = Vec::new();
        for (running, dir) in [(protected, protected_dir), (&bare, bare_tmp.path())] {
            let token = setup(running, dir).await?.token;
            let ca = std::fs::read(&running.pki.ca_cert)?;
            targets.push((format!("https://{}", running.external_addr), ca, token));
        }
        let c = args.connections;
        let mut totals = [(0u64, Duration::ZERO), (0u64, Duration::ZERO)];
        let mut hists = Vec::new();
        for (i, (base, ca, token)) in targets.iter().enumerate() {
            let t = Target { ca, base, token };
            phase(if i == 0 { "warm-up, protected" } else { "warm-up, bare" }, &t, Load::Orders, c, 1, 0)
                .await?;
        }
        for round in 0..2 {
            for (i, (base, ca, token)) in targets.iter().enumerate() {
                let t = Target { ca, base, token };
                let label = if i == 0 { "protections on" } else { "protections off" };
                let p = phase(label, &t, Load::Orders, c, args.seconds, 0).await?;
                totals[i].0 += p.done;
                totals[i].1 += p.elapsed;
                if round == 1 {
                    hists.push((label, p));
                }
            }
        }
        for (label, p) in &hists {
            report(&format!("orders, {label} (last phase)"), p);
        }
        let rate = |(done, elapsed): (u64, Duration)| done as f64 / elapsed.as_secs_f64().max(1e-9);
        let (on, off) = (rate(totals[0]), rate(totals[1]));
        println!("  orders/s over both phases: protections on {on:.0}/s, off {off:.0}/s");
        println!("  cost of the protections: {:.1}% slower", (1.0 - on / off.max(1.0)) * 100.0);
        Ok::<_, anyhow::Error>(())
    });
    server.block_on(bare.shutdown())?;
    result
}
