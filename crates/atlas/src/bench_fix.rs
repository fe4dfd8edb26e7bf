//! `atlas bench fix`: FIX 4.4 order entry end to end on one session against an
//! in-process `atlas up` (fresh data directory, SQLite): the acceptor, the risk
//! checks, matching, the durable commit, and the execution report back. Orders
//! alternate buy and sell at one price, so every other one trades and the book
//! stays small. Two phases:
//! - throughput: orders pipelined with up to `--window` unacknowledged, as fast
//!   as the exchange acknowledges them (an acknowledgement is the order's first
//!   execution report: New, or Rejected);
//! - latency: orders open loop at `--rate` per second, each sent when due (or
//!   in bursts, `--burst-us`) and each latency counted from the order's
//!   scheduled send time to its acknowledgement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use atlas_wire::fix::{self, Frame, Message};

/// Options of `atlas bench fix`.
#[derive(Args, Debug)]
pub struct FixArgs {
    /// Orders of the throughput phase.
    #[arg(long, default_value_t = 500_000, value_parser = clap::value_parser!(u64).range(1..=ORDERS_MAX as u64))]
    orders: u64,
    /// Unacknowledged orders at most in the throughput phase.
    #[arg(long, default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    window: u64,
    /// Orders per second of the latency phase.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=RATE_MAX))]
    rate: u64,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=SECONDS_MAX))]
    seconds: u64,
    /// Over TLS (default: the loopback plaintext listener).
    #[arg(long)]
    tls: bool,
    /// In the latency phase, send in bursts this many microseconds apart (each
    /// order still timed from its own due time) instead of each order when due:
    /// what a client that batches its writes does.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    burst_us: u64,
}

/// Orders per second of an open loop, at most.
pub(crate) const RATE_MAX: u64 = 10_000_000;
/// Seconds of an open loop, at most.
pub(crate) const SECONDS_MAX: u64 = 3_600;
/// Orders one phase may plan, at most: the benchmark keeps each one's send
/// time (8 bytes), so this caps that table at 400 MB.
const ORDERS_MAX: usize = 50_000_000;

/// The orders of an open loop at `rate` per second for `seconds`, if a run
/// may plan that many.
pub(crate) fn planned_orders(rate: u64, seconds: u64) -> anyhow::Result<usize> {
    rate.checked_mul(seconds).and_then(|n| usize::try_from(n).ok()).filter(|n| *n <= ORDERS_MAX).with_context(
        || format!("{rate} orders/s for {seconds} s is more than the {ORDERS_MAX} orders a run may send"),
    )
}

pub(crate) struct Creds {
    key: String,
    secret: String,
    passphrase: String,
}

impl Creds {
    /// The bench participant's API key from `bench_api::setup`.
    pub(crate) fn of(setup: &crate::bench_api::Setup) -> anyhow::Result<Creds> {
        let k = &setup.api_key;
        let text = |f: &str| k[f].as_str().map(str::to_owned).context("the API key");
        Ok(Creds { key: text("key")?, secret: text("secret")?, passphrase: text("passphrase")? })
    }
}

/// Sent times (ns since `origin`) by order index, and what was acknowledged.
struct Book {
    origin: Instant,
    sent_ns: Vec<AtomicU64>,
    acked: AtomicU64,
    rejected: AtomicU64,
    cancel_rejected: AtomicU64,
    histogram: std::sync::Mutex<Histogram<u64>>,
}

fn encode_with_header(msg_type: &str, seq: u64, key: &str, time: &str, body: &[(u32, &[u8])]) -> Vec<u8> {
    let seq = seq.to_string();
    let mut fields: Vec<(u32, &[u8])> = vec![
        (35, msg_type.as_bytes()),
        (34, seq.as_bytes()),
        (49, key.as_bytes()),
        (52, time.as_bytes()),
        (56, b"ATLAS"),
    ];
    fields.extend_from_slice(body);
    fix::encode(&fields)
}

