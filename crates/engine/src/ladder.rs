//! The price ladder of one book side: which price levels exist, in price order.
//!
//! Prices of one side cluster within a few thousand ticks, so the ladder is a
//! direct-mapped array of level slots indexed by price in ticks over a window that
//! follows the book, with an occupancy bitmap and a summary bitmap (one bit per
//! non-zero bitmap word). Finding, adding and dropping a level are O(1); finding the
//! next best level after the best one empties scans a word or two. The window grows
//! (and re-centres) when an order lands outside it, up to [`DENSE_SPAN_MAX`] ticks;
//! a side whose prices spread wider than that switches to a sorted vector until it
//! empties, so no price is ever refused for being far from the others.
//!
//! Keys are side-oriented (`key_of`): larger is better on both sides, so the best
//! level is the highest key.

use crate::book::{LevelRef, NIL};

/// The widest price span, in ticks, a dense ladder covers (its array holds at most
/// twice this many 4-byte slots: 8 MiB).
pub(crate) const DENSE_SPAN_MAX: i64 = 1 << 20;
/// The smallest dense window, in ticks.
const DENSE_LEN_MIN: usize = 1 << 10;

/// A set of price levels, best (highest key) first when iterated.
#[derive(Clone, Debug)]
pub(crate) struct Ladder {
    /// Keys are multiples of this (the product's tick).
    tick: i64,
    mode: Mode,
}

#[derive(Clone, Debug)]
enum Mode {
    Dense(Dense),
    /// Sorted worst to best (ascending key).
    Sparse(Vec<LevelRef>),
}

#[derive(Clone, Debug, Default)]
struct Dense {
    /// The tick index (`key / tick`) of `slots[0]`.
    base: i64,
    /// Level slot per tick index, `NIL` where there is no level. Length is zero or
    /// a power of two, at least 1,024.
    slots: Vec<u32>,
    /// Bit `i` set when `slots[i]` holds a level.
    bits: Vec<u64>,
    /// Bit `w` set when `bits[w]` is non-zero.
    summary: Vec<u64>,
    /// Levels held.
    live: usize,
    /// Index of the best (highest) level, valid when `live > 0`.
    best: usize,
}

/// Bits `0..=b` of a word.
#[inline]
fn upto(b: usize) -> u64 {
    if b >= 63 { u64::MAX } else { (1u64 << (b + 1)) - 1 }
}

/// Bits `b..64` of a word.
#[inline]
fn from(b: usize) -> u64 {
    u64::MAX << b
}

impl Dense {
    #[inline]
    fn index(&self, k: i64) -> Option<usize> {
        // One unsigned compare covers both ends of the window.
        let i = k.wrapping_sub(self.base) as u64;
        (i < self.slots.len() as u64).then_some(i as usize)
    }

    /// The highest occupied index at or below `i`.
    fn highest_at_or_below(&self, i: usize) -> Option<usize> {
        let w = i >> 6;
        let word = self.bits[w] & upto(i & 63);
        if word != 0 {
            return Some((w << 6) + 63 - word.leading_zeros() as usize);
        }
        if w == 0 {
            return None;
        }
        // Words below w: consult the summary.
        let w = w - 1;
        let mut s = w >> 6;
        let mut mask = self.summary[s] & upto(w & 63);
        loop {
            if mask != 0 {
                let word_index = (s << 6) + 63 - mask.leading_zeros() as usize;
                let word = self.bits[word_index];
                return Some((word_index << 6) + 63 - word.leading_zeros() as usize);
            }
            if s == 0 {
                return None;
            }
            s -= 1;
            mask = self.summary[s];
        }
    }

    /// The lowest occupied index at or above `i`.
    fn lowest_at_or_above(&self, i: usize) -> Option<usize> {
        if i >= self.slots.len() {
            return None;
        }
        let w = i >> 6;
        let word = self.bits[w] & from(i & 63);
        if word != 0 {
            return Some((w << 6) + word.trailing_zeros() as usize);
        }
        let w = w + 1;
        if w >= self.bits.len() {
            return None;
        }
        let mut s = w >> 6;
        let mut mask = self.summary[s] & from(w & 63);
        loop {
            if mask != 0 {
                let word_index = (s << 6) + mask.trailing_zeros() as usize;
                let word = self.bits[word_index];
                return Some((word_index << 6) + word.trailing_zeros() as usize);
            }
            s += 1;
            if s >= self.summary.len() {
                return None;
            }
            mask = self.summary[s];
        }
    }

