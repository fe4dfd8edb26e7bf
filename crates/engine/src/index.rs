//! The order index: open order id → slot.
//!
//! Two parts, because an exchange's orders come in two kinds: most are cancelled or
//! filled soon after they arrive (a market maker's quotes), and some rest for hours.
//!
//! - **The window**: the newest ids, a fixed number of consecutive ids ending at
//!   the highest id indexed, each in its own cell of a direct-mapped array (cell =
//!   id mod the window's length). Order ids come from the sequencer and are dense,
//!   so placing, finding and removing a recent order is one array access, with no
//!   probing, and recent orders share cache lines.
//! - **The far table**, for ids older than the window: an order still resting when
//!   the window moves past its id moves there, once. Open addressing with linear
//!   probing and backward-shift deletion, so a deletion leaves no tombstone and the
//!   table never stops the engine to rehash in place (the general-purpose map did,
//!   for milliseconds, once a large book had churned). The bucket is the top bits
//!   of the id times 2^64/φ (Fibonacci hashing), so the old orders, whatever their
//!   ids, spread evenly over the table.
//!
//! This replaced one open-addressing table whose bucket was the id's own low bits.
//! That was fast for a book that only grows, and pathological for a real one: once
//! the ids issued outran the table, the orders still resting from an earlier lap of
//! the id space sat in the buckets the newest orders map to, the newest filled that
//! stretch completely, and the overflow piled up into one run of occupied buckets
//! that moved along with them. Each removal shifted back through the whole run: with
//! one order in ten resting for long and the rest cancelled soon, ~370-bucket runs
//! (~5 with Fibonacci hashing), and the engine thread spent more than half its time
//! in `remove` under `atlas bench feed`'s market maker's flow. Fibonacci hashing
//! alone cured that but cost the growing Liquibook book two thirds of its
//! throughput, since its dense ids no longer shared cache lines; the window keeps
//! that locality.
//!
//! Both parts are sized up front from `EngineConfig::orders_reserved` (the window
//! spans twice that many ids, and at least 65,536); the far table is kept at most half full and grows
//! only by doubling, so in steady state nothing grows.

use atlas_types::OrderId;

/// Marks an empty bucket of the far table. Order ids start at 1 (the engine
/// rejects id 0).
const EMPTY: u64 = 0;
/// The smallest far table, in buckets.
const BUCKETS_MIN: usize = 64;
/// The shortest window, in ids: 256 KiB, a few seconds of orders at tens of
/// thousands a second, so that quotes cancelled within seconds never move to
/// the far table even when little is reserved (as by `atlas up`).
const WINDOW_MIN: usize = 65_536;
/// 2^64 / φ, odd: multiplying by it spreads any run of ids evenly over the table.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

/// Order id → slot (`u32`, opaque to the index; `u32::MAX` cannot be stored).
#[derive(Clone, Debug)]
pub(crate) struct OrderIndex {
    /// Slot + 1 of each id in `base..base + window.len()`, in cell
    /// `id & (window.len() - 1)`; 0 where that id is not indexed.
    window: Vec<u32>,
    /// The oldest id the window covers.
    base: u64,
    /// Ids indexed in the window.
    in_window: usize,
    /// Ids below `base`.
    far: Far,
}

impl Default for OrderIndex {
    fn default() -> OrderIndex {
        OrderIndex::with_capacity(0)
    }
}

impl OrderIndex {
    /// An index that holds `n` entries without growing, whichever of them rest.
    pub fn with_capacity(n: usize) -> OrderIndex {
        let window = n.saturating_mul(2).next_power_of_two().max(WINDOW_MIN);
        OrderIndex { window: vec![0; window], base: 0, in_window: 0, far: Far::with_capacity(n) }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.window.len() - 1
    }

    /// The window's cell for `id`, if the window covers it.
    #[inline]
    fn cell(&self, id: u64) -> Option<usize> {
        (id >= self.base && id - self.base < self.window.len() as u64).then(|| id as usize & self.mask())
    }

    /// Entries held.
    #[inline]
    pub fn len(&self) -> usize {
        self.in_window + self.far.len
    }

    /// The slot of `id` (never found for id 0, which no order has: commands
    /// may still name it).
    #[inline]
    pub fn get(&self, id: &OrderId) -> Option<u32> {
        if id.0 < self.base {
            return self.far.get(id.0);
        }
        let stored = self.window[self.cell(id.0)?];
        stored.checked_sub(1)
    }

    /// The slot of an id known to be indexed (panics otherwise, like a map).
    #[inline]
    pub fn slot(&self, id: &OrderId) -> u32 {
        match self.get(id) {
            Some(v) => v,
            None => panic!("order {id} is not in the index"),
        }
    }

    /// Sets the slot of `id` (which must not be 0), returning the previous one.
    #[inline]
    pub fn insert(&mut self, id: OrderId, value: u32) -> Option<u32> {
        assert_ne!(id.0, EMPTY, "order id 0 cannot be indexed");
        assert_ne!(value, u32::MAX, "slot u32::MAX cannot be indexed");
        if id.0 < self.base {
            return self.far.insert(id.0, value);
        }
        let cell = match self.cell(id.0) {
            Some(c) => c,
            None => {
                self.slide(id.0);
                id.0 as usize & self.mask()
            }
        };
        let previous = std::mem::replace(&mut self.window[cell], value + 1);
        if previous == 0 {
            self.in_window += 1;
        }
        previous.checked_sub(1)
    }

