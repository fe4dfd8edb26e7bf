//! The sequencer: one per shard. Stamps commands, applies them to the engine in
//! batches, persists each batch, and answers only after the commit.
//!
//! Two threads. The engine thread drains the bounded request queue into a batch,
//! gives each command its sequence number, time and (for new orders) order id,
//! applies it, and leaves the encoded batch for the writer thread: while batch k
//! commits, what arrives is matched, and every batch matched meanwhile is merged
//! into batch k+1 (see `Handoff`). The writer commits each batch and only then
//! answers the requests in it. If a commit fails, the shard stops accepting
//! (submissions fail at once with [`SubmitError::StorageUnavailable`]),
//! everything in flight is answered with that error and never acknowledged, and
//! the writer keeps trying to rebuild the state from storage; when it succeeds,
//! the engine thread continues from the rebuilt state. An epoch number on every batch makes sure nothing
//! computed before the failure is ever committed after it: the engine never runs
//! ahead of its journal.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atlas_engine::{CommandKind, Engine, EngineConfig, Event};

use crate::ClientOrders;
use crate::client_orders::IdCheck;
use crate::risk::{RiskGate, RiskReject, RiskUpdate};
use atlas_types::{OrderId, ParticipantId, Seq, Timestamp};
use thiserror::Error;
use tokio::sync::oneshot;

use crate::market::{BatchBuilder, FEED_CAPACITY, MarketBatch, MarketEvent, MarketFeed, MarketSeqs};
use crate::projection::{Effects, Projection};
use crate::storage::{Recovered, RecoveryError, Snapshot, SnapshotSink, Storage, recover};
use crate::{Actor, BATCH_ENTRIES_MAX, Batch, ChainHash, Entry, valid_client_order_id};

/// Sizing and timing of a sequencer.
#[derive(Clone, Copy, Debug)]
pub struct SequencerConfig {
    /// The engine's limits.
    pub engine: EngineConfig,
    /// Requests waiting for the engine thread, at most; beyond it submissions
    /// fail at once with [`SubmitError::Overloaded`].
    pub queue_max: usize,
    /// Commands per batch, at most.
    pub batch_max: usize,
    /// Take a snapshot after this many committed commands (0: never).
    pub snapshot_every_commands: u64,
    /// Also take one when this much time has passed since the last and anything
    /// was committed since (so a quiet shard still restarts from a recent state).
    pub snapshot_every: Duration,
    /// How often to retry storage after a failure.
    pub retry_every: Duration,
}

impl Default for SequencerConfig {
    fn default() -> SequencerConfig {
        SequencerConfig {
            engine: EngineConfig::default(),
            queue_max: 65_536,
            // Batches are whatever is queued, up to this: they grow only under
            // load, where more commands per commit means fewer pages written each.
            batch_max: BATCH_ENTRIES_MAX,
            snapshot_every_commands: 1_000_000,
            snapshot_every: Duration::from_secs(600),
            retry_every: Duration::from_millis(250),
        }
    }
}

/// What a committed command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// Its sequence number.
    pub seq: Seq,
    /// Its time.
    pub time: Timestamp,
    /// The id given to a new order.
    pub order_id: Option<OrderId>,
    /// The engine's events for it (`Rejected` alone if it was refused).
    pub events: Vec<Event>,
    /// True when this was a retry of an accepted new order with the same client
    /// order id: nothing new was journaled, `seq` and `order_id` are the
    /// original's, `events` is empty and `time` is when the retry was answered.
    pub duplicate: bool,
}

/// Why a command was not (or not yet) committed. None of these is an
/// acknowledgement: the command may be retried (with the same client order id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SubmitError {
    /// Storage failed; the shard is recovering. Retry later.
    #[error("storage unavailable")]
    StorageUnavailable,
    /// The request queue is full. Retry later.
    #[error("sequencer overloaded")]
    Overloaded,
    /// The sequencer is shutting down.
    #[error("sequencer stopped")]
    Stopped,
    /// The client order id is not acceptable.
    #[error("invalid client order id")]
    InvalidClientOrderId,
    /// The day's client order ids are exhausted (see `CLIENT_ORDER_IDS_MAX`).
    #[error("too many client order ids today")]
    ClientOrderIdsExhausted,
    /// A pre-trade risk check refused it (nothing was journaled).
    #[error("risk check: {0}")]
    Risk(RiskReject),
}

/// The answer to one submission, delivered after the commit.
pub type Ticket = oneshot::Receiver<Result<Receipt, SubmitError>>;

struct Request {
    actor: Actor,
    client_order_id: Option<String>,
    command: CommandKind,
    reply: oneshot::Sender<Result<Receipt, SubmitError>>,
}

