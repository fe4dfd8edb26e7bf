//! `atlas bench feed`: WebSocket fan-out under order load. Starts an in-process
//! `atlas up`, connects `--subscribers` WebSocket clients to `/atlas/api/ws`
//! (level2 and matches of one product), then sends orders open loop at
//! `--rate` for `--seconds` over one FIX session (a market maker's flow:
//! resting orders, cancels, and one crossing order in `--cross-every`; see
//! `bench_fix::market_flow`) and measures, for every l2update and match each
//! subscriber receives, two lags:
//! - the publish lag: receipt time minus the moment the shard published the
//!   message's batch, once committed (`MarketBatch::published_ns`, read by a
//!   thread on the in-process feed and looked up by the message's level2
//!   sequence or trade id): the fan-out alone;
//! - end to end: receipt time minus the message's `time` (the command's journal
//!   time, stamped when it was sequenced), so it also holds matching and the
//!   durable commit, with the disk's stalls.
//!
//! Also reports the process's memory before and after, and the subscribers
//! dropped as too slow.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;

use crate::bench_api::{config, setup};

/// The product the subscribers follow (the setup's first).
const PRODUCT: atlas_types::ProductId = atlas_types::ProductId(1);

/// Options of `atlas bench feed`.
#[derive(Args, Debug)]
pub struct FeedArgs {
    /// WebSocket subscribers (level2 and matches of one product each; at
    /// most 10,000: each is a connection, two file descriptors and its
    /// histograms, in this one process).
    #[arg(long, default_value_t = 1_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=10_000))]
    subscribers: usize,
    /// Of those, how many (spread evenly) read every message and measure its
    /// lag; the others take the same stream over TLS and only count its bytes,
    /// so that the load generator, which shares this machine's CPUs with the
    /// exchange it measures, takes as little of them as it can.
    #[arg(long, default_value_t = 100)]
    measured: usize,
    /// Orders per second sent while they listen (open loop).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=crate::bench_fix::RATE_MAX))]
    rate: u64,
    /// Seconds of order load.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=crate::bench_fix::SECONDS_MAX))]
    seconds: u64,
    /// One order message in this many crosses the spread and trades; the
    /// others rest or cancel (2: every other one trades, no cancels).
    #[arg(long, default_value_t = 20)]
    cross_every: usize,
    /// Send the order flow in bursts this many microseconds apart (each order
    /// still timed from its own due time) instead of each order when due.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    burst_us: u64,
    /// The subscribers that only take the bytes read what has arrived this
    /// often (0: as soon as anything arrives). Each still takes every byte, in
    /// fewer, larger reads, as a subscriber on another machine would find them
    /// gathered in its socket buffer; it is their wake-ups on this one that
    /// take CPU from the exchange. At most 1,000 ms: the server cuts off a
    /// subscriber whose socket stops taking its writes.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=1_000))]
    drain_every_ms: u64,
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

/// The raw value of a top-level field of a feed message (a string's content
/// or a number's digits). Searched from the end: the fields read here follow
/// the message's one variable-length field (`changes`), and the subscribers
/// share the CPU with the exchange under test, so each message costs little.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.rfind(key)? + key.len();
    let rest = text[at..].strip_prefix(':')?;
    match rest.strip_prefix('"') {
        Some(s) => s.split('"').next(),
        None => rest.split([',', '}']).next(),
    }
}

/// Unix nanoseconds of an RFC 3339 UTC time as the feed writes it
/// (`2026-11-23T02:12:37.123456Z`, 0 to 9 fraction digits), without a time
/// library's general parser.
fn rfc3339_utc_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let (mut i, mut frac, mut digits) = (19, 0i64, 0u32);
    if b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() && digits < 9 {
            frac = frac * 10 + i64::from(b[i] - b'0');
            digits += 1;
            i += 1;
        }
        frac *= 10i64.pow(9 - digits);
    }
    if &b[i..] != b"Z" || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from 1970-01-01 in the proleptic Gregorian calendar, counting
    // years from March so that the leap day ends them.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(((days * 86_400 + h * 3_600 + mi * 60 + sec) * 1_000_000_000) + frac)
}

/// When the shard published each level2 sequence number and each trade id
/// of the run (0: not seen yet), filled by a thread reading the in-process
/// feed as the hub does.
struct Published {
    level2: Vec<AtomicI64>,
    trades: Vec<AtomicI64>,
}

