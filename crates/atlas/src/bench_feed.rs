//! `atlas bench feed`: WebSocket fan-out under order load. Starts an in-process
//! `atlas up`, connects `--subscribers` WebSocket clients to `/atlas/api/ws`
//! (level2 and matches of one product), then sends orders open loop at
//! `--rate` for `--seconds` over one FIX session (a market maker's flow:
//! resting orders, cancels, and one crossing order in `--cross-every`; see
//! `bench_fix::market_flow`) and measures, for every l2update and match each
//! subscriber receives, the publish lag: receipt time minus the message's
//! `time` (the command's journal time, stamped when it was sequenced, so the
//! lag includes matching, the commit and the fan-out). Also reports the
//! process's memory before and after, and the subscribers dropped as too slow.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;

use crate::bench_api::{config, setup};

/// Options of `atlas bench feed`.
#[derive(Args, Debug)]
pub struct FeedArgs {
    /// WebSocket subscribers (level2 and matches of one product each).
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    /// Orders per second sent while they listen (open loop).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Seconds of order load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// One order message in this many crosses the spread and trades; the
    /// others rest or cancel (2: every other one trades, no cancels).
    #[arg(long, default_value_t = 20)]
    cross_every: usize,
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The `"time":"…"` of a feed message, in Unix nanoseconds.
fn message_time_ns(text: &str) -> Option<i64> {
    let start = text.find("\"time\":\"")? + 8;
    let end = start + text[start..].find('"')?;
    let t = time::OffsetDateTime::parse(&text[start..end], &time::format_description::well_known::Rfc3339)
        .ok()?;
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

struct Totals {
    lag: std::sync::Mutex<Histogram<u64>>,
    messages: AtomicU64,
    /// Feed messages received so far, all subscribers (updated live).
    delivered: AtomicU64,
    dropped: AtomicU64,
    closed: AtomicU64,
}

/// Runs the benchmark.
pub fn run(args: FeedArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; figures are meaningless (use --release)");
    }
    let tmp = tempfile::tempdir()?;
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("atlas-io")
        .enable_all()
        .build()?;
    let mut cfg = config(tmp.path(), None, true)?;
    // A thousand subscribers come from one address here.
    cfg.connections_per_ip = 0;
    cfg.feed_connections_per_ip = 0;
    cfg.fix_plain_addr = Some("127.0.0.1:0".parse()?);
    let running = server.block_on(atlas_services::up::start(cfg))?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench")
        .enable_all()
        .build()?;
    println!(
        "atlas bench feed: {} WebSocket subscribers (level2 + matches), orders over FIX open loop at {}/s for {} s \
         (one in {} crosses), SQLite",
        args.subscribers,
        args.rate,
        args.seconds,
        args.cross_every.max(2)
    );
    let rss_start = rss_mib();
    let result = client_rt.block_on(async {
        let setup = setup(&running, tmp.path()).await?;
        let creds = crate::bench_fix::Creds::of(&setup)?;
        let ca = std::fs::read(&running.pki.ca_cert)?;
        let totals = Arc::new(Totals {
            lag: std::sync::Mutex::new(Histogram::new_with_bounds(1_000, 600_000_000_000, 3)?),
            messages: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        });
        let tls = tls_connector(&ca)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::with_capacity(args.subscribers);
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(args.subscribers.max(1));
        for _ in 0..args.subscribers {
            let (tls, addr, totals, stop, ready) =
                (tls.clone(), running.external_addr, totals.clone(), stop.clone(), ready_tx.clone());
            tasks.push(tokio::spawn(async move { subscriber(tls, addr, totals, stop, ready).await }));
        }
        drop(ready_tx);
        let mut ready = 0;
        while ready < args.subscribers {
            match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
                Ok(Some(())) => ready += 1,
                _ => break,
            }
        }
        let rss_subscribed = rss_mib();
        println!("  {ready} subscribers have their snapshots; process memory {rss_start:.0} → {rss_subscribed:.0} MiB");
        let fix = running.fix_plain_addr.context("the plaintext FIX listener")?;
        let delivered_before = totals.delivered.load(Ordering::Relaxed);
        let flow = crate::bench_fix::market_flow(fix, &creds, args.rate, args.seconds, args.cross_every).await?;
        // Let the last messages arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Release);
        let rss_end = rss_mib();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let delivered = totals.delivered.load(Ordering::Relaxed) - delivered_before;
        let secs = flow.elapsed.as_secs_f64();
        println!(
            "  order flow: {} messages ({} crossing) in {:.2} s = {:.0}/s; {} rejected, {} cancels rejected (order already filled)",
            flow.sent,
            flow.crossing,
            secs,
            flow.sent as f64 / secs,
            flow.rejected,
            flow.cancel_rejected
        );
        crate::bench_fix::print_histogram("order → ack", &flow.histogram);
        println!(
            "  feed messages delivered: {delivered} = {:.0}/s in all, {:.0}/s per subscriber",
            delivered as f64 / secs,
            delivered as f64 / secs / ready.max(1) as f64
        );
        let lag = totals.lag.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let ms = |ns: u64| format!("{:.2} ms", ns as f64 / 1e6);
        println!(
            "  publish lag over {} messages: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            totals.messages.load(Ordering::Relaxed),
            ms(lag.value_at_quantile(0.5)),
            ms(lag.value_at_quantile(0.9)),
            ms(lag.value_at_quantile(0.99)),
            ms(lag.value_at_quantile(0.999)),
            ms(lag.max())
        );
        println!(
            "  subscribers dropped as too slow: {}; closed otherwise: {}; process memory at the end {rss_end:.0} MiB",
            totals.dropped.load(Ordering::Relaxed),
            totals.closed.load(Ordering::Relaxed)
        );
        Ok::<_, anyhow::Error>(())
    });
    server.block_on(running.shutdown())?;
    result
}

