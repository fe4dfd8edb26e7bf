//! In-memory storage: for tests of the sequencer's commit, failure and recovery
//! logic, where a real database cannot be made to fail on cue. It can be told to
//! fail appends, and to fail "after the fact" (the batch lands but the caller hears
//! an error, as when a connection drops during COMMIT).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use atlas_engine::StateHash;
use atlas_types::Seq;

use crate::Batch;
use crate::projection::{Effects, OrderRow, TradeRow};
use crate::storage::{RecoveryError, Snapshot, SnapshotSink, Storage, StorageError};

#[derive(Default)]
struct Inner {
    batches: Vec<Batch>,
    snapshots: Vec<Snapshot>,
    orders: std::collections::BTreeMap<u64, OrderRow>,
    trades: Vec<TradeRow>,
    engine_config: Option<atlas_engine::EngineConfig>,
}

/// Shared in-memory journal; clones see the same data.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    inner: Arc<Mutex<Inner>>,
    /// While set, every operation fails.
    pub down: Arc<AtomicBool>,
    /// While set, appends store the batch but report failure.
    pub fail_after_append: Arc<AtomicBool>,
    /// While set, appends wait (a stalled disk), in 1 ms steps.
    pub stalled: Arc<AtomicBool>,
}

impl MemoryStorage {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock poisons it; the data is still consistent
        // (every operation is a single push), so keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self) -> Result<(), StorageError> {
        if self.down.load(Ordering::Acquire) { Err(StorageError("storage is down".into())) } else { Ok(()) }
    }

    /// Stored batches, for inspection.
    pub fn batches(&self) -> Vec<Batch> {
        self.lock().batches.clone()
    }

    /// Every stored order row, by id.
    pub fn orders(&self) -> Vec<OrderRow> {
        self.lock().orders.values().cloned().collect()
    }

    /// Every stored trade row.
    pub fn trades(&self) -> Vec<TradeRow> {
        self.lock().trades.clone()
    }

    /// The last stored sequence number.
    pub fn last_seq(&self) -> u64 {
        self.lock().batches.last().map_or(0, |b| b.last_seq.0)
    }

    /// Replaces a stored batch (to simulate tampering).
    pub fn replace_batch(&self, index: usize, batch: Batch) {
        self.lock().batches[index] = batch;
    }
}

impl SnapshotSink for MemoryStorage {
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.check()?;
        self.lock().snapshots.push(snapshot.clone());
        Ok(())
    }
}

impl Storage for MemoryStorage {
    fn claim_writer(&mut self) -> Result<(), StorageError> {
        // One process, one owner: nothing to fence.
        Ok(())
    }

    fn engine_config(&mut self) -> Result<Option<atlas_engine::EngineConfig>, StorageError> {
        self.check()?;
        Ok(self.lock().engine_config)
    }

    fn record_engine_config(&mut self, config: atlas_engine::EngineConfig) -> Result<(), StorageError> {
        self.check()?;
        self.lock().engine_config = Some(config);
        Ok(())
    }
    fn snapshot_sink(&self) -> Result<Box<dyn SnapshotSink>, StorageError> {
        Ok(Box::new(self.clone()))
    }

    fn append(&mut self, batch: &Batch, effects: &Effects) -> Result<(), StorageError> {
        while self.stalled.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.check()?;
        {
            let mut inner = self.lock();
            inner.batches.push(batch.clone());
            for r in &effects.orders {
                inner.orders.insert(r.id.0, r.clone());
            }
            inner.trades.extend_from_slice(&effects.trades);
        }
        if self.fail_after_append.load(Ordering::Acquire) {
            return Err(StorageError("connection lost during commit".into()));
        }
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        SnapshotSink::save_snapshot(self, snapshot)
    }

    fn open_orders(&mut self) -> Result<Vec<OrderRow>, StorageError> {
        self.check()?;
        Ok(self.lock().orders.values().filter(|r| r.open.0 > 0).cloned().collect())
    }

    fn latest_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        self.check()?;
        Ok(self.lock().snapshots.iter().max_by_key(|s| s.seq).cloned())
    }

    fn snapshot_hashes(&mut self) -> Result<Vec<(Seq, StateHash)>, StorageError> {
        self.check()?;
        let mut v: Vec<_> = self.lock().snapshots.iter().map(|s| (s.seq, s.state_hash)).collect();
        v.sort_by_key(|(seq, _)| *seq);
        Ok(v)
    }

    fn for_each_batch(
        &mut self,
        after: Seq,
        visit: &mut dyn FnMut(Batch) -> Result<(), RecoveryError>,
    ) -> Result<(), RecoveryError> {
        self.check()?;
        let batches: Vec<Batch> =
            self.lock().batches.iter().filter(|b| b.last_seq > after).cloned().collect();
        for b in batches {
            visit(b)?;
        }
        Ok(())
    }
}