    /// Removes `id`, returning its slot.
    #[inline]
    pub fn remove(&mut self, id: &OrderId) -> Option<u32> {
        if id.0 < self.base {
            return self.far.remove(id.0);
        }
        let cell = self.cell(id.0)?;
        let previous = std::mem::replace(&mut self.window[cell], 0);
        if previous != 0 {
            self.in_window -= 1;
        }
        previous.checked_sub(1)
    }

    /// Moves the window on so that it ends at `newest`; the ids it leaves behind
    /// that are still indexed move to the far table. With dense ids the window
    /// moves one id per order, so this looks at one cell per order.
    fn slide(&mut self, newest: u64) {
        let len = self.window.len() as u64;
        let base = newest - (len - 1);
        let leaving = (base - self.base).min(len);
        let mask = self.mask();
        let mut id = self.base;
        while id < self.base + leaving && self.in_window > 0 {
            let cell = id as usize & mask;
            let stored = std::mem::replace(&mut self.window[cell], 0);
            if stored != 0 {
                self.in_window -= 1;
                self.far.insert(id, stored - 1);
            }
            id += 1;
        }
        self.base = base;
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.window.capacity() * 4 + self.far.heap_bytes()
    }
}

/// The far table: id → slot, open addressing (see the module's comment).
#[derive(Clone, Debug)]
struct Far {
    keys: Vec<u64>,
    values: Vec<u32>,
    len: usize,
    /// 64 − log2(buckets): the bucket is the top bits of the id × `FIBONACCI`.
    shift: u32,
}

impl Far {
    fn with_capacity(n: usize) -> Far {
        let buckets = (n.saturating_mul(2)).next_power_of_two().max(BUCKETS_MIN);
        Far { keys: vec![EMPTY; buckets], values: vec![0; buckets], len: 0, shift: shift_for(buckets) }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.keys.len() - 1
    }

    /// The bucket where `id`'s probe run starts.
    #[inline]
    fn home(&self, id: u64) -> usize {
        (id.wrapping_mul(FIBONACCI) >> self.shift) as usize
    }

