//! Storage for books: order and level slabs, the per-side price ladder, stops.
//!
//! A resting order is a slab slot in a doubly linked FIFO list per price level, so
//! cancelling or filling one is O(1) and never moves other orders. A side's levels
//! are found through its [`Ladder`].

use std::collections::BTreeMap;

use atlas_types::{OrderId, ParticipantId, Price, Qty, Side};

use crate::ladder::Ladder;
use crate::{OrderType, ProductSpec, SelfTradePrevention, TimeInForce};

/// The "no slot" link value.
pub(crate) const NIL: u32 = u32::MAX;
/// Index entries with this bit set point into the stop slab.
pub(crate) const STOP_BIT: u32 = 1 << 31;

/// A limit order in (or entering) the book. 72 bytes: this is most of the memory
/// the engine spends per resting order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resting {
    pub id: OrderId,
    /// The limit price; for a market order, the most aggressive price possible so
    /// that it crosses every level (it never rests).
    pub price: Price,
    pub original: Qty,
    pub open: Qty,
    pub traded: Qty,
    pub cancelled: Qty,
    pub participant: ParticipantId,
    /// The slot of its book in `Engine::books`.
    pub book: u32,
    pub prev: u32,
    pub next: u32,
    pub level: u32,
    pub side: Side,
    pub tif: TimeInForce,
    pub stp: SelfTradePrevention,
    pub flags: u8,
}

/// `Resting::flags`: the order is a market order (never rests).
pub(crate) const FLAG_MARKET: u8 = 1;
/// `Resting::flags`: post-only.
pub(crate) const FLAG_POST_ONLY: u8 = 2;

impl Resting {
    #[inline]
    pub fn is_market(&self) -> bool {
        self.flags & FLAG_MARKET != 0
    }
    #[inline]
    pub fn post_only(&self) -> bool {
        self.flags & FLAG_POST_ONLY != 0
    }
    /// Traded + open + cancelled must always equal the original quantity.
    #[inline]
    pub fn accounts(&self) -> bool {
        self.traded.0 + self.open.0 + self.cancelled.0 == self.original.0
            && self.open.0 >= 0
            && self.traded.0 >= 0
            && self.cancelled.0 >= 0
    }
}

/// One price level: totals and the FIFO list of its orders.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Level {
    pub price: Price,
    pub total: Qty,
    pub count: u32,
    pub head: u32,
    pub tail: u32,
    /// The sequence number of the last command that touched this level, so the
    /// L2 diff records its total before the command only once.
    pub touched: u64,
}

/// A level's place in a ladder. `key` orders levels from worst to best.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LevelRef {
    pub key: i64,
    pub level: u32,
}

/// The sort key of a price on a side: larger is better.
#[inline]
pub(crate) fn key_of(side: Side, price: Price) -> i64 {
    match side {
        Side::Buy => price.0,
        Side::Sell => -price.0,
    }
}

/// The price of a sort key on a side.
#[inline]
pub(crate) fn price_of(side: Side, key: i64) -> Price {
    match side {
        Side::Buy => Price(key),
        Side::Sell => Price(-key),
    }
}

/// Does an incoming order on `side` with limit `limit` trade against `level_price`?
#[inline]
pub(crate) fn crosses(side: Side, limit: Price, level_price: Price) -> bool {
    match side {
        Side::Buy => limit >= level_price,
        Side::Sell => limit <= level_price,
    }
}

/// A stop order waiting for its trigger.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StopOrder {
    pub id: OrderId,
    pub participant: ParticipantId,
    pub book: u32,
    pub side: Side,
    pub order_type: OrderType,
    pub tif: TimeInForce,
    pub stp: SelfTradePrevention,
    pub quantity: Qty,
    pub price: Option<Price>,
    pub stop_price: Price,
    /// The sequence number of the command that placed it (or last amended it in a
    /// way that lost priority): triggered stops enter in this order.
    pub arrival: u64,
}

/// One product's book.
#[derive(Clone, Debug)]
pub(crate) struct Book {
    pub spec: ProductSpec,
    pub halted: bool,
    pub bids: Ladder,
    pub asks: Ladder,
    /// Buy stops by (stop price, arrival): a trade at or above the stop triggers.
    pub buy_stops: BTreeMap<(i64, u64), u32>,
    /// Sell stops by (stop price, arrival): a trade at or below the stop triggers.
    pub sell_stops: BTreeMap<(i64, u64), u32>,
    pub last_trade: Option<Price>,
}

impl Book {
    pub fn new(spec: ProductSpec) -> Book {
        Book {
            spec,
            halted: false,
            bids: Ladder::new(spec.tick.0),
            asks: Ladder::new(spec.tick.0),
            buy_stops: BTreeMap::new(),
            sell_stops: BTreeMap::new(),
            last_trade: None,
        }
    }

    #[inline]
    pub fn ladder(&self, side: Side) -> &Ladder {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    #[inline]
    pub fn ladder_mut(&mut self, side: Side) -> &mut Ladder {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// Would an order on `side` with limit `limit` trade on entry?
    #[inline]
    pub fn would_trade(&self, side: Side, limit: Price) -> bool {
        let opp = side.opposite();
        self.ladder(opp).best().is_some_and(|best| crosses(side, limit, price_of(opp, best.key)))
    }

    /// Is the best bid at or above the best offer? Never true after a command.
    #[inline]
    pub fn crossed(&self) -> bool {
        match (self.bids.best(), self.asks.best()) {
            (Some(bid), Some(ask)) => price_of(Side::Buy, bid.key) >= price_of(Side::Sell, ask.key),
            _ => false,
        }
    }

    #[inline]
    pub fn stops_mut(&mut self, side: Side) -> &mut BTreeMap<(i64, u64), u32> {
        match side {
            Side::Buy => &mut self.buy_stops,
            Side::Sell => &mut self.sell_stops,
        }
    }

    #[inline]
    pub fn stops(&self, side: Side) -> &BTreeMap<(i64, u64), u32> {
        match side {
            Side::Buy => &self.buy_stops,
            Side::Sell => &self.sell_stops,
        }
    }
}

/// A slab: a vector of slots plus a free list. Slots are reused, so once the
/// engine has reached its peak size it allocates nothing more.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slab<T> {
    pub items: Vec<T>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    pub fn with_capacity(n: usize) -> Slab<T> {
        Slab { items: Vec::with_capacity(n), free: Vec::new() }
    }

    #[inline]
    pub fn insert(&mut self, value: T) -> u32 {
        if let Some(slot) = self.free.pop() {
            self.items[slot as usize] = value;
            slot
        } else {
            let slot = self.items.len();
            // Capacity is bounded by the engine's order limit, far below this:
            // below STOP_BIT so the index can tell stops apart, and one below
            // that so no index entry (a stop's is slot | STOP_BIT) is u32::MAX,
            // which the order index cannot store.
            assert!(slot < (STOP_BIT - 1) as usize, "slab slot overflow");
            self.items.push(value);
            slot as u32
        }
    }

    #[inline]
    pub fn remove(&mut self, slot: u32) {
        self.free.push(slot);
    }

    #[inline]
    pub fn get(&self, slot: u32) -> &T {
        &self.items[slot as usize]
    }

    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> &mut T {
        &mut self.items[slot as usize]
    }

    /// Bytes held by the slab (slots and free list), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<T>() + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resting_order_stays_small() {
        // The memory budget per resting order is 128 bytes, index included.
        assert!(std::mem::size_of::<Resting>() <= 72, "{}", std::mem::size_of::<Resting>());
    }
}