fn tls_connector(ca: &[u8]) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca) {
        roots.add(cert?)?;
    }
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn subscriber(
    tls: tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    totals: Arc<Totals>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let stream = tls.connect(name, tcp).await?;
    // A 16 KiB read buffer (one TLS record) rather than tungstenite's 128 KiB,
    // which it zeroes before every read: the subscribers share the CPU with the
    // exchange under test, so their cost is kept down.
    let config =
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(16 * 1024);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        format!("wss://{addr}/atlas/api/ws"),
        stream,
        Some(config),
    )
    .await
    .context("WebSocket handshake")?;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        r#"{"type":"subscribe","channels":["level2","matches"],"productIds":[1]}"#,
    ))
    .await?;
    let mut local = Histogram::<u64>::new_with_bounds(1_000, 600_000_000_000, 3)?;
    let mut count = 0u64;
    let mut announced = false;
    while !stop.load(Ordering::Acquire) {
        let msg = match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(_)) | None) => {
                totals.closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Err(_) => continue,
        };
        let tokio_tungstenite::tungstenite::Message::Text(text) = msg else { continue };
        let text = text.as_str();
        if text.starts_with(r#"{"type":"snapshot""#) || text.contains(r#""type":"snapshot""#) {
            if !announced {
                announced = true;
                let _ = ready.send(()).await;
            }
            continue;
        }
        if text.contains(r#""type":"error""#) {
            if text.contains("slow consumer") {
                totals.dropped.fetch_add(1, Ordering::Relaxed);
            }
            break;
        }
        if let Some(t) = message_time_ns(text) {
            let lag = (now_ns() - t).max(1_000);
            let _ = local.record(u64::try_from(lag).unwrap_or(u64::MAX).min(600_000_000_000));
            count += 1;
            if count.is_multiple_of(256) {
                totals.delivered.fetch_add(256, Ordering::Relaxed);
            }
        }
    }
    totals.messages.fetch_add(count, Ordering::Relaxed);
    totals.delivered.fetch_add(count % 256, Ordering::Relaxed);
    totals.lag.lock().unwrap_or_else(std::sync::PoisonError::into_inner).add(&local)?;
    Ok(())
}