fn now_text() -> String {
    atlas_services::fix::exec::utc_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
    )
}

fn logon(c: &Creds) -> anyhow::Result<Vec<u8>> {
    let time = now_text();
    let base: Vec<(u32, &[u8])> =
        vec![(98, b"0"), (108, b"30"), (141, b"Y"), (553, c.key.as_bytes()), (554, c.passphrase.as_bytes())];
    let unsigned = encode_with_header("A", 1, &c.key, &time, &base);
    let Frame::Message(_, m) = fix::frame(&unsigned) else { bail!("logon framing") };
    let signature = atlas_services::fix::session::logon_signature(&c.secret, &m).context("the API secret")?;
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(signature)
    };
    let mut fields = base;
    fields.push((96, b64.as_bytes()));
    Ok(encode_with_header("A", 1, &c.key, &time, &fields))
}

/// A read buffer consumed from the front without shifting it per message.
struct Input {
    buf: Vec<u8>,
    at: usize,
}

async fn read_message<R: AsyncRead + Unpin>(rd: &mut R, input: &mut Input) -> anyhow::Result<Message> {
    loop {
        match fix::frame(&input.buf[input.at..]) {
            Frame::Message(n, m) => {
                input.at += n;
                return Ok(m);
            }
            Frame::Garbled(n, why) => bail!("garbled message from the exchange ({why}, {n} bytes)"),
            Frame::Incomplete => {}
        }
        input.buf.drain(..input.at);
        input.at = 0;
        input.buf.reserve(256 * 1024);
        if rd.read_buf(&mut input.buf).await? == 0 {
            bail!("the exchange closed the connection");
        }
    }
}

