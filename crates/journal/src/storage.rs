//! What the journal needs from a database, and recovery and verification on top of
//! it.

use atlas_engine::{Engine, EngineConfig, SnapshotError, StateHash};
use atlas_types::{Seq, Timestamp};
use thiserror::Error;

use crate::projection::{Effects, OrderRow};
use crate::{Batch, ChainHash, ClientOrders, Entry, JournalError};

/// A storage failure. The message is for operators' logs: it never contains
/// credentials (backends strip them).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

/// An engine snapshot with what the sequencer needs to resume from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The last entry the snapshot includes.
    pub seq: Seq,
    /// That entry's time: the sequencer's clock never goes below it.
    pub time: Timestamp,
    /// The chain hash after that entry.
    pub chain_hash: ChainHash,
    /// The engine's state hash at that point.
    pub state_hash: StateHash,
    /// The next order id the sequencer assigns (rejected orders consume ids too).
    pub next_order_id: u64,
    /// `Engine::snapshot()` bytes.
    pub engine: Vec<u8>,
    /// The client order ids of the trading day.
    pub client_orders: ClientOrders,
}

/// Where snapshots are written from the snapshot thread: its own connection, so
/// that writing a large snapshot never holds up a journal commit's connection.
pub trait SnapshotSink: Send + 'static {
    /// Stores a snapshot.
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError>;
}

/// Durable storage of one shard's journal and snapshots.
pub trait Storage: Send + 'static {
    /// Makes this the shard's only writer, before it reads its state back: from
    /// now on any earlier writer's commits fail (and a commit such a writer had
    /// in flight is either visible to this one's recovery or never lands). Fails
    /// if the store cannot be claimed. Only a sequencer claims; readers
    /// (`verify`, tests) do not, so they never fence a running shard.
    fn claim_writer(&mut self) -> Result<(), StorageError>;
    /// The engine limits the journal was written with, if recorded.
    fn engine_config(&mut self) -> Result<Option<EngineConfig>, StorageError>;
    /// Records them (once, when the journal starts).
    fn record_engine_config(&mut self, config: EngineConfig) -> Result<(), StorageError>;
    /// A separate writer for snapshots, used by the sequencer's snapshot thread.
    fn snapshot_sink(&self) -> Result<Box<dyn SnapshotSink>, StorageError>;
    /// Appends a batch and its effects on the order and trade tables, atomically:
    /// after an error it is either wholly stored or not at all (recovery finds out
    /// which).
    fn append(&mut self, batch: &Batch, effects: &Effects) -> Result<(), StorageError>;
    /// The rows of every open order (to rebuild the projection at start-up).
    fn open_orders(&mut self) -> Result<Vec<OrderRow>, StorageError>;
    /// Stores a snapshot.
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError>;
    /// The snapshot with the highest sequence number, if any.
    fn latest_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError>;
    /// (seq, state hash) of every stored snapshot, by seq.
    fn snapshot_hashes(&mut self) -> Result<Vec<(Seq, StateHash)>, StorageError>;
    /// Visits the stored batches whose entries come after `after`, in order.
    fn for_each_batch(
        &mut self,
        after: Seq,
        visit: &mut dyn FnMut(Batch) -> Result<(), RecoveryError>,
    ) -> Result<(), RecoveryError>;
}

impl SnapshotSink for Box<dyn SnapshotSink> {
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        (**self).save_snapshot(snapshot)
    }
}

impl Storage for Box<dyn Storage> {
    fn claim_writer(&mut self) -> Result<(), StorageError> {
        (**self).claim_writer()
    }
    fn engine_config(&mut self) -> Result<Option<EngineConfig>, StorageError> {
        (**self).engine_config()
    }
    fn record_engine_config(&mut self, config: EngineConfig) -> Result<(), StorageError> {
        (**self).record_engine_config(config)
    }
    fn snapshot_sink(&self) -> Result<Box<dyn SnapshotSink>, StorageError> {
        (**self).snapshot_sink()
    }
    fn append(&mut self, batch: &Batch, effects: &Effects) -> Result<(), StorageError> {
        (**self).append(batch, effects)
    }
    fn open_orders(&mut self) -> Result<Vec<OrderRow>, StorageError> {
        (**self).open_orders()
    }
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        (**self).save_snapshot(snapshot)
    }
    fn latest_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        (**self).latest_snapshot()
    }
    fn snapshot_hashes(&mut self) -> Result<Vec<(Seq, StateHash)>, StorageError> {
        (**self).snapshot_hashes()
    }
    fn for_each_batch(
        &mut self,
        after: Seq,
        visit: &mut dyn FnMut(Batch) -> Result<(), RecoveryError>,
    ) -> Result<(), RecoveryError> {
        (**self).for_each_batch(after, visit)
    }
}

