//! Client order ids already used: what makes a retried new order idempotent.
//!
//! Keyed by (participant, client order id), remembering the order id and the
//! sequence number of the accepted order. A replace (an amend that carries a
//! client order id, as a FIX OrderCancelReplaceRequest's ClOrdID) uses its id
//! the same way, for the order it changed, and so does a cancel that carries
//! one (an OrderCancelRequest's ClOrdID), for the order it cancelled. Only accepted commands are
//! remembered (a rejected one changed nothing, so its id may be used again). Like FIX ClOrdID,
//! uniqueness is per trading day: the all-products end of day clears the set. It
//! is sequencer state, not engine state, so it travels in snapshots and is rebuilt
//! by replay.

use std::collections::HashMap;
use std::hash::BuildHasher;

use atlas_types::{OrderId, ParticipantId, Seq};
use sha2::{Digest as _, Sha256};

use crate::DecodeError;

/// The most remembered client order ids per shard and trading day. Beyond it,
/// new orders that carry one are refused until the next end of day (orders
/// without one are unaffected). Each costs a 32-byte map slot, ~40-70 bytes
/// at the maps' load: at most ~0.35 GB, and 32 bytes in every snapshot.
pub const CLIENT_ORDER_IDS_MAX: usize = 5_000_000;

/// Sub-maps the set is split into. A hash map grows by rehashing every entry
/// at once: one map of the day's ids stalled the sequencer, and every order
/// behind it, for tens of milliseconds each time it doubled (at 229k and
/// 459k ids, 140 and 325 ms order-to-ack at 20k orders/s while the backlog
/// drained). Split, each part rehashes 1/256 of the entries.
///
/// But parts of equal odds fill in step and all double within a few thousand
/// ids of each other, which cost the same burst spread over a second (the
/// engine and snapshot threads both doubled their CPU then). So part `i`
/// takes a share proportional to 2^(i/256): the shares span one doubling, and
/// the parts cross their thresholds one after another, evenly over each
/// doubling of the set.
const PARTS: usize = 256;

/// Part `i` takes the hashes below `bounds()[i]` (and at or above the bound
/// before it), out of 2^32: bound `i` is 2^32 × (2^((i+1)/256) − 1).
fn bounds() -> &'static [u64; PARTS] {
    static BOUNDS: std::sync::OnceLock<[u64; PARTS]> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| {
        let mut b = [0u64; PARTS];
        for (i, bound) in b.iter_mut().enumerate() {
            *bound = ((2f64.powf((i + 1) as f64 / PARTS as f64) - 1.0) * 4_294_967_296.0).round() as u64;
        }
        // Exactly 2^32 at the end, whatever the rounding: every hash has a part.
        b[PARTS - 1] = 1 << 32;
        b
    })
}

/// What the set keeps of a (participant, client order id): the first 128
/// bits of SHA-256 over the participant and the id. Two pairs share one only
/// by a collision of SHA-256's first half, which takes about 2^64 tries to
/// find on purpose, so it stands for the pair. It is 16 bytes in the map's
/// slot, where the id was a heap string (with its allocation, the set took
/// ~120 bytes per id), and a lookup allocates nothing.
type Key = [u8; 16];

fn key(participant: ParticipantId, id: &str) -> Key {
    let mut h = Sha256::new();
    h.update(participant.0.to_le_bytes());
    h.update(id.as_bytes());
    let digest = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&digest[..16]);
    k
}

/// One of the maps the set is split into.
type Part = HashMap<Key, (OrderId, Seq), foldhash::quality::RandomState>;

/// The set of (participant, client order id) → (order id, seq) of the day.
#[derive(Clone)]
pub struct ClientOrders {
    /// Picks a key's part. Seeded, as are the parts' own hashers: anyone can
    /// compute a key, so where keys land must not be predictable, whatever
    /// ids a client chooses.
    pick: foldhash::quality::RandomState,
    parts: Box<[Part]>,
    len: usize,
    /// [`CLIENT_ORDER_IDS_MAX`], but in tests.
    limit: usize,
}

impl Default for ClientOrders {
    fn default() -> ClientOrders {
        ClientOrders {
            pick: foldhash::quality::RandomState::default(),
            parts: (0..PARTS).map(|_| HashMap::default()).collect(),
            len: 0,
            limit: CLIENT_ORDER_IDS_MAX,
        }
    }
}

/// What a command's client order id means for it (see [`ClientOrders::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdCheck {
    /// Not used today: the command goes ahead.
    Free,
    /// Used today by this order's command at this seq: a retry, or a reuse.
    Used(OrderId, Seq),
    /// Not used, but no more ids can be remembered today: refused.
    Exhausted,
}