/// Reads execution reports, counting acknowledgements of messages whose
/// ClOrdID is `{prefix}{index}`: an order's first report (New or Rejected), a
/// cancel's Canceled report or its OrderCancelReject. Each index counts once.
async fn reader<R: AsyncRead + Unpin>(
    mut rd: R,
    mut buf: Input,
    book: Arc<Book>,
    prefix: &'static str,
    want: u64,
) -> anyhow::Result<(R, Input)> {
    let mut local = Histogram::<u64>::new_with_bounds(1_000, 600_000_000_000, 3)?;
    while book.acked.load(Ordering::Relaxed) < want {
        let m = read_message(&mut rd, &mut buf).await?;
        let kind = m.msg_type();
        if kind == b"5" {
            // Most likely after a message went unanswered for the heartbeat
            // interval (this client answers no TestRequest): name them.
            let waiting: Vec<usize> = (book.sent_ns.iter().enumerate())
                .filter(|(_, at)| at.load(Ordering::Relaxed) != ACKED)
                .map(|(i, _)| i)
                .collect();
            let first: Vec<String> = waiting.iter().take(5).map(|i| format!("{prefix}{i}")).collect();
            bail!(
                "the exchange logged the session out: {} ({} of {want} messages unanswered, first {})",
                m.text(58).unwrap_or(""),
                waiting.len(),
                first.join(", ")
            );
        }
        let exec_type = m.get(150).unwrap_or_default();
        let counted = match kind {
            b"8" => matches!(exec_type, b"0" | b"4" | b"8"),
            b"9" => true,
            _ => false,
        };
        if !counted {
            continue;
        }
        let Some(index) =
            m.text(11).and_then(|c| c.strip_prefix(prefix)).and_then(|i| i.parse::<usize>().ok())
        else {
            continue;
        };
        let now = u64::try_from(book.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let Some(slot) = book.sent_ns.get(index) else { continue };
        let sent = slot.swap(ACKED, Ordering::Relaxed);
        if sent == ACKED {
            // Already acknowledged: an IOC's Canceled remainder after its New.
            continue;
        }
        if kind == b"9" {
            book.cancel_rejected.fetch_add(1, Ordering::Relaxed);
        } else if exec_type == b"8" {
            book.rejected.fetch_add(1, Ordering::Relaxed);
        }
        // Beyond the histogram's 600 s an ack counts at its top, not dropped.
        local.saturating_record(now.saturating_sub(sent).max(1_000));
        book.acked.fetch_add(1, Ordering::Relaxed);
    }
    book.histogram.lock().unwrap_or_else(std::sync::PoisonError::into_inner).add(&local)?;
    Ok((rd, buf))
}

/// `Book::sent_ns` of an acknowledged message.
const ACKED: u64 = u64::MAX;

/// Writes `out` to the exchange, unless the reader stops first: its error is
/// then the run's. (Without this, a reader that ended on an error left the
/// writer blocked for ever on a connection nobody read.)
async fn send<W: AsyncWrite + Unpin, R>(
    wr: &mut W,
    out: &mut Vec<u8>,
    read: &mut tokio::task::JoinHandle<anyhow::Result<R>>,
) -> anyhow::Result<()> {
    tokio::select! {
        written = wr.write_all(out) => {
            written?;
            out.clear();
            Ok(())
        }
        stopped = &mut *read => match stopped {
            Ok(Err(e)) => Err(e.context("reading the execution reports")),
            Ok(Ok(_)) => bail!("the report reader finished before the orders were sent"),
            Err(e) => bail!("the report reader failed: {e}"),
        },
    }
}

fn order(i: usize, prefix: &str, seq: u64, key: &str, time: &str) -> Vec<u8> {
    let side: &[u8] = if i.is_multiple_of(2) { b"1" } else { b"2" };
    limit_order(&format!("{prefix}{i}"), side, "10.00", b"1", seq, key, time)
}

pub(crate) fn print_histogram(name: &str, h: &Histogram<u64>) {
    let ms = |v: u64| v as f64 / 1e6;
    println!(
        "  {name}: p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} samples)",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    );
}

impl Book {
    fn new(n: usize) -> anyhow::Result<Arc<Book>> {
        Ok(Arc::new(Book {
            origin: Instant::now(),
            sent_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            acked: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            cancel_rejected: AtomicU64::new(0),
            histogram: std::sync::Mutex::new(Histogram::new_with_bounds(1_000, 600_000_000_000, 3)?),
        }))
    }
}

/// Sends the signed Logon and waits up to 30 s for the exchange's; returns
/// the read buffer (which may already hold what followed it).
async fn log_on<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    rd: &mut R,
    wr: &mut W,
    creds: &Creds,
) -> anyhow::Result<Input> {
    wr.write_all(&logon(creds)?).await?;
    let mut buf = Input { buf: Vec::with_capacity(1 << 20), at: 0 };
    let answer = tokio::time::timeout(Duration::from_secs(30), read_message(rd, &mut buf))
        .await
        .map_err(|_| anyhow::anyhow!("no answer to the Logon in 30 s"))??;
    if answer.msg_type() != b"A" {
        bail!("logon refused: {}", String::from_utf8_lossy(answer.bytes()).replace('\x01', "|"));
    }
    Ok(buf)
}