/// A read of the engine's state (and the level2 numbering): runs on the engine
/// thread at the end of the batch it arrived in (it sees every command queued
/// before it, and possibly some after it in the same batch), and returns what
/// to deliver once the batch is committed.
type Query = Box<dyn FnOnce(&Engine, &MarketSeqs, &ClientOrders) -> Box<dyn FnOnce() + Send> + Send>;

/// What the request queue carries.
enum Msg {
    Command(Request),
    Query(Query),
    Risk(RiskUpdate, oneshot::Sender<()>),
}

/// What the writer hands out after a commit.
enum Answer {
    Receipt(oneshot::Sender<Result<Receipt, SubmitError>>, Receipt),
    /// A query's result (dropped, so its receiver sees an error, if the commit fails).
    Deliver(Box<dyn FnOnce() + Send>),
}

const HEALTH_OK: u8 = 0;
const HEALTH_FAILED: u8 = 1;
const HEALTH_STOPPING: u8 = 2;

/// Shared state between the handles and the threads.
struct Shared {
    health: AtomicU8,
    /// Bumped when the state is rebuilt after a failure.
    epoch: AtomicU64,
    committed_seq: AtomicU64,
    /// The day's client order ids in use, as of the last batch sequenced.
    client_order_ids: AtomicU64,
}

/// A cheap, cloneable way to submit commands.
#[derive(Clone)]
pub struct SequencerHandle {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    market: tokio::sync::broadcast::Sender<Arc<MarketBatch>>,
}

impl SequencerHandle {
    /// Queues a command. Fails at once when the shard cannot take it; otherwise
    /// the ticket resolves after the command is committed (or definitely not).
    pub fn submit(
        &self,
        actor: Actor,
        client_order_id: Option<String>,
        command: CommandKind,
    ) -> Result<Ticket, SubmitError> {
        match self.shared.health.load(Ordering::Acquire) {
            HEALTH_OK => {}
            HEALTH_FAILED => return Err(SubmitError::StorageUnavailable),
            _ => return Err(SubmitError::Stopped),
        }
        if client_order_id.as_deref().is_some_and(|id| !valid_client_order_id(id)) {
            return Err(SubmitError::InvalidClientOrderId);
        }
        let (reply, ticket) = oneshot::channel();
        self.send(Msg::Command(Request { actor, client_order_id, command, reply }))?;
        Ok(ticket)
    }

    /// Reads the engine's state with `read`, which runs on the engine thread at
    /// the end of the batch the query arrived in: it sees every command queued
    /// before it. The answer arrives once that batch is committed, so it never
    /// shows anything unacknowledged.
    pub fn query<R: Send + 'static>(
        &self,
        read: impl FnOnce(&Engine) -> R + Send + 'static,
    ) -> Result<oneshot::Receiver<R>, SubmitError> {
        self.query_market(move |engine, _| read(engine))
    }

    /// Like [`SequencerHandle::query`], with each product's level2 sequence
    /// number as of the same point (the REST book says which update it shows).
    pub fn query_market<R: Send + 'static>(
        &self,
        read: impl FnOnce(&Engine, &MarketSeqs) -> R + Send + 'static,
    ) -> Result<oneshot::Receiver<R>, SubmitError> {
        self.query_all(move |engine, seqs, _| read(engine, seqs))
    }

    /// The order a participant's client order id names today (given by a new
    /// order or by a replace), as of every command queued before the call,
    /// answered once they are committed; `None` if the id is not in use.
    pub fn client_order(
        &self,
        participant: ParticipantId,
        id: String,
    ) -> Result<oneshot::Receiver<Option<OrderId>>, SubmitError> {
        self.query_all(move |_, _, ids| ids.get(participant, &id).map(|(order, _)| order))
    }

    fn query_all<R: Send + 'static>(
        &self,
        read: impl FnOnce(&Engine, &MarketSeqs, &ClientOrders) -> R + Send + 'static,
    ) -> Result<oneshot::Receiver<R>, SubmitError> {
        match self.shared.health.load(Ordering::Acquire) {
            HEALTH_OK => {}
            HEALTH_FAILED => return Err(SubmitError::StorageUnavailable),
            _ => return Err(SubmitError::Stopped),
        }
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Query(Box::new(move |engine: &Engine, seqs: &MarketSeqs, ids: &ClientOrders| {
            let result = read(engine, seqs, ids);
            Box::new(move || {
                let _ = reply.send(result);
            }) as Box<dyn FnOnce() + Send>
        })))?;
        Ok(answer)
    }

    /// Changes the pre-trade risk state (limits, kill switches). Applies in order
    /// with the commands: every command queued after it is checked against it.
    pub fn risk(&self, update: RiskUpdate) -> Result<oneshot::Receiver<()>, SubmitError> {
        let (reply, done) = oneshot::channel();
        // Accepted whatever the shard's health: limits must hold when it returns.
        self.send(Msg::Risk(update, reply))?;
        Ok(done)
    }

    fn send(&self, msg: Msg) -> Result<(), SubmitError> {
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::TrySendError::Full(_)) => Err(SubmitError::Overloaded),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(SubmitError::Stopped),
        }
    }

    /// Submits and blocks until the outcome is known (for tools and tests; async
    /// code awaits the ticket instead).
    pub fn submit_wait(
        &self,
        actor: Actor,
        client_order_id: Option<String>,
        command: CommandKind,
    ) -> Result<Receipt, SubmitError> {
        let ticket = self.submit(actor, client_order_id, command)?;
        ticket.blocking_recv().unwrap_or(Err(SubmitError::Stopped))
    }

    /// True while the shard accepts commands.
    pub fn available(&self) -> bool {
        self.shared.health.load(Ordering::Acquire) == HEALTH_OK
    }

    /// The sequence number of the last committed command.
    pub fn committed_seq(&self) -> u64 {
        self.shared.committed_seq.load(Ordering::Acquire)
    }

    /// How many client order ids the day has used (a new order's or a
    /// replace's), of [`crate::CLIENT_ORDER_IDS_MAX`]: the idempotency
    /// state that grows with the day's orders until the end of day clears it.
    pub fn client_order_ids(&self) -> u64 {
        self.shared.client_order_ids.load(Ordering::Relaxed)
    }

    /// Subscribes to the market data of every batch committed from now on.
    pub fn market_feed(&self) -> MarketFeed {
        self.market.subscribe()
    }
}

