//! The writer's metrics: one commit-time sample and one batch-size sample per
//! committed batch, the size being the batch's own command count. Its own test
//! binary, because it installs the process's global metrics recorder.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_engine::{CommandKind, NewOrder, OrderType, ProductSpec, SelfTradePrevention, TimeInForce};
use atlas_journal::memory::MemoryStorage;
use atlas_journal::sequencer::{BATCH_COMMANDS, COMMIT_SECONDS};
use atlas_journal::{Actor, Sequencer, SequencerConfig};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Side};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

type Samples = Arc<Mutex<HashMap<String, Vec<f64>>>>;

/// Keeps every histogram sample, by metric name.
struct Capture(Samples);

struct Series {
    name: String,
    samples: Samples,
}

impl metrics::HistogramFn for Series {
    fn record(&self, value: f64) {
        self.samples.lock().unwrap().entry(self.name.clone()).or_default().push(value);
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Series { name: key.name().to_owned(), samples: self.0.clone() }))
    }
}

fn order(i: i64) -> CommandKind {
    CommandKind::NewOrder(NewOrder {
        order_id: OrderId(0),
        participant: ParticipantId(1),
        product: ProductId(1),
        side: Side::Buy,
        order_type: OrderType::Limit,
        time_in_force: TimeInForce::Gtc,
        quantity: Qty(1),
        price: Some(Price(100 + i % 50)),
        stop_price: None,
        post_only: false,
        self_trade_prevention: SelfTradePrevention::None,
    })
}

#[test]
fn every_commit_records_its_time_and_its_own_batch_size() {
    let samples = Samples::default();
    metrics::set_global_recorder(Capture(samples.clone())).unwrap();
    let storage = MemoryStorage::default();
    let config = SequencerConfig { snapshot_every_commands: 0, ..Default::default() };
    let seq = Sequencer::start(storage.clone(), config).unwrap();
    let h = seq.handle();
    h.submit_wait(
        Actor::SYSTEM,
        None,
        CommandKind::AddProduct(ProductSpec { id: ProductId(1), tick: Price(1), lot: Qty(1) }),
    )
    .unwrap();

    // A stalled disk: the first order's batch waits in the writer, the next
    // one's in the engine thread's hand-over, and the rest queue, so when the
    // disk comes back they commit in batches of more than one.
    storage.stalled.store(true, Ordering::Release);
    let trader = Actor { user: 1, participant: Some(ParticipantId(1)) };
    let tickets: Vec<_> = (0..200).map(|i| h.submit(trader, None, order(i)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    storage.stalled.store(false, Ordering::Release);
    for t in tickets {
        t.blocking_recv().unwrap().unwrap();
    }

    let sizes: Vec<f64> =
        storage.batches().iter().map(|b| (b.last_seq.0 - b.first_seq.0 + 1) as f64).collect();
    assert!(sizes.iter().any(|s| *s > 1.0), "no batch of more than one command: {sizes:?}");
    assert_eq!(sizes.iter().sum::<f64>(), 201.0);
    let got = samples.lock().unwrap().clone();
    assert_eq!(got.get(BATCH_COMMANDS), Some(&sizes), "batch sizes as recorded against as committed");
    let times = &got[COMMIT_SECONDS];
    assert_eq!(times.len(), sizes.len(), "one commit time per batch: {times:?}");
    // The stalled commit took the stall (most of its 100 ms: the writer
    // started it a moment after the stall began).
    assert!(times.iter().any(|t| *t >= 0.02), "{times:?}");
    seq.shutdown();
}