async fn drive<S>(stream: S, creds: &Creds, args: &FixArgs) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let buf = log_on(&mut rd, &mut wr, creds).await?;
    let mut seq = 2u64;
    let key = creds.key.clone();

    // Throughput.
    let n = usize::try_from(args.orders)?;
    let book = Book::new(n)?;
    let mut read = tokio::spawn(reader(rd, buf, book.clone(), "t", n as u64));
    let start = Instant::now();
    let mut out = Vec::with_capacity(1 << 20);
    let mut time = now_text();
    for i in 0..n {
        if i.is_multiple_of(1024) {
            time = now_text();
        }
        while i as u64 - book.acked.load(Ordering::Relaxed) >= args.window {
            if !out.is_empty() {
                send(&mut wr, &mut out, &mut read).await?;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        book.sent_ns[i]
            .store(u64::try_from(book.origin.elapsed().as_nanos()).unwrap_or(0), Ordering::Relaxed);
        out.extend_from_slice(&order(i, "t", seq, &key, &time));
        seq += 1;
        if out.len() >= 32 * 1024 {
            send(&mut wr, &mut out, &mut read).await?;
        }
    }
    send(&mut wr, &mut out, &mut read).await?;
    let (rd, buf) = match tokio::time::timeout(Duration::from_secs(300), read).await {
        Ok(Ok(Ok(carried))) => carried,
        Ok(Ok(Err(e))) => return Err(e),
        _ => bail!("the throughput phase did not finish"),
    };
    let elapsed = start.elapsed();
    println!(
        "throughput (one session, pipelined, window {}): {} orders acknowledged in {:.2} s = {:.0} orders/s ({} rejected)",
        args.window,
        n,
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        book.rejected.load(Ordering::Relaxed)
    );
    print_histogram(
        "order → ack under full load",
        &book.histogram.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
    );

    // Latency, open loop.
    let total = planned_orders(args.rate, args.seconds)?;
    let book = Book::new(total)?;
    // The reader may have read past the last throughput message, up to the
    // middle of one: its buffer carries over (the reports in it are skipped,
    // other prefix). Starting afresh had read a message from its middle.
    let read = tokio::spawn(reader(rd, buf, book.clone(), "l", total as u64));
    let interval_ns = 1_000_000_000 / args.rate.max(1);
    let start = book.origin;
    let sent = book.clone();
    let message = move |i: usize, due: u64| {
        if i.is_multiple_of(1024) {
            time = now_text();
        }
        // Latency counts from the scheduled time, so a late sender is not hidden.
        sent.sent_ns[i].store(due, Ordering::Relaxed);
        let m = order(i, "l", seq, &key, &time);
        seq += 1;
        m
    };
    let cpu = Cpu::now();
    let inside = AckBuckets::now();
    let (_wr, read, late) =
        open_loop(wr, read, total, interval_ns, args.burst_us * 1_000, start, message).await?;
    acknowledged(read, "the latency phase did not finish").await?;
    let elapsed = start.elapsed();
    println!(
        "latency (open loop at {}/s, {}, for {} s): {} orders acknowledged in {:.2} s ({} rejected)",
        args.rate,
        if args.burst_us == 0 {
            "each order sent when due".to_owned()
        } else {
            format!("sent in bursts every {} µs", args.burst_us)
        },
        args.seconds,
        total,
        elapsed.as_secs_f64(),
        book.rejected.load(Ordering::Relaxed)
    );
    print_histogram("order → ack", &book.histogram.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    print_histogram("of which the sender's lateness (due → written)", &late);
    AckBuckets::now().since(&inside).print();
    Cpu::print_between(cpu, Cpu::now(), total, elapsed);
    Ok(())
}

/// The exchange's own order-to-ack histogram (`atlas_fix_order_ack_seconds`
/// on `/metrics`: from the read that completed a NewOrderSingle to its
/// ExecutionReport queued for writing), read in-process: cumulative counts
/// per bucket bound, in seconds, the last one +Inf.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct AckBuckets(Vec<(f64, u64)>);

impl AckBuckets {
    /// The histogram as the process's metrics show it now.
    pub(crate) fn now() -> AckBuckets {
        AckBuckets::parse(&atlas_services::metrics_text())
    }

    fn parse(text: &str) -> AckBuckets {
        let prefix = format!("{}_bucket{{le=\"", atlas_services::FIX_ORDER_ACK);
        let buckets = text
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(&prefix)?;
                let (le, count) = rest.split_once("\"} ")?;
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                Some((le, count.trim().parse().ok()?))
            })
            .collect();
        AckBuckets(buckets)
    }

    /// The samples recorded after `before`.
    pub(crate) fn since(&self, before: &AckBuckets) -> AckBuckets {
        AckBuckets(
            self.0
                .iter()
                .map(|&(le, n)| {
                    let earlier = before.0.iter().find(|(b, _)| *b == le).map_or(0, |(_, m)| *m);
                    (le, n.saturating_sub(earlier))
                })
                .collect(),
        )
    }

    fn count(&self) -> u64 {
        self.0.last().map_or(0, |(_, n)| *n)
    }

    /// The `q` quantile in seconds, interpolated linearly within its bucket
    /// (as Prometheus's `histogram_quantile` does); the highest finite bound
    /// if it falls in +Inf.
    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let (mut lower, mut below) = (0.0, 0u64);
        for &(le, n) in &self.0 {
            if n as f64 >= rank {
                if le.is_infinite() {
                    return Some(lower);
                }
                let within = (n - below) as f64;
                let frac = if within > 0.0 { (rank - below as f64) / within } else { 1.0 };
                return Some(lower + (le - lower) * frac);
            }
            (lower, below) = (le, n);
        }
        None
    }

    /// The share of samples at or under `le` seconds, if `le` is a bound.
    fn share_within(&self, le: f64) -> Option<f64> {
        let total = self.count();
        let n = self.0.iter().find(|(b, _)| *b == le)?.1;
        (total > 0).then(|| n as f64 / total as f64)
    }

    pub(crate) fn print(&self) {
        let ms = |q: f64| self.quantile(q).map_or("-".to_owned(), |s| format!("{:.2}", s * 1e3));
        println!(
            "  inside the exchange (read → report queued; {} buckets): p50 ≈ {} ms  p99 ≈ {} ms  p99.9 ≈ {} ms  \
             ({:.2}% within 2 ms, {} samples)",
            atlas_services::FIX_ORDER_ACK,
            ms(0.5),
            ms(0.99),
            ms(0.999),
            self.share_within(0.002).unwrap_or(0.0) * 100.0,
            self.count()
        );
    }
}