impl Published {
    fn new(slots: usize) -> Published {
        let slots = || (0..slots).map(|_| AtomicI64::new(0)).collect();
        Published { level2: slots(), trades: slots() }
    }

    fn get(&self, kind: Kind, key: u64) -> i64 {
        let v = match kind {
            Kind::Level2 => &self.level2,
            Kind::Match => &self.trades,
        };
        usize::try_from(key).ok().and_then(|k| v.get(k)).map_or(0, |a| a.load(Ordering::Relaxed))
    }

    /// Reads the feed until it closes (the exchange shut down).
    fn record(&self, mut feed: atlas_journal::market::MarketFeed, product: atlas_types::ProductId) {
        use atlas_journal::market::MarketEvent;
        let put = |v: &Vec<AtomicI64>, key: u64, at: i64| {
            if let Some(a) = usize::try_from(key).ok().and_then(|k| v.get(k)) {
                a.store(at, Ordering::Relaxed);
            }
        };
        loop {
            let batch = match feed.blocking_recv() {
                Ok(b) => b,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            for ev in &batch.events {
                match ev {
                    MarketEvent::Levels(u) if u.product == product => {
                        put(&self.level2, u.sequence, batch.published_ns)
                    }
                    MarketEvent::Match(m) if m.product == product => {
                        put(&self.trades, m.trade_id.0, batch.published_ns)
                    }
                    _ => {}
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Level2,
    Match,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Lags above this are recorded as this.
const LAG_MAX_NS: u64 = 60_000_000_000;

/// A lag histogram: 1 µs to a minute, two significant figures (±1%). Each
/// subscriber keeps two, so they are kept small (~20 KB each): with three
/// figures over ten minutes, a thousand subscribers' pairs took ~350 MB.
fn lag_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1_000, LAG_MAX_NS, 2)?)
}

struct Totals {
    /// End to end: from the command's journal time.
    lag: std::sync::Mutex<Histogram<u64>>,
    /// From the batch's publication.
    publish_lag: std::sync::Mutex<Histogram<u64>>,
    /// Messages whose publication the recording thread never saw.
    unmatched: AtomicU64,
    published: Published,
    /// Feed messages received so far by the measuring subscribers (updated live).
    delivered: AtomicU64,
    /// Bytes received so far by all subscribers after their snapshots (TLS
    /// plaintext: whole WebSocket frames, or the measuring subscribers' feed
    /// messages), updated live.
    bytes: AtomicU64,
    dropped: AtomicU64,
    closed: AtomicU64,
}

/// Runs the benchmark.
pub fn run(args: FeedArgs) -> anyhow::Result<()> {
    // Refused before anything starts.
    crate::bench_fix::planned_orders(args.rate, args.seconds)?;
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
        "atlas bench feed: {} WebSocket subscribers (level2 + matches; {} measure, the others read {}), orders over FIX \
         open loop at {}/s ({}) for {} s (one in {} crosses), SQLite",
        args.subscribers,
        args.measured.min(args.subscribers),
        if args.drain_every_ms == 0 {
            "as soon as anything arrives".to_owned()
        } else {
            format!("every {} ms", args.drain_every_ms)
        },
        args.rate,
        if args.burst_us == 0 {
            "each sent when due".to_owned()
        } else {
            format!("in bursts every {} µs", args.burst_us)
        },
        args.seconds,
        args.cross_every.max(2)
    );
    let rss_start = rss_mib();
    let result = client_rt.block_on(async {
        let setup = setup(&running, tmp.path()).await?;
        let creds = crate::bench_fix::Creds::of(&setup)?;
        let ca = std::fs::read(&running.pki.ca_cert)?;
        let totals = Arc::new(Totals {
            lag: std::sync::Mutex::new(lag_histogram()?),
            publish_lag: std::sync::Mutex::new(lag_histogram()?),
            unmatched: AtomicU64::new(0),
            // Level2 numbers and trade ids start near 0 in a new exchange and
            // grow by at most one per order message.
            published: Published::new(usize::try_from(args.rate.saturating_mul(args.seconds))?.saturating_add(1 << 20)),
            delivered: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        });
        let tls = tls_connector(&ca)?;
        {
            let (totals, feed) = (totals.clone(), running.market_feed());
            std::thread::Builder::new()
                .name("bench-published".into())
                .spawn(move || totals.published.record(feed, PRODUCT))?;
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::with_capacity(args.subscribers);
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(args.subscribers.max(1));
        // At least one measures, if there are any subscribers at all.
        let measured = args.measured.clamp(1, args.subscribers.max(1)).min(args.subscribers);
        let every = args.subscribers.checked_div(measured).unwrap_or(1).max(1);
        for i in 0..args.subscribers {
            let (tls, addr, totals, stop, ready) =
                (tls.clone(), running.external_addr, totals.clone(), stop.clone(), ready_tx.clone());
            let measures = i % every == 0 && i / every < measured;
            let drain_every = Duration::from_millis(args.drain_every_ms);
            tasks.push(tokio::spawn(async move {
                subscriber(tls, addr, totals, stop, ready, measures, drain_every).await
            }));
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
        let bytes_before = totals.bytes.load(Ordering::Relaxed);
        let cpu = crate::bench_fix::Cpu::now();
        let inside = crate::bench_fix::AckBuckets::now();
        let flow = crate::bench_fix::market_flow(fix, &creds, args.rate, args.seconds, args.cross_every, args.burst_us * 1_000)
            .await?;
        let cpu_after = crate::bench_fix::Cpu::now();
        let inside = crate::bench_fix::AckBuckets::now().since(&inside);
        // Let the last messages arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Release);
        let rss_end = rss_mib();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let delivered = totals.delivered.load(Ordering::Relaxed) - delivered_before;
        let bytes = totals.bytes.load(Ordering::Relaxed) - bytes_before;
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
        crate::bench_fix::print_histogram("of which the sender's lateness (due → written)", &flow.sender_late);
        inside.print();
        // The subscribers' threads count as the client's.
        crate::bench_fix::Cpu::print_between(cpu, cpu_after, flow.sent, flow.elapsed);
        println!(
            "  feed delivered: {:.1} MB/s to all {ready} subscribers; {:.0} messages/s to each of the {measured} measuring",
            bytes as f64 / secs / 1e6,
            delivered as f64 / secs / measured.max(1) as f64
        );
        let ms = |ns: u64| format!("{:.2} ms", ns as f64 / 1e6);
        let show = |name: &str, h: &std::sync::Mutex<Histogram<u64>>| {
            let h = h.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            println!(
                "  {name} over {} messages: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                h.len(),
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.9)),
                ms(h.value_at_quantile(0.99)),
                ms(h.value_at_quantile(0.999)),
                ms(h.max())
            );
        };
        show("publish lag (commit → subscriber)", &totals.publish_lag);
        show("end to end (sequenced → subscriber)", &totals.lag);
        let unmatched = totals.unmatched.load(Ordering::Relaxed);
        if unmatched > 0 {
            println!("  ({unmatched} messages whose publication time was not recorded are left out of the publish lag)");
        }
        println!(
            "  subscribers dropped as too slow: {}; closed otherwise: {}; process memory at the end {rss_end:.0} MiB",
            totals.dropped.load(Ordering::Relaxed),
            totals.closed.load(Ordering::Relaxed)
        );
        // Most of the growth is the day's state, not the feed: every order's
        // ClOrdID is kept until the end of day (held by the engine thread and
        // by the journal's copy for snapshots), up to its limit.
        println!(
            "  the day's client order ids: {} of at most {}",
            running.client_order_ids(),
            atlas_journal::CLIENT_ORDER_IDS_MAX
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
    measures: bool,
    drain_every: Duration,
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
    let mut local = lag_histogram()?;
    let mut publish = local.clone();
    // Messages that arrived before the recording thread saw their batch:
    // looked up again at the end.
    let mut pending: Vec<(Kind, u64, i64)> = Vec::new();
    let clamp = |ns: i64| u64::try_from(ns.max(1_000)).unwrap_or(0).min(LAG_MAX_NS);
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut announced = false;
    let mut check = tokio::time::interval(Duration::from_millis(200));
    while !stop.load(Ordering::Acquire) {
        // One timer for the whole run, not one per message.
        let msg = tokio::select! {
            biased;
            m = ws.next() => m,
            _ = check.tick() => continue,
        };
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(_)) | None => {
                totals.closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
        };
        let tokio_tungstenite::tungstenite::Message::Text(text) = msg else { continue };
        let now = now_ns();
        let text = text.as_str();
        bytes += text.len() as u64;
        let (kind, key) = match field(text, r#""type""#) {
            Some("l2update") => (Kind::Level2, r#""sequence""#),
            Some("match") => (Kind::Match, r#""tradeId""#),
            Some("snapshot") => {
                if !announced {
                    announced = true;
                    let _ = ready.send(()).await;
                    if !measures {
                        return drain(ws.get_mut(), &totals, &stop, &mut check, drain_every).await;
                    }
                }
                continue;
            }
            Some("error") => {
                if text.contains("slow consumer") {
                    totals.dropped.fetch_add(1, Ordering::Relaxed);
                }
                break;
            }
            _ => continue,
        };
        let (Some(t), Some(key)) = (
            field(text, r#""time""#).and_then(rfc3339_utc_ns),
            field(text, key).and_then(|k| k.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let _ = local.record(clamp(now - t));
        match totals.published.get(kind, key) {
            0 => pending.push((kind, key, now)),
            at => {
                let _ = publish.record(clamp(now - at));
            }
        }
        count += 1;
        if count.is_multiple_of(256) {
            totals.delivered.fetch_add(256, Ordering::Relaxed);
            totals.bytes.fetch_add(std::mem::take(&mut bytes), Ordering::Relaxed);
        }
    }
    totals.delivered.fetch_add(count % 256, Ordering::Relaxed);
    totals.bytes.fetch_add(bytes, Ordering::Relaxed);
    for (kind, key, received) in pending {
        match totals.published.get(kind, key) {
            0 => {
                totals.unmatched.fetch_add(1, Ordering::Relaxed);
            }
            at => {
                let _ = publish.record(clamp(received - at));
            }
        }
    }
    totals.lag.lock().unwrap_or_else(std::sync::PoisonError::into_inner).add(&local)?;
    totals.publish_lag.lock().unwrap_or_else(std::sync::PoisonError::into_inner).add(&publish)?;
    Ok(())
}

/// Reads a subscriber's stream to the end of the run without parsing it,
/// counting its bytes (a connection closed early counts as closed, or as
/// dropped if the server's last words were the slow-consumer error).
async fn drain<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    totals: &Totals,
    stop: &std::sync::atomic::AtomicBool,
    check: &mut tokio::time::Interval,
    every: Duration,
) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = Vec::new();
    while !stop.load(Ordering::Acquire) {
        let n = tokio::select! {
            biased;
            n = stream.read(&mut buf) => n,
            _ = check.tick() => continue,
        };
        match n {
            Ok(0) | Err(_) => {
                let text = String::from_utf8_lossy(&last);
                let counter = if text.contains("slow consumer") { &totals.dropped } else { &totals.closed };
                counter.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Ok(n) => {
                totals.bytes.fetch_add(n as u64, Ordering::Relaxed);
                last.clear();
                last.extend_from_slice(&buf[n.saturating_sub(512)..n]);
                // A full buffer means more is waiting: read on at once.
                if n < buf.len() && !every.is_zero() {
                    tokio::time::sleep(every).await;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_times_parse_as_the_time_library_does() {
        for text in [
            "2026-11-23T02:12:37Z",
            "2026-11-23T02:12:37.5Z",
            "2026-11-23T02:12:37.123456789Z",
            "2024-02-29T23:59:59.000001Z",
            "2000-03-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2100-12-31T12:00:00.25Z",
        ] {
            let want = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| i64::try_from(t.unix_timestamp_nanos()).unwrap_or(0))
                .ok();
            assert_eq!(rfc3339_utc_ns(text), want, "{text}");
        }
        for bad in
            ["2026-11-23T02:12:37", "2026-11-23 02:12:37Z", "2026-13-01T00:00:00Z", "2026-11-23T02:12:3xZ"]
        {
            assert_eq!(rfc3339_utc_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn fields_are_read_from_a_message() {
        let m = r#"{"changes":[["buy","1.00","5"]],"productId":1,"sequence":42,"time":"2026-11-23T02:12:37Z","type":"l2update"}"#;
        assert_eq!(field(m, r#""type""#), Some("l2update"));
        assert_eq!(field(m, r#""sequence""#), Some("42"));
        assert_eq!(field(m, r#""time""#), Some("2026-11-23T02:12:37Z"));
        assert_eq!(field(m, r#""tradeId""#), None);
    }
}