/// Why a shard could not be rebuilt, or failed verification.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RecoveryError {
    /// The database could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The journal is damaged.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A snapshot does not restore.
    #[error("snapshot at seq {seq}: {error}")]
    Snapshot {
        /// The snapshot's seq.
        seq: u64,
        /// What is wrong.
        error: SnapshotError,
    },
    /// Replayed state differs from what was recorded.
    #[error("state hash mismatch at seq {seq}: recorded {recorded}, replayed {replayed}")]
    StateMismatch {
        /// Where.
        seq: u64,
        /// The hash stored with the snapshot.
        recorded: StateHash,
        /// The hash the replay produced.
        replayed: StateHash,
    },
}

/// A shard's state rebuilt from storage.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// The engine, at the last stored entry.
    pub engine: Engine,
    /// The chain hash after the last stored entry.
    pub chain_hash: ChainHash,
    /// The last stored entry's time.
    pub last_time: Timestamp,
    /// The next order id to assign.
    pub next_order_id: u64,
    /// Entries replayed on top of the snapshot.
    pub replayed: u64,
    /// The snapshot used, if any.
    pub snapshot_seq: Option<Seq>,
    /// The client order ids of the trading day.
    pub client_orders: ClientOrders,
}

impl Recovered {
    /// Applies one journaled entry: the engine, and the sequencer's own state (time,
    /// order ids, client order ids). The engine thread, the writer's replica and
    /// replay all advance through here, so they cannot drift apart.
    pub fn apply(&mut self, entry: Entry, events: &mut Vec<atlas_engine::Event>) {
        events.clear();
        self.last_time = entry.time;
        let command = atlas_engine::Command { seq: entry.seq, time: entry.time, kind: entry.command };
        self.engine.apply(&command, events);
        let accepted = events.first() == Some(&atlas_engine::Event::Accepted);
        match &command.kind {
            atlas_engine::CommandKind::NewOrder(o) => {
                self.next_order_id = self.next_order_id.max(o.order_id.0 + 1);
                if accepted && let Some(id) = entry.client_order_id {
                    // Full means refused at submission; replay sees no such entry.
                    self.client_orders.insert(o.participant, &id, o.order_id, entry.seq);
                }
            }
            atlas_engine::CommandKind::Amend(a) => {
                // A replace's new client order id names the order from now on.
                if accepted && let (Some(p), Some(id)) = (a.participant, entry.client_order_id) {
                    self.client_orders.insert(p, &id, a.order_id, entry.seq);
                }
            }
            atlas_engine::CommandKind::Cancel { order_id, participant: Some(p) } => {
                // A cancel's own client order id (FIX ClOrdID on an
                // OrderCancelRequest) is used up too, and names the order it
                // cancelled. When the set is full the cancel went ahead
                // without it (cancels are never refused for that).
                if accepted && let Some(id) = entry.client_order_id {
                    self.client_orders.insert(*p, &id, *order_id, entry.seq);
                }
            }
            atlas_engine::CommandKind::EndOfDay { product: None } if accepted => self.client_orders.clear(),
            _ => {}
        }
        self.replayed += 1;
    }
}

/// A batch's metadata with its decoded, chain-verified entries.
struct Decoded {
    first_seq: u64,
    prev_hash: ChainHash,
    hash: ChainHash,
    entries: Vec<crate::Entry>,
}

/// Batches decoded ahead of the replay, at most.
const DECODED_AHEAD: usize = 8;