    fn alloc(len: usize) -> Dense {
        let words = len / 64;
        Dense {
            base: 0,
            slots: vec![NIL; len],
            bits: vec![0; words],
            summary: vec![0; words.div_ceil(64)],
            live: 0,
            best: 0,
        }
    }

    #[inline]
    fn set(&mut self, i: usize, level: u32) {
        self.slots[i] = level;
        let w = i >> 6;
        self.bits[w] |= 1 << (i & 63);
        self.summary[w >> 6] |= 1 << (w & 63);
        if self.live == 0 || i > self.best {
            self.best = i;
        }
        self.live += 1;
    }

    /// Makes the window cover tick index `k`, keeping every level. Fails when the
    /// levels and `k` together span more than [`DENSE_SPAN_MAX`].
    fn cover(&mut self, k: i64) -> Result<(), ()> {
        if self.index(k).is_some() {
            return Ok(());
        }
        if self.live == 0 {
            if self.slots.is_empty() {
                *self = Dense::alloc(DENSE_LEN_MIN);
            }
            // Everything is NIL: just move the window, centred on k.
            self.base = k - (self.slots.len() / 2) as i64;
            return Ok(());
        }
        let lowest = self.lowest_at_or_above(0).unwrap_or(self.best);
        let lo = (self.base + lowest as i64).min(k);
        let hi = (self.base + self.best as i64).max(k);
        let span = hi - lo + 1;
        if span > DENSE_SPAN_MAX {
            return Err(());
        }
        // Room for the book to drift by its own span either way before the next
        // rebuild; rebuilds are rare and amortized.
        let len = ((span as usize) * 2).next_power_of_two().max(DENSE_LEN_MIN).max(self.slots.len());
        let mut next = Dense::alloc(len);
        next.base = lo - ((len as i64 - span) / 2);
        let mut i = Some(lowest);
        while let Some(at) = i {
            let k_old = self.base + at as i64;
            let j = (k_old - next.base) as usize;
            next.set(j, self.slots[at]);
            i = self.lowest_at_or_above(at + 1);
        }
        *self = next;
        Ok(())
    }
}

impl Ladder {
    /// An empty ladder for a product with this tick size (positive).
    pub fn new(tick: i64) -> Ladder {
        Ladder { tick, mode: Mode::Dense(Dense::default()) }
    }

    /// A key in ticks. Prices are usually kept at the tick's own scale (tick 1),
    /// where this is free; a 64-bit division costs tens of cycles.
    #[inline]
    fn ticks(&self, key: i64) -> i64 {
        if self.tick == 1 { key } else { key / self.tick }
    }

    /// The best level: the highest key.
    #[inline]
    pub fn best(&self) -> Option<LevelRef> {
        match &self.mode {
            Mode::Dense(d) => (d.live > 0)
                .then(|| LevelRef { key: (d.base + d.best as i64) * self.tick, level: d.slots[d.best] }),
            Mode::Sparse(v) => v.last().copied(),
        }
    }

    /// The level at `key`, if any.
    #[inline]
    pub fn get(&self, key: i64) -> Option<u32> {
        match &self.mode {
            Mode::Dense(d) => {
                let i = d.index(self.ticks(key))?;
                let s = d.slots[i];
                (s != NIL).then_some(s)
            }
            Mode::Sparse(v) => v.binary_search_by(|l| l.key.cmp(&key)).ok().map(|i| v[i].level),
        }
    }

    /// How many levels the ladder holds.
    pub fn len(&self) -> usize {
        match &self.mode {
            Mode::Dense(d) => d.live,
            Mode::Sparse(v) => v.len(),
        }
    }