/// A running sequencer. Dropping it does not stop the threads; call
/// [`Sequencer::shutdown`].
pub struct Sequencer {
    handle: SequencerHandle,
    threads: Vec<JoinHandle<()>>,
}

/// A matched batch on its way to the writer.
struct Work {
    epoch: u64,
    /// None when every request of the batch was a duplicate: nothing to write, but
    /// the answers still wait for the batches before them.
    batch: Option<Batch>,
    entries: Vec<Entry>,
    /// What the batch changed in the order and trade tables.
    effects: Effects,
    answers: Vec<Answer>,
    /// Its market data, broadcast once it is committed.
    market: Vec<MarketEvent>,
    /// A query read at its end: nothing more may join it.
    sealed: bool,
}

/// Batches merge into one of at most this many commands; beyond it the
/// engine waits for the writer to take the waiting work before it matches
/// more, as it waited for each batch before batches merged. Commits of a few
/// hundred commands already spread their fixed cost thin. Without the bound,
/// everything in flight merged into one commit and the engine sat idle while
/// it was written (one pipelined FIX session: 131-135k orders/s, against
/// 140-148k); with a bound on what is waited for but not on what merges, a
/// full slot plus a matched batch held outside it made the pipeline a batch
/// deeper (`atlas bench journal` at 200k commands/s: p50 up to 9 ms, against 5).
const MERGE_MAX: usize = 256;

/// What the engine thread matched from one drain of its queue, on its way to
/// the writer (see [`Handoff`]).
struct Matched {
    epoch: u64,
    batch: Option<Batch>,
    entries: Vec<Entry>,
    effects: Effects,
    answers: Vec<Answer>,
    /// Its market data, not yet numbered.
    market: BatchBuilder,
    /// Reads to answer at its end.
    queries: Vec<Query>,
}

impl Work {
    /// Can `later`, matched after this work on the same state, join it?
    fn takes(&self, later: &Matched, max: usize) -> bool {
        !self.sealed
            && later.epoch == self.epoch
            && self.entries.len() + later.entries.len() <= MERGE_MAX.min(max)
    }

    /// Folds in `later` as if one batch had held both: its entries onto the
    /// chain, each order's final state once, its level changes into the
    /// level updates (and level2 numbers) already given to this work.
    fn absorb(&mut self, later: Matched, seqs: &mut MarketSeqs) {
        match (&mut self.batch, later.batch) {
            (Some(batch), Some(next)) => batch.extend(next),
            (batch @ None, next) => *batch = next,
            (Some(_), None) => {}
        }
        self.entries.extend(later.entries);
        self.effects.absorb(later.effects);
        self.answers.extend(later.answers);
        let mut builder = later.market;
        seqs.finish_onto(&mut builder, &mut self.market);
    }
}

/// Where the engine thread leaves matched work for the writer thread: one
/// slot. What the engine matches while the writer is still committing is
/// merged into the work waiting there, so the writer's next commit takes
/// everything matched since its last one, as one batch with one level2
/// update per product.
///
/// Each commit has a fixed cost (SQLite rewrites every page it touches, about
/// a dozen for a few orders, and syncs), so the number of commits, not of
/// orders, sets the writer's work at moderate rates. A hand-over that waited
/// for the writer to take each batch split the orders that arrived during one
/// commit into a batch of the first alone, matched at once and committed
/// next, and one of the rest, committed after it: those waited for two
/// commits, and the writer paid for two.
///
/// Level2 numbers are given as work is left or merged, under the slot's lock,
/// so a merged update keeps the number it had. A query reads at the end of
/// the work it arrived with and seals it: nothing merged later may change
/// what the number it reports stands for.
struct Handoff {
    slot: Mutex<Slot>,
    /// Signalled when work is left in the empty slot, or a side goes.
    filled: Condvar,
    /// Signalled when the writer takes the work, or goes.
    taken: Condvar,
}