/// Replays every stored batch after the state's last entry. A second thread reads
/// and decodes each batch (checking its entries' hash chain) while this one
/// applies the previous batch; this thread checks that each batch continues the
/// chain and the sequence exactly where the last one ended. `after_batch` runs
/// after each applied batch.
fn replay(
    storage: &mut dyn Storage,
    state: &mut Recovered,
    after_batch: &mut dyn FnMut(&Recovered) -> Result<(), RecoveryError>,
) -> Result<(), RecoveryError> {
    let after = Seq(state.engine.last_seq());
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Decoded, RecoveryError>>(DECODED_AHEAD);
        let reader = scope.spawn(move || {
            let result = storage.for_each_batch(after, &mut |batch| {
                let decoded = batch.decode().map(|entries| Decoded {
                    first_seq: batch.first_seq.0,
                    prev_hash: batch.prev_hash,
                    hash: batch.hash,
                    entries,
                });
                let failed = decoded.is_err();
                // A closed channel means the replay stopped on an error: stop too.
                if tx.send(decoded.map_err(RecoveryError::from)).is_err() || failed {
                    return Err(RecoveryError::Journal(JournalError::Malformed(batch.first_seq.0)));
                }
                Ok(())
            });
            if let Err(e) = result {
                let _ = tx.send(Err(e));
            }
        });
        let mut events = Vec::new();
        let mut outcome = Ok(());
        for decoded in rx.iter() {
            let step = decoded.and_then(|d| {
                let expected = state.engine.last_seq() + 1;
                if d.first_seq != expected {
                    return Err(JournalError::Gap { expected, found: d.first_seq }.into());
                }
                if d.prev_hash != state.chain_hash {
                    return Err(JournalError::ChainBroken(d.first_seq).into());
                }
                for entry in d.entries {
                    state.apply(entry, &mut events);
                }
                state.chain_hash = d.hash;
                after_batch(state)
            });
            if let Err(e) = step {
                outcome = Err(e);
                break;
            }
        }
        drop(rx);
        // The reader's own error, if any, was sent through the channel.
        let _ = reader.join();
        outcome
    })
}

fn from_snapshot(snapshot: Option<Snapshot>, config: EngineConfig) -> Result<Recovered, RecoveryError> {
    match snapshot {
        None => Ok(Recovered {
            engine: Engine::new(config),
            chain_hash: ChainHash::GENESIS,
            last_time: Timestamp(0),
            next_order_id: 1,
            replayed: 0,
            snapshot_seq: None,
            client_orders: ClientOrders::default(),
        }),
        Some(s) => {
            let engine = Engine::restore(&s.engine, config)
                .map_err(|error| RecoveryError::Snapshot { seq: s.seq.0, error })?;
            let replayed = engine.state_hash();
            if replayed != s.state_hash || engine.last_seq() != s.seq.0 {
                return Err(RecoveryError::StateMismatch { seq: s.seq.0, recorded: s.state_hash, replayed });
            }
            Ok(Recovered {
                engine,
                chain_hash: s.chain_hash,
                last_time: s.time,
                next_order_id: s.next_order_id,
                replayed: 0,
                snapshot_seq: Some(s.seq),
                client_orders: s.client_orders,
            })
        }
    }
}

/// Rebuilds the shard: the latest snapshot (its state hash checked), then every
/// later batch (each entry's hash chain checked).
pub fn recover(storage: &mut dyn Storage, config: EngineConfig) -> Result<Recovered, RecoveryError> {
    let snapshot = storage.latest_snapshot()?;
    let mut state = from_snapshot(snapshot, config)?;
    replay(storage, &mut state, &mut |_| Ok(()))?;
    Ok(state)
}

/// What `verify` checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries replayed from genesis.
    pub entries: u64,
    /// Snapshots whose state hash was compared with the replay.
    pub snapshots_checked: usize,
    /// The final state hash.
    pub state_hash: StateHash,
    /// The final chain hash.
    pub chain_hash: ChainHash,
}

/// Replays the whole journal from genesis on a fresh engine: checks the hash
/// chain of every entry and, at every stored snapshot, that the replayed state hash
/// equals the recorded one.
pub fn verify(storage: &mut dyn Storage, config: EngineConfig) -> Result<VerifyReport, RecoveryError> {
    let checkpoints = storage.snapshot_hashes()?;
    let mut next_checkpoint = 0;
    let mut state = from_snapshot(None, config)?;
    let mut checked = 0;
    replay(storage, &mut state, &mut |state| {
        // Snapshots are taken between batches, so each falls on a batch boundary.
        while let Some(&(seq, recorded)) = checkpoints.get(next_checkpoint) {
            if seq.0 > state.engine.last_seq() {
                break;
            }
            if seq.0 == state.engine.last_seq() {
                let replayed = state.engine.state_hash();
                if replayed != recorded {
                    return Err(RecoveryError::StateMismatch { seq: seq.0, recorded, replayed });
                }
                checked += 1;
            }
            next_checkpoint += 1;
        }
        Ok(())
    })?;
    if checked != checkpoints.len() {
        // A snapshot that matched no batch boundary is itself suspicious.
        let (seq, recorded) = checkpoints[next_checkpoint.min(checkpoints.len() - 1)];
        return Err(RecoveryError::StateMismatch {
            seq: seq.0,
            recorded,
            replayed: state.engine.state_hash(),
        });
    }
    Ok(VerifyReport {
        entries: state.replayed,
        snapshots_checked: checked,
        state_hash: state.engine.state_hash(),
        chain_hash: state.chain_hash,
    })
}