/// CPU time used so far, in ns: the exchange's threads' (named `atlas-…`: the
/// I/O runtime, engine, journal writer, checkpointer, snapshots; from each
/// one's `/proc/self/task/*/schedstat`), and the whole process's (from
/// `/proc/self/stat`, in the kernel's fixed 100 Hz ticks, counting threads
/// that have ended, such as the open loop's sender). The client's share is
/// the difference.
#[derive(Clone, Copy, Default)]
pub(crate) struct Cpu {
    exchange_ns: u64,
    process_ns: u64,
}

impl Cpu {
    pub(crate) fn now() -> Cpu {
        let mut cpu = Cpu::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // After the command's name (which may hold spaces): utime and
            // stime are the 12th and 13th fields.
            let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
            let ticks: u64 =
                rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse::<u64>().ok()).sum();
            cpu.process_ns = ticks * 10_000_000;
        }
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return cpu };
        for task in tasks.flatten() {
            let dir = task.path();
            let (Ok(comm), Ok(stat)) =
                (std::fs::read_to_string(dir.join("comm")), std::fs::read_to_string(dir.join("schedstat")))
            else {
                continue;
            };
            if comm.starts_with("atlas-") {
                cpu.exchange_ns +=
                    stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
        cpu
    }

    /// Prints the CPU used from `before` to `after`, per order and as cores
    /// busy over `elapsed`: on a machine with few cores, latency grows as the
    /// exchange and the client together near all of them.
    pub(crate) fn print_between(before: Cpu, after: Cpu, orders: usize, elapsed: Duration) {
        let per = |ns: u64| ns as f64 / 1_000.0 / orders.max(1) as f64;
        let cores = |ns: u64| ns as f64 / 1e9 / elapsed.as_secs_f64().max(1e-9);
        let ex = after.exchange_ns.saturating_sub(before.exchange_ns);
        let cl = after.process_ns.saturating_sub(before.process_ns).saturating_sub(ex);
        println!(
            "  CPU: exchange {:.1} µs per order ({:.2} cores busy), client {:.1} µs per order ({:.2} cores), of {} cores",
            per(ex),
            cores(ex),
            per(cl),
            cores(cl),
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
        );
    }
}