#[derive(Default)]
struct Slot {
    work: Option<Work>,
    engine_gone: bool,
    writer_gone: bool,
}

impl Handoff {
    fn pair() -> (HandoffTx, HandoffRx) {
        let h = Arc::new(Handoff { slot: Mutex::default(), filled: Condvar::new(), taken: Condvar::new() });
        (HandoffTx(h.clone()), HandoffRx(h))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        // A panic while holding the lock leaves the slot consistent (every
        // change is made in full or not at all).
        self.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The engine thread's side of the [`Handoff`].
struct HandoffTx(Arc<Handoff>);

impl HandoffTx {
    /// How many more commands the next batch may hold, at most `max`: the
    /// room left in the work waiting for the writer, waiting until the writer
    /// takes it if it can take no more (so the engine never holds a matched
    /// batch outside the slot while the slot is full, which would make the
    /// pipeline one batch deeper: under load, each batch would wait for two
    /// commits). `None` if the writer is gone.
    fn room(&self, max: usize) -> Option<usize> {
        let mut slot = self.0.lock();
        loop {
            if slot.writer_gone {
                return None;
            }
            match &slot.work {
                None => return Some(max),
                Some(w) if !w.sealed && w.entries.len() < MERGE_MAX.min(max) => {
                    return Some(MERGE_MAX.min(max) - w.entries.len());
                }
                Some(_) => slot = self.0.taken.wait(slot).unwrap_or_else(std::sync::PoisonError::into_inner),
            }
        }
    }

    /// Leaves what was matched for the writer, merged into the work waiting
    /// there if it fits `max` commands; otherwise waits until the writer takes
    /// that. Numbers its level updates, and answers its queries from `st` and
    /// `seqs` as of its end. Fails if the writer is gone.
    fn put(&self, mut m: Matched, seqs: &mut MarketSeqs, st: &Recovered, max: usize) -> Result<(), ()> {
        let queries = std::mem::take(&mut m.queries);
        let mut slot = self.0.lock();
        loop {
            if slot.writer_gone {
                return Err(());
            }
            let work = match slot.work.as_mut() {
                Some(waiting) if waiting.takes(&m, max) => {
                    waiting.absorb(m, seqs);
                    waiting
                }
                Some(_) => {
                    slot = self.0.taken.wait(slot).unwrap_or_else(std::sync::PoisonError::into_inner);
                    continue;
                }
                None => {
                    let mut builder = m.market;
                    let mut market = Vec::new();
                    seqs.finish_onto(&mut builder, &mut market);
                    self.0.filled.notify_one();
                    slot.work.insert(Work {
                        epoch: m.epoch,
                        batch: m.batch,
                        entries: m.entries,
                        effects: m.effects,
                        answers: m.answers,
                        market,
                        sealed: false,
                    })
                }
            };
            if !queries.is_empty() {
                work.sealed = true;
                for read in queries {
                    work.answers.push(Answer::Deliver(read(&st.engine, seqs, &st.client_orders)));
                }
            }
            return Ok(());
        }
    }
}

impl Drop for HandoffTx {
    fn drop(&mut self) {
        self.0.lock().engine_gone = true;
        self.0.filled.notify_all();
    }
}

/// The writer thread's side of the [`Handoff`].
struct HandoffRx(Arc<Handoff>);

impl HandoffRx {
    /// Takes the waiting work, waiting for some until `until` (or for ever).
    /// Fails with `Disconnected` once the engine thread is gone and nothing
    /// is left.
    fn take(&self, until: Option<Instant>) -> Result<Work, RecvTimeoutError> {
        let mut slot = self.0.lock();
        loop {
            if let Some(work) = slot.work.take() {
                self.0.taken.notify_one();
                return Ok(work);
            }
            if slot.engine_gone {
                return Err(RecvTimeoutError::Disconnected);
            }
            slot = match until {
                None => self.0.filled.wait(slot).unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(t) => {
                    let left = t.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    self.0
                        .filled
                        .wait_timeout(slot, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

impl Drop for HandoffRx {
    fn drop(&mut self) {
        self.0.lock().writer_gone = true;
        self.0.taken.notify_all();
    }
}

impl Sequencer {
    /// Rebuilds the shard from `storage` and starts the threads.
    pub fn start<S: Storage>(mut storage: S, config: SequencerConfig) -> Result<Sequencer, RecoveryError> {
        storage.claim_writer()?;
        // Replay must run with the limits the journal was written with.
        match storage.engine_config()? {
            None => storage.record_engine_config(config.engine)?,
            Some(recorded) if recorded.orders_max != config.engine.orders_max => {
                return Err(RecoveryError::Storage(crate::StorageError(format!(
                    "the journal was written with orders_max {}, not {}; start with the same engine limits",
                    recorded.orders_max, config.engine.orders_max
                ))));
            }
            Some(_) => {}
        }
        let recovered = recover(&mut storage, config.engine)?;
        let projection = Projection::from_open(storage.open_orders()?);
        let shared = Arc::new(Shared {
            health: AtomicU8::new(HEALTH_OK),
            epoch: AtomicU64::new(0),
            committed_seq: AtomicU64::new(recovered.engine.last_seq()),
            client_order_ids: AtomicU64::new(recovered.client_orders.len() as u64),
        });
        let (tx, rx) = sync_channel::<Msg>(config.queue_max.max(1));
        let (work_tx, work_rx) = Handoff::pair();
        let (rebuilt_tx, rebuilt_rx) = sync_channel::<(u64, Recovered, Projection)>(1);
        let (market, _) = tokio::sync::broadcast::channel(FEED_CAPACITY);
        let snapshots = if config.snapshot_every_commands > 0 {
            let sink = storage.snapshot_sink()?;
            let (snap_tx, snap_rx) = sync_channel::<SnapshotFeed>(SNAPSHOT_BACKLOG_BATCHES);
            let replica = recovered.clone();
            let (every, interval) = (config.snapshot_every_commands, config.snapshot_every);
            let thread = std::thread::Builder::new()
                .name("atlas-snapshot".into())
                .spawn(move || snapshot_loop(replica, snap_rx, sink, every, interval))
                .map_err(|e| RecoveryError::Storage(crate::StorageError(e.to_string())))?;
            Some((snap_tx, thread))
        } else {
            None
        };
        let (snap_tx, snap_thread) = match snapshots {
            Some((tx, t)) => (Some(tx), Some(t)),
            None => (None, None),
        };
        let engine_thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("atlas-engine".into())
                .spawn(move || engine_loop(recovered, projection, rx, work_tx, rebuilt_rx, shared, config))
                .map_err(|e| RecoveryError::Storage(crate::StorageError(e.to_string())))?
        };
        let writer_thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("atlas-journal".into())
                .spawn({
                    let market = market.clone();
                    move || writer_loop(storage, work_rx, rebuilt_tx, snap_tx, market, shared, config)
                })
                .map_err(|e| RecoveryError::Storage(crate::StorageError(e.to_string())))?
        };
        let mut threads = vec![engine_thread, writer_thread];
        threads.extend(snap_thread);
        Ok(Sequencer { handle: SequencerHandle { tx, shared, market }, threads })
    }

    /// A handle for submitting commands.
    pub fn handle(&self) -> SequencerHandle {
        self.handle.clone()
    }

    /// Stops taking commands, lets queued ones finish and joins the threads.
    pub fn shutdown(self) {
        self.handle.shared.health.store(HEALTH_STOPPING, Ordering::Release);
        drop(self.handle);
        for t in self.threads {
            // A panicked thread already reported itself; nothing more to do.
            let _ = t.join();
        }
    }
}

fn now() -> Timestamp {
    let ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    Timestamp(i64::try_from(ns).unwrap_or(i64::MAX))
}

#[allow(clippy::too_many_arguments)]
fn engine_loop(
    mut st: Recovered,
    mut projection: Projection,
    rx: Receiver<Msg>,
    work_tx: HandoffTx,
    rebuilt_rx: Receiver<(u64, Recovered, Projection)>,
    shared: Arc<Shared>,
    config: SequencerConfig,
) {
    let mut epoch = 0u64;
    let batch_max = config.batch_max.clamp(1, BATCH_ENTRIES_MAX);
    let mut requests: Vec<Msg> = Vec::with_capacity(batch_max);
    let mut risk = RiskGate::default();
    let mut events: Vec<Event> = Vec::with_capacity(256);
    let mut market_seqs = MarketSeqs::starting_at(st.engine.last_seq());
    loop {
        if shared.health.load(Ordering::Acquire) == HEALTH_FAILED {
            // Take the rebuilt state when the writer has it; meanwhile refuse.
            if let Ok((new_epoch, state, rows)) = rebuilt_rx.try_recv() {
                st = state;
                shared.client_order_ids.store(st.client_orders.len() as u64, Ordering::Relaxed);
                projection = rows;
                epoch = new_epoch;
                shared.health.store(HEALTH_OK, Ordering::Release);
                continue;
            }
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(Msg::Command(r)) => {
                    let _ = r.reply.send(Err(SubmitError::StorageUnavailable));
                }
                // Dropped: its receiver sees the error.
                Ok(Msg::Query(_)) => {}
                Ok(Msg::Risk(update, reply)) => {
                    risk.update(update);
                    let _ = reply.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            continue;
        }
        let first = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                if shared.health.load(Ordering::Acquire) == HEALTH_STOPPING {
                    // Handles may outlive the sequencer; stop once idle.
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let Some(room) = work_tx.room(batch_max) else { return };
        requests.push(first);
        while requests.len() < room {
            match rx.try_recv() {
                Ok(r) => requests.push(r),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let mut entries = Vec::with_capacity(requests.len());
        let mut answers = Vec::with_capacity(requests.len());
        let mut effects = Effects::default();
        let mut market = BatchBuilder::default();
        let mut queries = Vec::new();
        let prev_hash = st.chain_hash;
        for msg in requests.drain(..) {
            let r = match msg {
                Msg::Command(r) => r,
                Msg::Query(read) => {
                    // Read at the batch's end, where the level2 numbering is
                    // defined (its answer still waits for the commit).
                    queries.push(read);
                    continue;
                }
                Msg::Risk(update, reply) => {
                    risk.update(update);
                    let _ = reply.send(());
                    continue;
                }
            };
            // The journal's clock never goes backwards, whatever the wall clock does.
            let time = Timestamp(now().0.max(st.last_time.0));
            let mut command = r.command;
            // A participant's client order ids name new orders, and the
            // replaces (amends) and cancels of its orders alike, as FIX
            // ClOrdIDs do: each is used once a day.
            let client_id = match (&command, r.client_order_id.as_deref()) {
                (CommandKind::NewOrder(o), Some(id)) => Some((o.participant, id)),
                (CommandKind::Amend(a), Some(id)) => a.participant.map(|p| (p, id)),
                (CommandKind::Cancel { participant, .. }, Some(id)) => participant.map(|p| (p, id)),
                _ => None,
            };
            let cancel = matches!(command, CommandKind::Cancel { .. });
            if let Some((participant, id)) = client_id {
                match st.client_orders.check(participant, id, cancel) {
                    IdCheck::Used(order_id, seq) => {
                        // A retry, or an id in use: answer with the order that
                        // holds it, after this batch commits (so never before
                        // that order's own entry is durable).
                        let receipt = Receipt {
                            seq,
                            time,
                            order_id: Some(order_id),
                            events: Vec::new(),
                            duplicate: true,
                        };
                        answers.push(Answer::Receipt(r.reply, receipt));
                        continue;
                    }
                    IdCheck::Exhausted => {
                        let _ = r.reply.send(Err(SubmitError::ClientOrderIdsExhausted));
                        continue;
                    }
                    IdCheck::Free => {}
                }
            }
            let checked = match &command {
                CommandKind::NewOrder(o) => risk.check_new(o, &st.engine, &projection),
                CommandKind::Amend(a) => risk.check_amend(a, &st.engine),
                _ => Ok(()),
            };
            if let Err(reason) = checked {
                let _ = r.reply.send(Err(SubmitError::Risk(reason)));
                continue;
            }
            let seq = Seq(st.engine.last_seq() + 1);
            let order_id = if let CommandKind::NewOrder(o) = &mut command {
                o.order_id = OrderId(st.next_order_id);
                Some(o.order_id)
            } else {
                None
            };
            let entry = Entry { seq, time, actor: r.actor, client_order_id: r.client_order_id, command };
            let kept = entry.clone();
            st.apply(entry, &mut events);
            projection.apply(&kept, &events, &mut effects);
            market_seqs.collect(seq, time, &events, &mut market);
            entries.push(kept);
            answers.push(Answer::Receipt(
                r.reply,
                Receipt { seq, time, order_id, events: events.clone(), duplicate: false },
            ));
        }
        let batch = (!entries.is_empty()).then(|| Batch::encode(&entries, prev_hash));
        if let Some(b) = &batch {
            st.chain_hash = b.hash;
        }
        shared.client_order_ids.store(st.client_orders.len() as u64, Ordering::Relaxed);
        let matched = Matched { epoch, batch, entries, effects, answers, market, queries };
        if work_tx.put(matched, &mut market_seqs, &st, batch_max).is_err() {
            return;
        }
    }
}

fn fail_all(answers: Vec<Answer>) {
    for answer in answers {
        if let Answer::Receipt(reply, _) = answer {
            let _ = reply.send(Err(SubmitError::StorageUnavailable));
        }
    }
}

/// Committed state for the snapshot thread.
enum SnapshotFeed {
    /// Entries just committed, and the chain hash after them.
    Committed(Vec<Entry>, ChainHash),
    /// The state was rebuilt after a storage failure: start over from it.
    Reset(Box<Recovered>),
}

/// Lots of committed entries (see [`SnapshotLots`]; each at most one batch, or
/// [`SNAPSHOT_LOT_ENTRIES`]) the snapshot thread may lag behind by (while it
/// serializes a snapshot) before the writer waits for it. At most
/// 256 × `BATCH_ENTRIES_MAX` = 4M entries (~0.5 GB) in the very worst case; a 1M-order snapshot takes
/// ~250 ms, during which even 1M commands/s queue only ~250k entries.
const SNAPSHOT_BACKLOG_BATCHES: usize = 256;

/// Committed entries the writer gathers before it hands them to the snapshot
/// thread, at most (and fewer when snapshots are taken more often).
const SNAPSHOT_LOT_ENTRIES: usize = 4_096;
/// How long committed entries wait for the rest of their lot, at most.
const SNAPSHOT_LOT_WAIT: Duration = Duration::from_millis(50);

/// Committed entries on their way to the snapshot thread, handed over in lots
/// rather than one message per commit. At 20k orders/s a commit carries a few
/// orders, and waking the snapshot thread for each (~4,000 times a second)
/// cost more than the replica's matching: futex wake-ups on the writer's
/// commit path and context switches on a machine whose cores the request path
/// needs. The replica only has to be current when a snapshot is due, so it may
/// lag by a lot or [`SNAPSHOT_LOT_WAIT`].
struct SnapshotLots {
    tx: SyncSender<SnapshotFeed>,
    lot: usize,
    entries: Vec<Entry>,
    hash: ChainHash,
    /// When the oldest entry gathered was committed.
    since: Option<Instant>,
}

impl SnapshotLots {
    fn new(tx: SyncSender<SnapshotFeed>, every_commands: u64) -> SnapshotLots {
        let lot = usize::try_from(every_commands).unwrap_or(usize::MAX).clamp(1, SNAPSHOT_LOT_ENTRIES);
        SnapshotLots { tx, lot, entries: Vec::new(), hash: ChainHash::GENESIS, since: None }
    }

    /// Gathers a committed batch's entries; hands the lot over when it is full
    /// or its oldest entry has waited long enough. A lot holds at most
    /// [`SNAPSHOT_LOT_ENTRIES`] or a single batch, so the backlog's bound stands.
    fn committed(&mut self, entries: Vec<Entry>, hash: ChainHash) {
        if !self.entries.is_empty() && self.entries.len() + entries.len() > self.lot {
            self.hand_over();
        }
        if self.entries.is_empty() {
            self.entries = entries;
            self.since = Some(Instant::now());
        } else {
            self.entries.extend(entries);
        }
        self.hash = hash;
        if self.entries.len() >= self.lot || self.since.is_some_and(|t| t.elapsed() >= SNAPSHOT_LOT_WAIT) {
            self.hand_over();
        }
    }

    /// When the lot gathered so far is due, if there is one.
    fn due(&self) -> Option<Instant> {
        self.since.map(|t| t + SNAPSHOT_LOT_WAIT)
    }

    fn hand_over(&mut self) {
        self.since = None;
        if !self.entries.is_empty() {
            // Blocks only if the snapshot thread is a whole backlog behind.
            let _ = self.tx.send(SnapshotFeed::Committed(std::mem::take(&mut self.entries), self.hash));
        }
    }

    /// The state was rebuilt: what was gathered is in it.
    fn reset(&mut self, state: Recovered) {
        self.entries.clear();
        self.since = None;
        let _ = self.tx.send(SnapshotFeed::Reset(Box::new(state)));
    }
}

/// Metric: how long each batch's commit (append and effects, durably) took.
pub const COMMIT_SECONDS: &str = "atlas_journal_commit_seconds";
/// Metric: the commands in each committed batch.
pub const BATCH_COMMANDS: &str = "atlas_journal_batch_commands";

fn writer_loop<S: Storage>(
    mut storage: S,
    work_rx: HandoffRx,
    rebuilt_tx: SyncSender<(u64, Recovered, Projection)>,
    snapshots: Option<SyncSender<SnapshotFeed>>,
    market: tokio::sync::broadcast::Sender<Arc<MarketBatch>>,
    shared: Arc<Shared>,
    config: SequencerConfig,
) {
    let mut epoch = 0u64;
    let mut snapshots = snapshots.map(|tx| SnapshotLots::new(tx, config.snapshot_every_commands));
    let commit_seconds = metrics::histogram!(COMMIT_SECONDS);
    let batch_commands = metrics::histogram!(BATCH_COMMANDS);
    loop {
        let received = work_rx.take(snapshots.as_ref().and_then(SnapshotLots::due));
        let work = match received {
            Ok(work) => work,
            Err(e) => {
                if let Some(lots) = &mut snapshots {
                    lots.hand_over();
                }
                if e == RecvTimeoutError::Disconnected {
                    return;
                }
                continue;
            }
        };
        if work.epoch != epoch {
            // Matched on a state that was thrown away: never commit it.
            fail_all(work.answers);
            continue;
        }
        let started = Instant::now();
        let committed = match &work.batch {
            Some(batch) => storage.append(batch, &work.effects),
            None => Ok(()),
        };
        match committed {
            Ok(()) => {
                if let Some(batch) = &work.batch {
                    shared.committed_seq.store(batch.last_seq.0, Ordering::Release);
                    commit_seconds.record(started.elapsed());
                    batch_commands.record((batch.last_seq.0 - batch.first_seq.0 + 1) as f64);
                }
                for answer in work.answers {
                    match answer {
                        Answer::Receipt(reply, receipt) => {
                            let _ = reply.send(Ok(receipt));
                        }
                        Answer::Deliver(deliver) => deliver(),
                    }
                }
                if market.receiver_count() > 0
                    && !(work.market.is_empty()
                        && work.effects.orders.is_empty()
                        && work.effects.trades.is_empty())
                {
                    // Never blocks: a receiver that lags loses the oldest batches.
                    // The rows move (they were only borrowed for the commit).
                    let Effects { orders, trades, .. } = work.effects;
                    let published_ns = now().0;
                    let commands = work.batch.as_ref().map_or((0, 0), |b| (b.first_seq.0, b.last_seq.0));
                    let _ = market.send(Arc::new(MarketBatch {
                        events: work.market,
                        orders,
                        trades,
                        commands,
                        published_ns,
                    }));
                }
                if let (Some(lots), Some(batch)) = (&mut snapshots, &work.batch) {
                    lots.committed(work.entries, batch.hash);
                }
            }
            Err(_) => {
                shared.health.store(HEALTH_FAILED, Ordering::Release);
                fail_all(work.answers);
                epoch += 1;
                shared.epoch.store(epoch, Ordering::Release);
                // Rebuild from what storage really holds (the failed batch may or
                // may not have landed), refusing everything meanwhile.
                let rebuilt = loop {
                    let deadline = Instant::now() + config.retry_every;
                    while Instant::now() < deadline {
                        match work_rx.take(Some(deadline)) {
                            Ok(stale) => fail_all(stale.answers),
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    if shared.health.load(Ordering::Acquire) == HEALTH_STOPPING {
                        return;
                    }
                    if let Ok(state) = recover(&mut storage, config.engine)
                        && let Ok(rows) = storage.open_orders()
                    {
                        break (state, Projection::from_open(rows));
                    }
                };
                let (rebuilt, rows) = rebuilt;
                shared.committed_seq.store(rebuilt.engine.last_seq(), Ordering::Release);
                // Level2 numbers of batches that never committed were spent.
                let _ = market.send(Arc::new(MarketBatch {
                    events: vec![MarketEvent::Reset],
                    published_ns: now().0,
                    ..Default::default()
                }));
                if let Some(lots) = &mut snapshots {
                    lots.reset(rebuilt.clone());
                }
                if rebuilt_tx.send((epoch, rebuilt, rows)).is_err() {
                    return;
                }
            }
        }
    }
}

/// Keeps a replica of the committed state and writes a snapshot of it every
/// `every` commands, on its own thread and connection: serializing a large book
/// takes hundreds of milliseconds, which must stall neither commits nor matching.
fn snapshot_loop(
    mut replica: Recovered,
    feed: Receiver<SnapshotFeed>,
    mut sink: Box<dyn SnapshotSink>,
    every: u64,
    interval: Duration,
) {
    let mut since = 0u64;
    let mut last = Instant::now();
    let mut events = Vec::with_capacity(256);
    loop {
        let wait = interval.saturating_sub(last.elapsed()).max(Duration::from_millis(1));
        match feed.recv_timeout(wait) {
            Ok(SnapshotFeed::Committed(entries, hash)) => {
                since += entries.len() as u64;
                for e in entries {
                    replica.apply(e, &mut events);
                }
                replica.chain_hash = hash;
            }
            Ok(SnapshotFeed::Reset(state)) => {
                replica = *state;
                since = 0;
                last = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if since > 0 && (since >= every || last.elapsed() >= interval) {
            since = 0;
            last = Instant::now();
            let mut snapshot = Snapshot {
                seq: Seq(replica.engine.last_seq()),
                time: replica.last_time,
                chain_hash: replica.chain_hash,
                state_hash: replica.engine.state_hash(),
                next_order_id: replica.next_order_id,
                engine: replica.engine.snapshot(),
                // Lent, not cloned: a day's ids are up to millions of strings,
                // and a copy of them all was a burst of CPU and memory on a
                // machine whose other threads are matching and committing.
                client_orders: std::mem::take(&mut replica.client_orders),
            };
            // A failed snapshot costs recovery time, not correctness.
            let _ = sink.save_snapshot(&snapshot);
            replica.client_orders = std::mem::take(&mut snapshot.client_orders);
        }
    }
}

/// The chain hash a fresh journal starts from; re-exported for storage backends.
pub const GENESIS: ChainHash = ChainHash::GENESIS;