    /// True when the ladder holds no level.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a level at `key`, which must not hold one.
    pub fn insert(&mut self, key: i64, level: u32) {
        let k = self.ticks(key);
        match &mut self.mode {
            Mode::Dense(d) => {
                if d.cover(k).is_ok()
                    && let Some(i) = d.index(k)
                {
                    debug_assert_eq!(d.slots[i], NIL);
                    d.set(i, level);
                    return;
                }
                // Too wide for a dense window: fall back to a sorted vector.
                let mut v: Vec<LevelRef> = self.iter_worst_first().collect();
                let pos = v.partition_point(|l| l.key < key);
                v.insert(pos, LevelRef { key, level });
                self.mode = Mode::Sparse(v);
            }
            Mode::Sparse(v) => {
                let pos = v.partition_point(|l| l.key < key);
                v.insert(pos, LevelRef { key, level });
            }
        }
    }

    /// Drops the level at `key`, which must hold one.
    pub fn remove(&mut self, key: i64) {
        let k = self.ticks(key);
        match &mut self.mode {
            Mode::Dense(d) => {
                let Some(i) = d.index(k) else { return };
                d.slots[i] = NIL;
                let w = i >> 6;
                d.bits[w] &= !(1 << (i & 63));
                if d.bits[w] == 0 {
                    d.summary[w >> 6] &= !(1 << (w & 63));
                }
                d.live -= 1;
                if d.live > 0 && i == d.best {
                    // Another level exists and all are below the best.
                    d.best = d.highest_at_or_below(i.saturating_sub(1)).unwrap_or(0);
                }
            }
            Mode::Sparse(v) => {
                if let Ok(pos) = v.binary_search_by(|l| l.key.cmp(&key)) {
                    v.remove(pos);
                }
                if v.is_empty() {
                    // Back to the fast form once the wide spread is gone.
                    self.mode = Mode::Dense(Dense::default());
                }
            }
        }
    }

    /// Levels from best to worst.
    pub fn iter_best_first(&self) -> LadderIter<'_> {
        let next = match &self.mode {
            Mode::Dense(d) => (d.live > 0).then_some(d.best),
            Mode::Sparse(v) => v.len().checked_sub(1),
        };
        LadderIter { ladder: self, next, best_first: true }
    }

    /// Levels from worst to best.
    pub fn iter_worst_first(&self) -> LadderIter<'_> {
        let next = match &self.mode {
            Mode::Dense(d) => d.lowest_at_or_above(0).filter(|_| d.live > 0),
            Mode::Sparse(v) => (!v.is_empty()).then_some(0),
        };
        LadderIter { ladder: self, next, best_first: false }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        match &self.mode {
            Mode::Dense(d) => d.slots.capacity() * 4 + (d.bits.capacity() + d.summary.capacity()) * 8,
            Mode::Sparse(v) => v.capacity() * std::mem::size_of::<LevelRef>(),
        }
    }

    /// True in the sorted-vector fallback form.
    #[cfg(test)]
    pub fn is_sparse(&self) -> bool {
        matches!(self.mode, Mode::Sparse(_))
    }

    /// Checks the internal bookkeeping (bitmaps, summary, best, count) slot by
    /// slot: O(window), so for tests.
    #[cfg(test)]
    pub fn check(&self) -> Result<(), String> {
        match &self.mode {
            Mode::Dense(d) => {
                let mut live = 0;
                let mut highest = None;
                for (i, &s) in d.slots.iter().enumerate() {
                    let bit = d.bits[i >> 6] >> (i & 63) & 1 == 1;
                    if bit != (s != NIL) {
                        return Err(format!("ladder bitmap differs from slots at {i}"));
                    }
                    if bit {
                        live += 1;
                        highest = Some(i);
                    }
                }
                for (w, &word) in d.bits.iter().enumerate() {
                    if (word != 0) != (d.summary[w >> 6] >> (w & 63) & 1 == 1) {
                        return Err(format!("ladder summary differs from bitmap at word {w}"));
                    }
                }
                if live != d.live || (live > 0 && highest != Some(d.best)) {
                    return Err("ladder count or best differs from its slots".into());
                }
                Ok(())
            }
            Mode::Sparse(v) => {
                if v.windows(2).any(|w| w[0].key >= w[1].key) {
                    return Err("sparse ladder not strictly sorted".into());
                }
                Ok(())
            }
        }
    }
}

