//! Client order ids already used: what makes a retried new order idempotent.
//!
//! Keyed by (participant, client order id), remembering the order id and the
//! sequence number of the accepted order. Only accepted orders are remembered (a
//! rejected one changed nothing, so its id may be used again). Like FIX ClOrdID,
//! uniqueness is per trading day: the all-products end of day clears the set. It
//! is sequencer state, not engine state, so it travels in snapshots and is rebuilt
//! by replay.

use std::collections::HashMap;

use atlas_types::{OrderId, ParticipantId, Seq};

use crate::DecodeError;

/// The most remembered client order ids per shard and trading day. Beyond it,
/// new orders that carry one are refused until the next end of day (orders
/// without one are unaffected). Each costs ~100 bytes (key, string, map slot):
/// at most ~0.5 GB, and the set also travels in every snapshot.
pub const CLIENT_ORDER_IDS_MAX: usize = 5_000_000;

/// The set of (participant, client order id) → (order id, seq) of the day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientOrders {
    map: HashMap<(ParticipantId, String), (OrderId, Seq)>,
}

impl ClientOrders {
    /// The accepted order that already used this id, if any.
    pub fn get(&self, participant: ParticipantId, id: &str) -> Option<(OrderId, Seq)> {
        // A borrowed-key lookup would need a custom key type; the ids are short.
        self.map.get(&(participant, id.to_owned())).copied()
    }

    /// Remembers an accepted order's id. Returns false when the set is full.
    pub fn insert(&mut self, participant: ParticipantId, id: String, order: OrderId, seq: Seq) -> bool {
        if self.map.len() >= CLIENT_ORDER_IDS_MAX {
            return false;
        }
        self.map.insert((participant, id), (order, seq));
        true
    }

    /// True when no more ids can be remembered today.
    pub fn is_full(&self) -> bool {
        self.map.len() >= CLIENT_ORDER_IDS_MAX
    }

    /// Forgets everything (end of the trading day).
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when none is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A canonical encoding (sorted), for snapshots.
    pub fn encode(&self) -> Vec<u8> {
        let mut items: Vec<_> = self.map.iter().collect();
        items.sort();
        let mut out = Vec::with_capacity(4 + items.len() * 40);
        out.extend_from_slice(&(items.len() as u32).to_le_bytes());
        for ((participant, id), (order, seq)) in items {
            out.extend_from_slice(&participant.0.to_le_bytes());
            // Ids are at most 64 bytes (validated on submission).
            out.push(id.len() as u8);
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&order.0.to_le_bytes());
            out.extend_from_slice(&seq.0.to_le_bytes());
        }
        out
    }

    /// Decodes [`ClientOrders::encode`] output.
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
        let count = u32_of(take(&mut bytes, 4)?) as usize;
        if count > CLIENT_ORDER_IDS_MAX {
            return Err(DecodeError::Invalid("client order id count"));
        }
        let mut map = HashMap::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            let participant = ParticipantId(u32_of(take(&mut bytes, 4)?));
            let len = usize::from(take(&mut bytes, 1)?[0]);
            let id = std::str::from_utf8(take(&mut bytes, len)?)
                .map_err(|_| DecodeError::Invalid("client order id"))?
                .to_owned();
            if !crate::valid_client_order_id(&id) {
                return Err(DecodeError::Invalid("client order id"));
            }
            let order = OrderId(u64_of(take(&mut bytes, 8)?));
            let seq = Seq(u64_of(take(&mut bytes, 8)?));
            if map.insert((participant, id), (order, seq)).is_some() {
                return Err(DecodeError::Invalid("duplicate client order id"));
            }
        }
        if !bytes.is_empty() {
            return Err(DecodeError::Trailing);
        }
        Ok(ClientOrders { map })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_is_canonical() {
        let mut c = ClientOrders::default();
        c.insert(ParticipantId(2), "b".into(), OrderId(7), Seq(9));
        c.insert(ParticipantId(1), "a-1".into(), OrderId(3), Seq(4));
        let bytes = c.encode();
        let back = ClientOrders::decode(&bytes).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.get(ParticipantId(1), "a-1"), Some((OrderId(3), Seq(4))));
        assert_eq!(back.get(ParticipantId(2), "a-1"), None);
        assert!(ClientOrders::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