impl PartialEq for ClientOrders {
    fn eq(&self, other: &ClientOrders) -> bool {
        self.len == other.len && self.iter().all(|(k, v)| other.get_key(k) == Some(*v))
    }
}

impl Eq for ClientOrders {}

impl std::fmt::Debug for ClientOrders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl ClientOrders {
    fn part(&self, key: &Key) -> usize {
        // The top bits: the parts' maps use the low ones of their own hash.
        let h = self.pick.hash_one(key) >> 32;
        bounds().partition_point(|b| *b <= h)
    }

    fn iter(&self) -> impl Iterator<Item = (&Key, &(OrderId, Seq))> {
        self.parts.iter().flat_map(|m| m.iter())
    }

    fn get_key(&self, key: &Key) -> Option<(OrderId, Seq)> {
        self.parts[self.part(key)].get(key).copied()
    }

    /// The accepted order that already used this id, if any.
    pub fn get(&self, participant: ParticipantId, id: &str) -> Option<(OrderId, Seq)> {
        self.get_key(&key(participant, id))
    }

    /// Remembers an accepted order's id. Returns false when the set is full.
    pub fn insert(&mut self, participant: ParticipantId, id: &str, order: OrderId, seq: Seq) -> bool {
        self.insert_key(key(participant, id), order, seq)
    }

    /// Whether a command carrying client order id `id` may go ahead. A cancel
    /// (`cancel`) only lowers risk: when the day's ids are exhausted it still
    /// goes ahead, and its id is not remembered.
    pub(crate) fn check(&self, participant: ParticipantId, id: &str, cancel: bool) -> IdCheck {
        match self.get(participant, id) {
            Some((order, seq)) => IdCheck::Used(order, seq),
            None if self.is_full() && !cancel => IdCheck::Exhausted,
            None => IdCheck::Free,
        }
    }

    fn insert_key(&mut self, key: Key, order: OrderId, seq: Seq) -> bool {
        if self.len >= self.limit {
            return false;
        }
        let part = self.part(&key);
        if self.parts[part].insert(key, (order, seq)).is_none() {
            self.len += 1;
        }
        true
    }

    /// True when no more ids can be remembered today.
    pub fn is_full(&self) -> bool {
        self.len >= self.limit
    }

    /// Forgets everything (end of the trading day).
    pub fn clear(&mut self) {
        for m in self.parts.iter_mut() {
            m.clear();
        }
        self.len = 0;
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A canonical encoding (sorted by key), for snapshots: [`FORMAT_MARK`],
    /// the format, the count, then each key, order id and seq.
    pub fn encode(&self) -> Vec<u8> {
        let mut items: Vec<_> = self.iter().collect();
        items.sort_unstable();
        let mut out = Vec::with_capacity(9 + items.len() * 32);
        out.extend_from_slice(&FORMAT_MARK.to_le_bytes());
        out.push(FORMAT_KEYS);
        out.extend_from_slice(&(items.len() as u32).to_le_bytes());
        for (key, (order, seq)) in items {
            out.extend_from_slice(key);
            out.extend_from_slice(&order.0.to_le_bytes());
            out.extend_from_slice(&seq.0.to_le_bytes());
        }
        out
    }

    /// Decodes [`ClientOrders::encode`] output, or the first format (the ids
    /// themselves), which snapshots taken before held.
    pub fn decode(mut bytes: &[u8]) -> Result<ClientOrders, DecodeError> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
            if bytes.len() < n {
                return Err(DecodeError::Truncated);
            }
            let (head, rest) = bytes.split_at(n);
            *bytes = rest;
            Ok(head)
        }
        let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
        let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let first = u32_of(take(&mut bytes, 4)?);
        let keyed = first == FORMAT_MARK;
        if keyed && take(&mut bytes, 1)?[0] != FORMAT_KEYS {
            return Err(DecodeError::Invalid("client order id format"));
        }
        let count = if keyed { u32_of(take(&mut bytes, 4)?) } else { first } as usize;
        if count > CLIENT_ORDER_IDS_MAX {
            return Err(DecodeError::Invalid("client order id count"));
        }
        let mut set = ClientOrders::default();
        let mut last: Option<Key> = None;
        for _ in 0..count {
            let key = if keyed {
                let mut k: Key = [0; 16];
                k.copy_from_slice(take(&mut bytes, 16)?);
                // Strictly increasing: canonical, and no key twice.
                if last.is_some_and(|l| l >= k) {
                    return Err(DecodeError::Invalid("client order ids out of order"));
                }
                last = Some(k);
                k
            } else {
                let participant = ParticipantId(u32_of(take(&mut bytes, 4)?));
                let len = usize::from(take(&mut bytes, 1)?[0]);
                let id = std::str::from_utf8(take(&mut bytes, len)?)
                    .map_err(|_| DecodeError::Invalid("client order id"))?;
                if !crate::valid_client_order_id(id) {
                    return Err(DecodeError::Invalid("client order id"));
                }
                let k = key(participant, id);
                if set.get_key(&k).is_some() {
                    return Err(DecodeError::Invalid("duplicate client order id"));
                }
                k
            };
            let order = OrderId(u64_of(take(&mut bytes, 8)?));
            let seq = Seq(u64_of(take(&mut bytes, 8)?));
            set.insert_key(key, order, seq);
        }
        if !bytes.is_empty() {
            return Err(DecodeError::Trailing);
        }
        Ok(set)
    }
}