/// Iterates a ladder's levels in price order.
pub(crate) struct LadderIter<'a> {
    ladder: &'a Ladder,
    /// Dense: the next slot index; sparse: the next vector position.
    next: Option<usize>,
    best_first: bool,
}

impl Iterator for LadderIter<'_> {
    type Item = LevelRef;

    fn next(&mut self) -> Option<LevelRef> {
        let at = self.next?;
        match &self.ladder.mode {
            Mode::Dense(d) => {
                self.next = if self.best_first {
                    at.checked_sub(1).and_then(|i| d.highest_at_or_below(i))
                } else {
                    d.lowest_at_or_above(at + 1)
                };
                Some(LevelRef { key: (d.base + at as i64) * self.ladder.tick, level: d.slots[at] })
            }
            Mode::Sparse(v) => {
                self.next =
                    if self.best_first { at.checked_sub(1) } else { Some(at + 1).filter(|&i| i < v.len()) };
                Some(v[at])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Random inserts and removes against a BTreeMap, over spans narrow and wide
    /// enough to force window moves, growth and the sparse fallback.
    #[test]
    fn ladder_matches_a_btreemap() {
        let mut seed = 0x1234_5678_u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for (tick, spread) in [(1i64, 50i64), (5, 3_000), (1, 40_000), (1, 3_000_000), (2, 10)] {
            for sign in [1i64, -1] {
                let mut ladder = Ladder::new(tick);
                let mut model: BTreeMap<i64, u32> = BTreeMap::new();
                let mut centre = 1_000_000i64;
                for step in 0..20_000u32 {
                    if rnd(100) == 0 {
                        centre += (rnd(2 * spread as u64 + 1) as i64 - spread) / 2;
                    }
                    let price = (centre + rnd(2 * spread as u64 + 1) as i64 - spread).max(1);
                    let key = sign * (price / tick * tick).max(tick);
                    if model.contains_key(&key) || (rnd(3) == 0 && !model.is_empty()) {
                        let victim = if model.contains_key(&key) {
                            key
                        } else {
                            *model.keys().nth(rnd(model.len() as u64) as usize).unwrap()
                        };
                        model.remove(&victim);
                        ladder.remove(victim);
                    } else {
                        model.insert(key, step);
                        ladder.insert(key, step);
                    }
                    if step % 97 == 0 {
                        ladder.check().unwrap();
                    }
                    assert_eq!(ladder.len(), model.len());
                    assert_eq!(
                        ladder.best().map(|l| (l.key, l.level)),
                        model.iter().next_back().map(|(&k, &v)| (k, v))
                    );
                    assert_eq!(ladder.get(key), model.get(&key).copied());
                    if step % 997 == 0 {
                        let best: Vec<_> = ladder.iter_best_first().map(|l| (l.key, l.level)).collect();
                        let want: Vec<_> = model.iter().rev().map(|(&k, &v)| (k, v)).collect();
                        assert_eq!(best, want);
                        let worst: Vec<_> = ladder.iter_worst_first().map(|l| (l.key, l.level)).collect();
                        assert_eq!(worst, model.iter().map(|(&k, &v)| (k, v)).collect::<Vec<_>>());
                    }
                }
            }
        }
    }

    #[test]
    fn wide_spread_falls_back_and_recovers() {
        let mut l = Ladder::new(1);
        l.insert(10, 1);
        l.insert(10 + DENSE_SPAN_MAX * 3, 2);
        assert!(l.is_sparse());
        assert_eq!(l.best().map(|b| b.level), Some(2));
        l.remove(10);
        l.remove(10 + DENSE_SPAN_MAX * 3);
        assert!(!l.is_sparse());
        l.insert(7, 3);
        assert_eq!(l.best().map(|b| b.key), Some(7));
    }
}
