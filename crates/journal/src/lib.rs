//! The command journal: what makes the engine's state durable.
//!
//! Every state-changing command becomes an [`Entry`]: its sequence number, the time
//! the sequencer accepted it, who sent it ([`Actor`]), the client's order id if any,
//! and the engine command. Entries are written in batches; each entry's hash links
//! it to the previous one (`SHA-256(previous hash ‖ entry bytes)`), so a journal
//! that was altered, reordered or truncated in the middle no longer verifies.
//! Replaying the entries through a fresh engine rebuilds the exact state.

pub mod client_orders;
pub mod codec;
pub mod market;
pub mod memory;
pub mod projection;
pub mod risk;
pub mod sequencer;
pub mod storage;

use atlas_engine::{Command, CommandKind};
use atlas_types::{ParticipantId, Seq, Timestamp};
use sha2::{Digest, Sha256};
use std::fmt;
use thiserror::Error;

pub use client_orders::{CLIENT_ORDER_IDS_MAX, ClientOrders};
pub use codec::{CLIENT_ORDER_ID_BYTES_MAX, DecodeError, ENTRY_VERSION};
pub use sequencer::{Receipt, Sequencer, SequencerConfig, SequencerHandle, SubmitError, Ticket};
pub use storage::{
    Recovered, RecoveryError, Snapshot, SnapshotSink, Storage, StorageError, VerifyReport, recover, verify,
};

/// Who sent a command: the journal's audit of every state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Actor {
    /// The user or API key's user id; 0 is the exchange itself (end of day, say).
    pub user: u64,
    /// The participant the user trades for, if any (operators have none).
    pub participant: Option<ParticipantId>,
}

impl Actor {
    /// The exchange acting on its own (scheduled end of day, recovery tools).
    pub const SYSTEM: Actor = Actor { user: 0, participant: None };
}

/// One journaled command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Position in the shard's journal, from 1, without gaps.
    pub seq: Seq,
    /// When the sequencer accepted it (never decreasing).
    pub time: Timestamp,
    /// Who sent it.
    pub actor: Actor,
    /// The client's own id for a new order, a replace or a cancel (each used
    /// once a day per participant), if given.
    pub client_order_id: Option<String>,
    /// What to do.
    pub command: CommandKind,
}

impl Entry {
    /// The engine command this entry replays as.
    pub fn to_command(&self) -> Command {
        Command { seq: self.seq, time: self.time, kind: self.command.clone() }
    }
}

/// Is this an acceptable client order id? 1 to 64 printable ASCII characters, no
/// spaces: what FIX and Coinbase clients send, and nothing that could be confused
/// in a log or a query.
pub fn valid_client_order_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= CLIENT_ORDER_ID_BYTES_MAX && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A link of the hash chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The hash before the first entry.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// The next link: `SHA-256(self ‖ entry bytes)`.
    pub fn next(&self, entry_bytes: &[u8]) -> ChainHash {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update(entry_bytes);
        ChainHash(h.finalize().into())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

/// The most entries in one batch.
pub const BATCH_ENTRIES_MAX: usize = 16_384;

/// A run of consecutive entries as stored: one row of the journal table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Sequence number of the first entry.
    pub first_seq: Seq,
    /// Sequence number of the last entry.
    pub last_seq: Seq,
    /// The chain hash before the first entry.
    pub prev_hash: ChainHash,
    /// The chain hash after the last entry.
    pub hash: ChainHash,
    /// The entries: a count, then each entry's length and bytes.
    pub blob: Vec<u8>,
}

/// Why stored journal data cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum JournalError {
    /// An entry does not decode.
    #[error("entry {index} of the batch at seq {first_seq}: {error}")]
    Decode {
        /// The batch's first sequence number.
        first_seq: u64,
        /// Position in the batch.
        index: usize,
        /// What is wrong.
        error: DecodeError,
    },
    /// The batch framing is damaged.
    #[error("batch at seq {0} is malformed")]
    Malformed(u64),
    /// Sequence numbers are not contiguous.
    #[error("journal gap: expected seq {expected}, found {found}")]
    Gap {
        /// The next sequence number the chain needs.
        expected: u64,
        /// What the journal holds.
        found: u64,
    },
    /// The hash chain does not verify: the journal was altered.
    #[error("hash chain broken at seq {0}")]
    ChainBroken(u64),
}