    /// The bucket holding `id`, if any. Empty is tested first: `id` 0 is
    /// `EMPTY`, and matching it would hand back an empty bucket's stale slot.
    #[inline]
    fn find(&self, id: u64) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(id);
        loop {
            let k = self.keys[i];
            if k == EMPTY {
                return None;
            }
            if k == id {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    fn get(&self, id: u64) -> Option<u32> {
        self.find(id).map(|i| self.values[i])
    }

    fn insert(&mut self, id: u64, value: u32) -> Option<u32> {
        if (self.len + 1) * 2 > self.keys.len() {
            self.grow();
        }
        let mask = self.mask();
        let mut i = self.home(id);
        loop {
            let k = self.keys[i];
            if k == id {
                return Some(std::mem::replace(&mut self.values[i], value));
            }
            if k == EMPTY {
                self.keys[i] = id;
                self.values[i] = value;
                self.len += 1;
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes `id`, returning its slot. Later entries of the probe run shift back
    /// into the gap, so no tombstone is left.
    fn remove(&mut self, id: u64) -> Option<u32> {
        let mut hole = self.find(id)?;
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
            let home = self.home(k);
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
        self.shift = shift_for(buckets);
        self.len = 0;
        for (k, v) in old_keys.into_iter().zip(old_values) {
            if k != EMPTY {
                self.insert(k, v);
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        self.keys.capacity() * 8 + self.values.capacity() * 4
    }
}

/// The shift that keeps the top log2(`buckets`) bits of a 64-bit product.
fn shift_for(buckets: usize) -> u32 {
    debug_assert!(buckets.is_power_of_two() && buckets >= BUCKETS_MIN);
    64 - buckets.trailing_zeros()
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
                        assert_eq!(index.get(&OrderId(k)), Some(v), "pattern {pattern}");
                    }
                    assert_eq!(index.get(&OrderId(next * 1_000_003)), None);
                }
            }
        }
    }

    /// The length of the run of occupied far-table buckets that holds `id`:
    /// removing it shifts entries back through the rest of that run.
    fn run_around(far: &Far, id: u64) -> usize {
        let mask = far.mask();
        let Some(at) = far.find(id) else { return 0 };
        let mut run = 1;
        while run <= mask && far.keys[at.wrapping_sub(run) & mask] != EMPTY {
            run += 1;
        }
        let mut after = 1;
        while run <= mask && far.keys[(at + after) & mask] != EMPTY {
            run += 1;
            after += 1;
        }
        run
    }

    /// A market maker's book: half the orders are cancelled soon after they
    /// are placed, four in ten a while later, one in ten rests for good, and
    /// the ids run over the index's size many times. The short-lived orders
    /// never leave the window; the others move to the far table, where the runs
    /// of occupied buckets a removal walks stay short (with the id's low bits
    /// as the bucket, the orders still resting from earlier laps of the id space
    /// and the dense newer ones piled up into runs of hundreds of buckets, and
    /// removals slowed the engine several-fold).
    #[test]
    fn orders_resting_for_long_move_to_the_far_table_and_keep_its_runs_short() {
        let mut index = OrderIndex::with_capacity(1_024);
        let window = index.window.len();
        let (mut soon, mut later) = (std::collections::VecDeque::new(), std::collections::VecDeque::new());
        let last = 6 * window as u64;
        for id in 1..=last {
            assert_eq!(index.insert(OrderId(id), id as u32), None);
            match id % 10 {
                0 => {}
                1..=4 => later.push_back(id),
                _ => soon.push_back(id),
            }
            // Cancelled 100 orders later, or a window's worth of orders later
            // (two and a half windows' span of ids).
            for (queue, lives) in [(&mut soon, 100), (&mut later, window)] {
                if queue.len() > lives {
                    let old = queue.pop_front().unwrap_or_default();
                    assert_eq!(index.remove(&OrderId(old)), Some(old as u32));
                }
            }
        }
        let resting: Vec<u64> = (1..=last / 10).map(|k| k * 10).collect();
        assert_eq!(index.len(), resting.len() + soon.len() + later.len());
        // The short-lived never left the window; the rest did once the window
        // passed them.
        assert!(soon.iter().all(|&id| index.cell(id).is_some()));
        let live = resting.iter().chain(&soon).chain(&later);
        assert_eq!(index.far.len, live.clone().filter(|&&id| index.cell(id).is_none()).count());
        for &id in live {
            assert_eq!(index.get(&OrderId(id)), Some(id as u32));
        }
        // What the next removals from the far table walk.
        let runs: Vec<usize> =
            later.iter().map(|&id| run_around(&index.far, id)).filter(|&r| r > 0).collect();
        assert!(runs.len() > window / 10, "{} of the later-cancelled orders moved", runs.len());
        let mean = runs.iter().sum::<usize>() as f64 / runs.len() as f64;
        assert!(mean < 3.0, "far runs of {mean:.1} buckets on average");
        // Cancelled soon: long ago (behind the window), and lately (in it).
        for gone in [15, (last - 1_000) / 10 * 10 + 5] {
            assert_eq!(index.get(&OrderId(gone)), None);
        }
        for id in resting {
            assert_eq!(index.remove(&OrderId(id)), Some(id as u32));
        }
    }

    /// An id far ahead of the window moves the whole window on; an id below it
    /// goes straight to the far table; either can be replaced and removed.
    #[test]
    fn ids_behind_and_far_ahead_of_the_window() {
        let mut index = OrderIndex::with_capacity(0);
        for id in 1..=100 {
            index.insert(OrderId(id), id as u32);
        }
        let ahead = 1u64 << 40;
        let behind = ahead - 2 * index.window.len() as u64;
        assert_eq!(index.insert(OrderId(ahead), 7), None);
        assert_eq!((index.in_window, index.far.len), (1, 100));
        assert_eq!(index.insert(OrderId(behind), 8), None);
        assert_eq!(index.far.len, 101);
        assert_eq!(index.insert(OrderId(50), 9), Some(50));
        assert_eq!(index.get(&OrderId(50)), Some(9));
        assert_eq!(index.get(&OrderId(ahead + 1)), None);
        assert_eq!(index.remove(&OrderId(ahead + 1)), None);
        assert_eq!(index.remove(&OrderId(ahead)), Some(7));
        assert_eq!(index.remove(&OrderId(behind)), Some(8));
        assert_eq!(index.len(), 100);
        assert_eq!(index.slot(&OrderId(100)), 100);
    }

    /// Id 0 is no order's, and 0 marks an empty far-table bucket: looking it
    /// up must not return the stale slot an emptied bucket still holds.
    #[test]
    fn id_zero_is_never_found_in_either_part() {
        let mut index = OrderIndex::with_capacity(0);
        assert_eq!(index.get(&OrderId(0)), None);
        let last = 3 * index.window.len() as u64;
        for id in 1..=last {
            index.insert(OrderId(id), 7);
            if id % 2 == 0 {
                index.remove(&OrderId(id));
            }
        }
        assert!(index.far.len > 0 && index.base > 0);
        assert_eq!(index.get(&OrderId(0)), None);
        assert_eq!(index.remove(&OrderId(0)), None);
        assert_eq!(index.len(), (last / 2) as usize);
    }

    #[test]
    fn reinsert_replaces_and_remove_of_missing_is_none() {
        let mut index = OrderIndex::default();
        assert_eq!(index.insert(OrderId(5), 1), None);
        assert_eq!(index.insert(OrderId(5), 2), Some(1));
        assert_eq!(index.slot(&OrderId(5)), 2);
        assert_eq!(index.remove(&OrderId(6)), None);
        assert_eq!(index.remove(&OrderId(5)), Some(2));
        assert_eq!(index.len(), 0);
    }
}
