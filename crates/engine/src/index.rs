//! The order index: open order id → slot.
//!
//! Open addressing with linear probing and backward-shift deletion, so a deletion
//! leaves no tombstone and the table never stops the engine to rehash in place (the
//! general-purpose map did, for milliseconds, once a large book had churned). The
//! bucket is the id's own low bits: order ids come from the sequencer and are dense,
//! so a lookup almost always hits its first bucket and the entries of recent orders
//! share cache lines. The table is kept at most half full and only grows, by
//! doubling; sized up front from `EngineConfig::orders_reserved`, it does not grow
//! at all in steady state.

use atlas_types::OrderId;

/// Marks an empty bucket. Order ids start at 1 (the engine rejects id 0).
const EMPTY: u64 = 0;
/// The smallest table, in buckets.
const BUCKETS_MIN: usize = 64;

/// Order id → slot (`u32`, opaque to the index).
#[derive(Clone, Debug)]
pub(crate) struct OrderIndex {
    keys: Vec<u64>,
    values: Vec<u32>,
    len: usize,
}

impl Default for OrderIndex {
    fn default() -> OrderIndex {
        OrderIndex::with_capacity(0)
    }
}

impl OrderIndex {
    /// An index that holds `n` entries without growing.
    pub fn with_capacity(n: usize) -> OrderIndex {
        let buckets = (n.saturating_mul(2)).next_power_of_two().max(BUCKETS_MIN);
        OrderIndex { keys: vec![EMPTY; buckets], values: vec![0; buckets], len: 0 }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.keys.len() - 1
    }

    /// Entries held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The bucket holding `id`, if any.
    #[inline]
    fn find(&self, id: u64) -> Option<usize> {
        let mask = self.mask();
        let mut i = id as usize & mask;
        loop {
            let k = self.keys[i];
            if k == id {
                return Some(i);
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot of `id`.
    #[inline]
    pub fn get(&self, id: &OrderId) -> Option<&u32> {
        debug_assert_ne!(id.0, EMPTY);
        self.find(id.0).map(|i| &self.values[i])
    }

    /// Sets the slot of `id` (which must not be 0), returning the previous one.
    #[inline]
    pub fn insert(&mut self, id: OrderId, value: u32) -> Option<u32> {
        assert_ne!(id.0, EMPTY, "order id 0 cannot be indexed");
        if (self.len + 1) * 2 > self.keys.len() {
            self.grow();
        }
        let mask = self.mask();
        let mut i = id.0 as usize & mask;
        loop {
            let k = self.keys[i];
            if k == id.0 {
                return Some(std::mem::replace(&mut self.values[i], value));
            }
            if k == EMPTY {
                self.keys[i] = id.0;
                self.values[i] = value;
                self.len += 1;
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes `id`, returning its slot. Later entries of the probe run shift back
    /// into the gap, so no tombstone is left.
    #[inline]
    pub fn remove(&mut self, id: &OrderId) -> Option<u32> {
        let mut hole = self.find(id.0)?;
        let value = self.values[hole];
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let k = self.keys[j];
            if k == EMPTY {
                break;
            }
            // Move k into the hole unless its home bucket lies cyclically in
            // (hole, j]: then it is already as close to home as it can be.
            let home = k as usize & mask;
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.keys[hole] = k;
                self.values[hole] = self.values[j];
                hole = j;
            }
        }
        self.keys[hole] = EMPTY;
        self.len -= 1;
        Some(value)
    }

    fn grow(&mut self) {
        let old_keys = std::mem::take(&mut self.keys);
        let old_values = std::mem::take(&mut self.values);
        let buckets = (old_keys.len() * 2).max(BUCKETS_MIN);
        self.keys = vec![EMPTY; buckets];
        self.values = vec![0; buckets];
        self.len = 0;
        for (k, v) in old_keys.into_iter().zip(old_values) {
            if k != EMPTY {
                self.insert(OrderId(k), v);
            }
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * 8 + self.values.capacity() * 4
    }
}

impl std::ops::Index<&OrderId> for OrderIndex {
    type Output = u32;

    /// The slot of an id known to be present (panics otherwise, like a map).
    fn index(&self, id: &OrderId) -> &u32 {
        match self.get(id) {
            Some(v) => v,
            None => panic!("order {id} is not in the index"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Random inserts and removes against a HashMap, with dense ids, strided ids and
    /// ids that collide modulo the table size, across growth.
    #[test]
    fn index_matches_a_hashmap() {
        let mut seed = 0x9E37_79B9_u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for pattern in 0..4u64 {
            let mut index = OrderIndex::with_capacity(16);
            let mut model: HashMap<u64, u32> = HashMap::new();
            let mut next = 1u64;
            let mut live: Vec<u64> = Vec::new();
            for step in 0..50_000u32 {
                if live.is_empty() || rnd(100) < 55 {
                    let id = match pattern {
                        0 => next,                             // dense
                        1 => next * 8,                         // strided
                        2 => 1 + (next % 7) * 4096 + next / 7, // many collide modulo 4096
                        _ => 1 + rnd(1 << 40),                 // random
                    };
                    next += 1;
                    if model.contains_key(&id) {
                        continue;
                    }
                    assert_eq!(index.insert(OrderId(id), step), None);
                    model.insert(id, step);
                    live.push(id);
                } else {
                    let at = rnd(live.len() as u64) as usize;
                    let id = live.swap_remove(at);
                    assert_eq!(index.remove(&OrderId(id)), model.remove(&id));
                }
                assert_eq!(index.len(), model.len());
                if step % 101 == 0 {
                    for (&k, &v) in &model {
                        assert_eq!(index.get(&OrderId(k)), Some(&v), "pattern {pattern}");
                    }
                    assert_eq!(index.get(&OrderId(next * 1_000_003)), None);
                }
            }
        }
    }

    #[test]
    fn reinsert_replaces_and_remove_of_missing_is_none() {
        let mut index = OrderIndex::default();
        assert_eq!(index.insert(OrderId(5), 1), None);
        assert_eq!(index.insert(OrderId(5), 2), Some(1));
        assert_eq!(index[&OrderId(5)], 2);
        assert_eq!(index.remove(&OrderId(6)), None);
        assert_eq!(index.remove(&OrderId(5)), Some(2));
        assert_eq!(index.len(), 0);
    }
}