impl Batch {
    /// Encodes `entries` (consecutive, non-empty) chained onto `prev_hash`.
    pub fn encode(entries: &[Entry], prev_hash: ChainHash) -> Batch {
        assert!(!entries.is_empty() && entries.len() <= BATCH_ENTRIES_MAX, "batch size out of range");
        let mut blob = Vec::with_capacity(4 + entries.len() * 72);
        blob.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        let mut scratch = Vec::with_capacity(96);
        let mut hash = prev_hash;
        for e in entries {
            scratch.clear();
            codec::encode(e, &mut scratch);
            hash = hash.next(&scratch);
            blob.extend_from_slice(&(scratch.len() as u32).to_le_bytes());
            blob.extend_from_slice(&scratch);
        }
        Batch { first_seq: entries[0].seq, last_seq: entries[entries.len() - 1].seq, prev_hash, hash, blob }
    }

    /// Appends `later`, the batch encoded right after this one (its chain starts
    /// at this one's hash), as if both had been encoded at once: the result
    /// decodes and verifies like one batch of all their entries.
    ///
    /// # Panics
    /// If `later` does not follow this batch, or the two exceed
    /// [`BATCH_ENTRIES_MAX`] entries together.
    pub fn extend(&mut self, later: Batch) {
        assert!(
            later.prev_hash == self.hash && later.first_seq.0 == self.last_seq.0 + 1,
            "a batch extends only with the one that follows it"
        );
        let count = |b: &Batch| b.blob.first_chunk::<4>().map_or(0, |c| u32::from_le_bytes(*c) as usize);
        let total = count(self) + count(&later);
        assert!(total <= BATCH_ENTRIES_MAX, "batch size out of range");
        self.blob[..4].copy_from_slice(&(total as u32).to_le_bytes());
        self.blob.extend_from_slice(&later.blob[4..]);
        self.last_seq = later.last_seq;
        self.hash = later.hash;
    }

    /// Decodes and verifies the batch: framing, every entry, contiguous sequence
    /// numbers from `first_seq` to `last_seq`, and the hash chain from `prev_hash`
    /// to `hash`.
    pub fn decode(&self) -> Result<Vec<Entry>, JournalError> {
        let first = self.first_seq.0;
        let malformed = || JournalError::Malformed(first);
        let mut rest = self.blob.as_slice();
        let (count, tail) = rest.split_first_chunk::<4>().ok_or_else(malformed)?;
        rest = tail;
        let count = u32::from_le_bytes(*count) as usize;
        if count == 0 || count > BATCH_ENTRIES_MAX {
            return Err(malformed());
        }
        let mut entries = Vec::with_capacity(count);
        let mut hash = self.prev_hash;
        let mut expected = first;
        for index in 0..count {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(malformed)?;
            let len = u32::from_le_bytes(*len) as usize;
            if tail.len() < len {
                return Err(malformed());
            }
            let (bytes, tail) = tail.split_at(len);
            rest = tail;
            let entry = codec::decode(bytes).map_err(|error| JournalError::Decode {
                first_seq: first,
                index,
                error,
            })?;
            if entry.seq.0 != expected {
                return Err(JournalError::Gap { expected, found: entry.seq.0 });
            }
            expected += 1;
            hash = hash.next(bytes);
            entries.push(entry);
        }
        if !rest.is_empty() || expected - 1 != self.last_seq.0 {
            return Err(malformed());
        }
        if hash != self.hash {
            return Err(JournalError::ChainBroken(self.last_seq.0));
        }
        Ok(entries)
    }
}