/// Opens the keyed encoding. No count of the first format reaches it (they
/// are at most [`CLIENT_ORDER_IDS_MAX`]).
const FORMAT_MARK: u32 = u32::MAX;
/// The keyed encoding's format number.
const FORMAT_KEYS: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    /// At the day's limit, new orders and replaces carrying an unused id are
    /// refused and a cancel goes ahead (its id not remembered); a used id is
    /// reported as used, limit or not.
    #[test]
    fn at_the_limit_only_cancels_go_ahead() {
        let mut c = ClientOrders { limit: 2, ..ClientOrders::default() };
        let p = ParticipantId(1);
        assert!(c.insert(p, "a", OrderId(1), Seq(1)));
        assert_eq!(c.check(p, "b", false), IdCheck::Free);
        assert!(c.insert(p, "b", OrderId(2), Seq(2)));
        assert!(c.is_full());
        assert_eq!(c.check(p, "c", false), IdCheck::Exhausted);
        assert_eq!(c.check(p, "c", true), IdCheck::Free);
        assert_eq!(c.check(p, "a", true), IdCheck::Used(OrderId(1), Seq(1)));
        assert_eq!(c.check(p, "b", false), IdCheck::Used(OrderId(2), Seq(2)));
        // The cancel's id is not remembered: the set stays as it was.
        assert!(!c.insert(p, "c", OrderId(1), Seq(3)));
        assert_eq!((c.len(), c.get(p, "c")), (2, None));
        assert_eq!(c.check(ParticipantId(2), "a", false), IdCheck::Exhausted);
    }

    #[test]
    fn encode_decode_round_trip_is_canonical() {
        let mut c = ClientOrders::default();
        c.insert(ParticipantId(2), "b", OrderId(7), Seq(9));
        c.insert(ParticipantId(1), "a-1", OrderId(3), Seq(4));
        let bytes = c.encode();
        let back = ClientOrders::decode(&bytes).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.get(ParticipantId(1), "a-1"), Some((OrderId(3), Seq(4))));
        assert_eq!(back.get(ParticipantId(2), "a-1"), None);
        assert!(ClientOrders::decode(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(bytes.len(), 9 + 2 * 32, "a key, an order id and a seq per id");
    }

    /// The first encoding, of the ids themselves, as snapshots taken before
    /// the keyed one hold it: it decodes to the same set.
    #[test]
    fn snapshots_of_the_first_encoding_decode() {
        let mut old = Vec::new();
        old.extend_from_slice(&2u32.to_le_bytes());
        for (participant, id, order, seq) in [(1u32, "a-1", 3u64, 4u64), (2, "b", 7, 9)] {
            old.extend_from_slice(&participant.to_le_bytes());
            old.push(id.len() as u8);
            old.extend_from_slice(id.as_bytes());
            old.extend_from_slice(&order.to_le_bytes());
            old.extend_from_slice(&seq.to_le_bytes());
        }
        let back = ClientOrders::decode(&old).unwrap();
        let mut c = ClientOrders::default();
        c.insert(ParticipantId(2), "b", OrderId(7), Seq(9));
        c.insert(ParticipantId(1), "a-1", OrderId(3), Seq(4));
        assert_eq!(back, c);
        assert_eq!(back.get(ParticipantId(1), "a-1"), Some((OrderId(3), Seq(4))));
        assert_eq!(back.get(ParticipantId(2), "a-1"), None);
        // An id twice, or one that is not valid, is refused as before.
        let mut twice = old.clone();
        twice[..4].copy_from_slice(&3u32.to_le_bytes());
        twice.extend_from_slice(&old[4..4 + 4 + 1 + 3 + 16]);
        assert_eq!(ClientOrders::decode(&twice), Err(DecodeError::Invalid("duplicate client order id")));
        let mut invalid = old.clone();
        invalid[9] = b'\n';
        assert!(ClientOrders::decode(&invalid).is_err());
    }

    /// The keyed encoding is canonical: keys strictly increasing, so none
    /// twice; an unknown format or a count beyond the cap is refused.
    #[test]
    fn keyed_encodings_out_of_order_are_refused() {
        let mut c = ClientOrders::default();
        c.insert(ParticipantId(1), "x", OrderId(1), Seq(1));
        c.insert(ParticipantId(1), "y", OrderId(2), Seq(2));
        let bytes = c.encode();
        let mut swapped = bytes[..9].to_vec();
        swapped.extend_from_slice(&bytes[9 + 32..]);
        swapped.extend_from_slice(&bytes[9..9 + 32]);
        assert_eq!(
            ClientOrders::decode(&swapped),
            Err(DecodeError::Invalid("client order ids out of order"))
        );
        let mut doubled = bytes[..9 + 32].to_vec();
        doubled.extend_from_slice(&bytes[9..9 + 32]);
        assert_eq!(
            ClientOrders::decode(&doubled),
            Err(DecodeError::Invalid("client order ids out of order"))
        );
        let mut format = bytes.clone();
        format[4] = 3;
        assert_eq!(ClientOrders::decode(&format), Err(DecodeError::Invalid("client order id format")));
        let mut count = bytes.clone();
        count[5..9].copy_from_slice(&(CLIENT_ORDER_IDS_MAX as u32 + 1).to_le_bytes());
        assert_eq!(ClientOrders::decode(&count), Err(DecodeError::Invalid("client order id count")));
    }

    #[test]
    fn ids_spread_over_the_parts_and_stay_findable() {
        let mut c = ClientOrders::default();
        let n = 64 * PARTS;
        for i in 0..n {
            let p = ParticipantId(u32::try_from(i % 3).unwrap());
            assert!(c.insert(p, &format!("o{i}"), OrderId(i as u64 + 1), Seq(i as u64)));
        }
        // Entering an id again replaces it and counts once.
        assert!(c.insert(ParticipantId(0), "o0", OrderId(99), Seq(99)));
        assert_eq!(c.len(), n);
        // No part holds the bulk: each rehash moves a small share of the set.
        let largest = c.parts.iter().map(HashMap::len).max().unwrap();
        assert!(largest < 3 * n / PARTS, "largest part {largest} of {n}");
        for i in 1..n {
            let p = ParticipantId(u32::try_from(i % 3).unwrap());
            assert_eq!(c.get(p, &format!("o{i}")), Some((OrderId(i as u64 + 1), Seq(i as u64))));
            assert_eq!(c.get(ParticipantId(7), &format!("o{i}")), None);
        }
        assert_eq!(c.get(ParticipantId(0), "o0"), Some((OrderId(99), Seq(99))));
        // Another instance (other seeds, so other parts) decodes equal.
        let back = ClientOrders::decode(&c.encode()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.encode(), c.encode());
        let mut other = back.clone();
        other.insert(ParticipantId(1), "o1", OrderId(5), Seq(5));
        assert_ne!(other, c);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.get(ParticipantId(1), "o1"), None);
    }

    /// The parts double one after another, not all at once: over each window
    /// of 1/32 of the set's size, a handful of parts rehash (about 11 if
    /// spread evenly), where parts of equal shares would nearly all go within
    /// a few percent of each other.
    #[test]
    fn parts_grow_one_after_another() {
        let b = bounds();
        assert!(b.windows(2).all(|w| w[0] < w[1]) && b[PARTS - 1] == 1 << 32);
        let mut c = ClientOrders::default();
        let mut capacity: Vec<usize> = c.parts.iter().map(HashMap::capacity).collect();
        let mut grew_at = Vec::new();
        for i in 0..300_000usize {
            let part = c.part(&key(ParticipantId(1), &format!("id-{i}")));
            c.insert(ParticipantId(1), &format!("id-{i}"), OrderId(i as u64), Seq(i as u64));
            if c.parts[part].capacity() != capacity[part] {
                capacity[part] = c.parts[part].capacity();
                grew_at.push(i + 1);
            }
        }
        let late: Vec<usize> = grew_at.into_iter().filter(|n| *n >= 20_000).collect();
        assert!(late.len() >= 2 * PARTS, "{} growths past 20k ids", late.len());
        let crowded = late
            .iter()
            .enumerate()
            .map(|(j, n)| late[j..].iter().take_while(|m| **m <= n + n / 32).count())
            .max()
            .unwrap();
        assert!(crowded <= 40, "{crowded} parts grew within 1/32 of the set's size");
    }
}
