//! Prometheus metrics: HTTP requests by listener, route and status with their
//! latency, orders by outcome, trades, FIX order-to-ack latency, the
//! journal's commit latency and batch sizes, the shard's health, and what
//! grows with use against its bound (the day's client order ids, feed
//! connections, slow feed consumers cut off, resident memory), served at
//! `GET /metrics` on the internal listener (mutual TLS, no token: it is for the
//! monitoring system).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::St;
use crate::auth::Audience;

/// FIX order-to-ack latency: the read that completed a NewOrderSingle to its
/// ExecutionReport (new, or rejected) queued for writing.
pub const FIX_ORDER_ACK: &str = "atlas_fix_order_ack_seconds";

/// Feed connections closed because they fell too far behind.
pub const FEED_SLOW_CONSUMERS: &str = "atlas_feed_slow_consumers_total";

/// Its buckets, finer than the HTTP ones where a FIX ack's budget (2 ms at
/// 20k orders/s) lies.
const FIX_ORDER_ACK_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The journal's commit latency: a batch's append, effects and sync.
const COMMIT_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Commands per committed batch.
const BATCH_BUCKETS: &[f64] =
    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0];

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process's recorder, installed once (several `atlas up`s in one test
/// process share it).
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
                .ok()?
                .set_buckets_for_metric(Matcher::Full(FIX_ORDER_ACK.into()), FIX_ORDER_ACK_BUCKETS)
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(atlas_journal::sequencer::COMMIT_SECONDS.into()),
                    COMMIT_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(atlas_journal::sequencer::BATCH_COMMANDS.into()),
                    BATCH_BUCKETS,
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            // Histograms keep every sample until drained: by a scrape, or by this
            // upkeep. Without it an unscraped exchange would grow by every
            // request's sample forever.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("atlas-metrics".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Installs the recorder (call once at start).
pub fn install() {
    let _ = handle();
}

/// Counts every routed request and times it.
pub async fn track(State(ctx): St, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let listener = match ctx.audience {
        Audience::External => "external",
        Audience::Internal => "internal",
    };
    let status = response.status().as_u16().to_string();
    metrics::counter!("atlas_http_requests_total", "listener" => listener, "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("atlas_http_request_duration_seconds", "listener" => listener, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// An order's outcome.
pub fn order(outcome: &'static str, trades: usize) {
    metrics::counter!("atlas_orders_total", "outcome" => outcome).increment(1);
    if trades > 0 {
        metrics::counter!("atlas_trades_total").increment(trades as u64);
    }
}

/// The histogram FIX sessions record their order-to-ack latency in (a
/// session keeps the handle rather than look it up per order).
pub fn fix_order_ack() -> metrics::Histogram {
    metrics::histogram!(FIX_ORDER_ACK)
}

/// The metrics in Prometheus's text format, as `GET /metrics` serves them
/// (empty if no recorder could be installed). For in-process readers such as
/// `atlas bench`.
pub fn text() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// `GET /metrics`.
pub async fn render(State(ctx): St) -> impl IntoResponse {
    let app = &ctx.app;
    metrics::gauge!("atlas_sequencer_committed_seq").set(app.seq.committed_seq() as f64);
    metrics::gauge!("atlas_sequencer_available").set(if app.seq.available() { 1.0 } else { 0.0 });
    // Shown from the start, not from the first one.
    metrics::counter!(FEED_SLOW_CONSUMERS).increment(0);
    metrics::gauge!("atlas_client_order_ids").set(app.seq.client_order_ids() as f64);
    metrics::gauge!("atlas_client_order_ids_max").set(atlas_journal::CLIENT_ORDER_IDS_MAX as f64);
    if let Some(md) = app.market.get() {
        metrics::gauge!("atlas_feed_connections").set(md.connections() as f64);
    }
    if let Some(bytes) = resident_bytes() {
        metrics::gauge!("process_resident_memory_bytes").set(bytes as f64);
    }
    let mut r = text().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

/// The process's resident memory (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