/// Runs the benchmark.
pub fn run(args: FixArgs) -> anyhow::Result<()> {
    // Refused before anything starts.
    planned_orders(args.rate, args.seconds)?;
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; figures are meaningless (use --release)");
    }
    let tmp = tempfile::tempdir()?;
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("atlas-io")
        .enable_all()
        .build()?;
    let mut cfg = crate::bench_api::config(tmp.path(), None, true)?;
    cfg.fix_plain_addr = Some("127.0.0.1:0".parse()?);
    let running = server.block_on(atlas_services::up::start(cfg))?;
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench")
        .enable_all()
        .build()?;
    println!(
        "atlas bench fix: one FIX 4.4 session over {}, SQLite, durable commits",
        if args.tls { "TLS" } else { "loopback plaintext" }
    );
    let result = client.block_on(async {
        let setup = crate::bench_api::setup(&running, tmp.path()).await?;
        let creds = Creds::of(&setup)?;
        if args.tls {
            let ca = std::fs::read(&running.pki.ca_cert)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in
                <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_slice_iter(&ca)
            {
                roots.add(cert?)?;
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            let tcp = tokio::net::TcpStream::connect(running.fix_addr).await?;
            tcp.set_nodelay(true)?;
            let name = rustls_pki_types::ServerName::try_from("localhost")?;
            let stream = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
            drive(stream, &creds, &args).await
        } else {
            let addr = running.fix_plain_addr.context("the plaintext listener")?;
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            drive(tcp, &creds, &args).await
        }
    });
    server.block_on(running.shutdown())?;
    result
}

/// What [`market_flow`] measured.
pub(crate) struct FlowReport {
    /// Messages sent (new orders and cancels).
    pub(crate) sent: usize,
    /// Crossing orders among them (each trades once if the book has liquidity).
    pub(crate) crossing: usize,
    pub(crate) elapsed: Duration,
    pub(crate) rejected: u64,
    pub(crate) cancel_rejected: u64,
    pub(crate) histogram: Histogram<u64>,
    /// How late after its due time each message was written (ns).
    pub(crate) sender_late: Histogram<u64>,
}

/// Open loop: sends message `i` (built by `message(i, due)`, `due` in ns
/// since `start`) when it is due, `interval_ns` after the one before (or, with
/// `burst_ns`, at the next multiple of `burst_ns` from `start`). Gives back the
/// writer and the reader, and how late after its due time each message was
/// written (ns).
///
/// The loop runs on a thread of its own that sleeps until each due time:
/// tokio's timer wakes at millisecond ticks, so an async loop sent 20 orders
/// at once every millisecond at 20k/s and charged each up to a millisecond of
/// the benchmark's own lateness. Latency still counts from the due time, so a
/// sender that falls behind (the exchange not reading) is not hidden, and the
/// lateness it returns shows how much of the latency is the sender's.
async fn open_loop<W, R, F>(
    mut wr: W,
    mut read: tokio::task::JoinHandle<anyhow::Result<R>>,
    total: usize,
    interval_ns: u64,
    burst_ns: u64,
    start: Instant,
    mut message: F,
) -> anyhow::Result<(W, tokio::task::JoinHandle<anyhow::Result<R>>, Histogram<u64>)>
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: Send + 'static,
    F: FnMut(usize, u64) -> Vec<u8> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    let mut late = Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 2)?;
    let sender = std::thread::Builder::new().name("bench-sender".into()).spawn(move || {
        let mut out = Vec::with_capacity(1 << 20);
        // Due times of the messages in `out` (at most 16 KiB of messages).
        let mut dues = Vec::new();
        let mut flush = |wr: &mut W,
                         out: &mut Vec<u8>,
                         dues: &mut Vec<u64>,
                         read: &mut tokio::task::JoinHandle<anyhow::Result<R>>|
         -> anyhow::Result<()> {
            runtime.block_on(send(wr, out, read))?;
            let now = u64::try_from(start.elapsed().as_nanos())?;
            for due in dues.drain(..) {
                // A sender over 600 s behind counts at the top, rather than
                // ending an hour's run with the histogram's range error.
                late.saturating_record(now.saturating_sub(due).max(1));
            }
            Ok(())
        };
        let sent = (|| {
            for i in 0..total {
                let due = u64::try_from(i)? * interval_ns;
                let at = if burst_ns > 0 { due.div_ceil(burst_ns) * burst_ns } else { due };
                let now = u64::try_from(start.elapsed().as_nanos())?;
                if at > now {
                    if !out.is_empty() {
                        flush(&mut wr, &mut out, &mut dues, &mut read)?;
                    }
                    std::thread::sleep(Duration::from_nanos(at - now));
                }
                out.extend_from_slice(&message(i, due));
                dues.push(due);
                if out.len() >= 16 * 1024 {
                    flush(&mut wr, &mut out, &mut dues, &mut read)?;
                }
            }
            flush(&mut wr, &mut out, &mut dues, &mut read)
        })();
        sent.map(|()| (wr, read, late))
    })?;
    tokio::task::spawn_blocking(move || sender.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the open-loop sender panicked"))?
}

/// Waits up to 120 s for the reader to count every acknowledgement.
async fn acknowledged<R>(
    read: tokio::task::JoinHandle<anyhow::Result<R>>,
    unfinished: &str,
) -> anyhow::Result<R> {
    match tokio::time::timeout(Duration::from_secs(120), read).await {
        Ok(Ok(Ok(carried))) => Ok(carried),
        Ok(Ok(Err(e))) => Err(e),
        _ => bail!("{unfinished}"),
    }
}

fn limit_order(cl: &str, side: &[u8], price: &str, tif: &[u8], seq: u64, key: &str, time: &str) -> Vec<u8> {
    encode_with_header(
        "D",
        seq,
        key,
        time,
        &[
            (11, cl.as_bytes()),
            (55, b"BENCH"),
            (54, side),
            (38, b"1"),
            (40, b"2"),
            (44, price.as_bytes()),
            (59, tif),
        ],
    )
}

fn cancel_order(cl: &str, orig: &str, side: &[u8], seq: u64, key: &str, time: &str) -> Vec<u8> {
    encode_with_header(
        "F",
        seq,
        key,
        time,
        &[(11, cl.as_bytes()), (41, orig.as_bytes()), (55, b"BENCH"), (54, side)],
    )
}

/// An open-loop order flow shaped like a market maker's, for `atlas bench
/// feed`: `rate` messages a second for `seconds` on one session over the
/// loopback plaintext listener. In every run of `cross_every` messages the
/// first is an IOC order crossing the spread (one trade), and the rest
/// alternate between a new resting order one to seven ticks away from 10.00
/// and a cancel of a resting order placed about a second earlier; the resting
/// side alternates per run. So one message in `cross_every` trades, every
/// message changes the book, and the book stays about a second of resting
/// orders deep. (`cross_every` 2: every other message trades, no cancels.)
pub(crate) async fn market_flow(
    addr: std::net::SocketAddr,
    creds: &Creds,
    rate: u64,
    seconds: u64,
    cross_every: usize,
    burst_ns: u64,
) -> anyhow::Result<FlowReport> {
    let k = cross_every.max(2);
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (mut rd, mut wr) = tokio::io::split(tcp);
    let buf = log_on(&mut rd, &mut wr, creds).await?;
    let total = planned_orders(rate, seconds)?;
    let book = Book::new(total)?;
    let read = tokio::spawn(reader(rd, buf, book.clone(), "f", total as u64));
    // A cancel names the order placed this many messages before (a whole
    // number of runs, so it is a resting order): about a second.
    let lag = (usize::try_from(rate)? / k).max(1) * k;
    let resting_side =
        move |i: usize| -> &'static [u8] { if (i / k).is_multiple_of(2) { b"2" } else { b"1" } };
    let interval_ns = 1_000_000_000 / rate.max(1);
    let (mut seq, key) = (2u64, creds.key.clone());
    let mut time = now_text();
    let start = book.origin;
    let sent = book.clone();
    let message = move |i: usize, due: u64| {
        if i.is_multiple_of(1024) {
            time = now_text();
        }
        sent.sent_ns[i].store(due, Ordering::Relaxed);
        let cl = format!("f{i}");
        let slot = i % k;
        let message = if slot == 0 && i >= k {
            // Cross against the side the previous run rested on.
            let (side, price): (&[u8], &str) =
                if resting_side(i - k) == b"2" { (b"1", "11.00") } else { (b"2", "9.00") };
            limit_order(&cl, side, price, b"3", seq, &key, &time)
        } else if slot.is_multiple_of(2) && slot > 0 && i > lag {
            let j = i - 1 - lag;
            cancel_order(&cl, &format!("f{j}"), resting_side(j), seq, &key, &time)
        } else {
            let side = resting_side(i);
            let ticks = 1 + (i / 2) % 7;
            let price = if side == b"2" { format!("10.{ticks:02}") } else { format!("9.{:02}", 100 - ticks) };
            limit_order(&cl, side, &price, b"1", seq, &key, &time)
        };
        seq += 1;
        message
    };
    let (_wr, read, sender_late) = open_loop(wr, read, total, interval_ns, burst_ns, start, message).await?;
    acknowledged(read, "the order flow was not acknowledged within 120 s of its end").await?;
    // The crossing orders, as chosen above.
    let crossing = (k..total).step_by(k).count();
    let histogram = book.histogram.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    Ok(FlowReport {
        sent: total,
        crossing,
        elapsed: start.elapsed(),
        rejected: book.rejected.load(Ordering::Relaxed),
        cancel_rejected: book.cancel_rejected.load(Ordering::Relaxed),
        histogram,
        sender_late,
    })
}

#[cfg(test)]
mod tests {
    use super::AckBuckets;

    #[test]
    fn ack_buckets_are_read_subtracted_and_interpolated() {
        let text = "# TYPE atlas_fix_order_ack_seconds histogram\n\
            atlas_fix_order_ack_seconds_bucket{le=\"0.001\"} 50\n\
            atlas_fix_order_ack_seconds_bucket{le=\"0.002\"} 150\n\
            atlas_fix_order_ack_seconds_bucket{le=\"+Inf\"} 160\n\
            atlas_fix_order_ack_seconds_sum 0.2\n\
            atlas_fix_order_ack_seconds_count 160\n\
            atlas_http_request_duration_seconds_bucket{le=\"0.001\"} 7\n";
        let before = AckBuckets(vec![(0.001, 10), (0.002, 20), (f64::INFINITY, 25)]);
        let b = AckBuckets::parse(text);
        assert_eq!(b, AckBuckets(vec![(0.001, 50), (0.002, 150), (f64::INFINITY, 160)]));
        let d = b.since(&before);
        assert_eq!(d, AckBuckets(vec![(0.001, 40), (0.002, 130), (f64::INFINITY, 135)]));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // Rank 67.5 of 135 lies in (0.001, 0.002], 27.5 of its 90 samples in.
        assert!(close(d.quantile(0.5).unwrap(), 0.001 + 0.001 * 27.5 / 90.0));
        // Rank 27 lies in [0, 0.001].
        assert!(close(d.quantile(0.2).unwrap(), 0.001 * 27.0 / 40.0));
        // Past the last finite bound: that bound.
        assert_eq!(d.quantile(0.99), Some(0.002));
        assert!(close(d.share_within(0.002).unwrap(), 130.0 / 135.0));
        assert_eq!(d.share_within(0.003), None);
        assert_eq!(AckBuckets::default().quantile(0.5), None);
    }
}
