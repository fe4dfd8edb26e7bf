//! Read-only views of the engine: best bid/offer, L2 depth, L3 orders, one order,
//! and the full invariant walk.

use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Side};

use crate::book::{NIL, STOP_BIT, key_of};
use crate::{Engine, OrderType, ProductSpec, ProductStatus, SelfTradePrevention, TimeInForce};

/// One aggregated price level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelView {
    /// The price.
    pub price: Price,
    /// Total open quantity at the price.
    pub quantity: Qty,
    /// How many orders rest at the price.
    pub orders: u32,
}

/// Aggregated depth, best first on each side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    /// Bids, highest first.
    pub bids: Vec<LevelView>,
    /// Offers, lowest first.
    pub asks: Vec<LevelView>,
}

/// A resting order as L3 depth and order queries show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestingView {
    /// The order.
    pub id: OrderId,
    /// Its owner.
    pub participant: ParticipantId,
    /// The product.
    pub product: ProductId,
    /// Its side.
    pub side: Side,
    /// Its limit price.
    pub price: Price,
    /// Total quantity.
    pub original: Qty,
    /// Open (resting) quantity.
    pub open: Qty,
    /// Traded quantity.
    pub traded: Qty,
    /// Cancelled quantity (self-trade decrements).
    pub cancelled: Qty,
    /// GTC or DAY.
    pub time_in_force: TimeInForce,
    /// Post-only flag.
    pub post_only: bool,
    /// Self-trade prevention mode.
    pub self_trade_prevention: SelfTradePrevention,
}

/// An untriggered stop order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopView {
    /// The order.
    pub id: OrderId,
    /// Its owner.
    pub participant: ParticipantId,
    /// The product.
    pub product: ProductId,
    /// Its side.
    pub side: Side,
    /// STOP or STOP_LIMIT.
    pub order_type: OrderType,
    /// Time in force once triggered.
    pub time_in_force: TimeInForce,
    /// Self-trade prevention once triggered.
    pub self_trade_prevention: SelfTradePrevention,
    /// Quantity.
    pub quantity: Qty,
    /// Limit price (STOP_LIMIT).
    pub price: Option<Price>,
    /// Trigger price.
    pub stop_price: Price,
}

/// An open order: resting in the book, or waiting for its stop trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderView {
    /// In the book.
    Resting(RestingView),
    /// Waiting for its trigger.
    Stop(StopView),
}

/// A product's book status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductView {
    /// Tick and lot.
    pub spec: ProductSpec,
    /// Active or halted.
    pub status: ProductStatus,
    /// The price of the last trade, if any.
    pub last_trade: Option<Price>,
}

impl Engine {
    /// A product's parameters and status.
    pub fn product(&self, product: ProductId) -> Option<ProductView> {
        let b = *self.book_of.get(&product)?;
        let book = self.book(b);
        Some(ProductView {
            spec: book.spec,
            status: if book.halted { ProductStatus::Halted } else { ProductStatus::Active },
            last_trade: book.last_trade,
        })
    }

    /// Every listed product, by id.
    pub fn products(&self) -> impl Iterator<Item = ProductId> + '_ {
        self.book_of.keys().copied()
    }

    /// Best bid and best offer.
    pub fn best(&self, product: ProductId) -> Option<(Option<LevelView>, Option<LevelView>)> {
        let b = *self.book_of.get(&product)?;
        let book = self.book(b);
        let view = |side: Side| {
            book.ladder(side).best().map(|lr| {
                let l = self.levels.get(lr.level);
                LevelView { price: l.price, quantity: l.total, orders: l.count }
            })
        };
        Some((view(Side::Buy), view(Side::Sell)))
    }

    /// The top `levels_max` levels per side, aggregated.
    pub fn depth(&self, product: ProductId, levels_max: usize) -> Option<Depth> {
        let b = *self.book_of.get(&product)?;
        let book = self.book(b);
        let side_view = |side: Side| {
            book.ladder(side)
                .iter_best_first()
                .take(levels_max)
                .map(|lr| {
                    let l = self.levels.get(lr.level);
                    LevelView { price: l.price, quantity: l.total, orders: l.count }
                })
                .collect()
        };
        Some(Depth { bids: side_view(Side::Buy), asks: side_view(Side::Sell) })
    }

    /// Every resting order of one side, in priority order (best price, then oldest).
    pub fn orders_by_priority(&self, product: ProductId, side: Side) -> Option<Vec<RestingView>> {
        let b = *self.book_of.get(&product)?;
        let mut out = Vec::new();
        for lr in self.book(b).ladder(side).iter_best_first() {
            let mut m = self.levels.get(lr.level).head;
            while m != NIL {
                out.push(self.resting_view(m));
                m = self.orders.get(m).next;
            }
        }
        Some(out)
    }

    /// Every untriggered stop of a product: buys then sells, each by stop price and
    /// arrival.
    pub fn stop_orders(&self, product: ProductId) -> Option<Vec<StopView>> {
        let b = *self.book_of.get(&product)?;
        let book = self.book(b);
        let mut out = Vec::new();
        for side in [Side::Buy, Side::Sell] {
            for &s in book.stops(side).values() {
                out.push(self.stop_view(s));
            }
        }
        Some(out)
    }

    /// One open order.
    pub fn order(&self, id: OrderId) -> Option<OrderView> {
        let loc = self.index.get(&id)?;
        Some(if loc & STOP_BIT != 0 {
            OrderView::Stop(self.stop_view(loc & !STOP_BIT))
        } else {
            OrderView::Resting(self.resting_view(loc))
        })
    }

    fn resting_view(&self, m: u32) -> RestingView {
        let o = self.orders.get(m);
        RestingView {
            id: o.id,
            participant: o.participant,
            product: self.book(o.book).spec.id,
            side: o.side,
            price: o.price,
            original: o.original,
            open: o.open,
            traded: o.traded,
            cancelled: o.cancelled,
            time_in_force: o.tif,
            post_only: o.post_only(),
            self_trade_prevention: o.stp,
        }
    }

    fn stop_view(&self, s: u32) -> StopView {
        let st = self.stops.get(s);
        StopView {
            id: st.id,
            participant: st.participant,
            product: self.book(st.book).spec.id,
            side: st.side,
            order_type: st.order_type,
            time_in_force: st.tif,
            self_trade_prevention: st.stp,
            quantity: st.quantity,
            price: st.price,
            stop_price: st.stop_price,
        }
    }

    /// Heap bytes held by the engine's order, level and index structures. Used to
    /// measure memory per resting order.
    pub fn heap_bytes(&self) -> usize {
        let index = self.index.heap_bytes();
        let ladders: usize =
            self.books.iter().flatten().map(|b| b.bids.heap_bytes() + b.asks.heap_bytes()).sum();
        self.orders.heap_bytes() + self.levels.heap_bytes() + self.stops.heap_bytes() + index + ladders
    }

    /// Walks the whole state and checks every invariant: ladders sorted, levels
    /// non-empty with totals and counts equal to their orders, links consistent,
    /// every order's quantities adding up, the index agreeing with the books, no
    /// crossed book. O(open orders); the cheap subset runs after every command.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut resting = 0usize;
        let mut stops = 0usize;
        for (&product, &b) in &self.book_of {
            let book = self.books.get(b as usize).and_then(Option::as_ref).ok_or("missing book")?;
            if book.spec.id != product {
                return Err(format!("book {b} holds product {} not {product}", book.spec.id));
            }
            for side in [Side::Buy, Side::Sell] {
                let ladder = book.ladder(side);
                // The ladder's slot-by-slot self-check is O(window); its own tests run
                // it. Here: O(levels) agreement between iteration, lookup and best.
                if ladder.best() != ladder.iter_best_first().next() {
                    return Err(format!("{product} {side:?}: best differs from the first level"));
                }
                let mut last_key = i64::MIN;
                let mut levels_seen = 0;
                for lr in ladder.iter_worst_first() {
                    let level = self.levels.get(lr.level);
                    if lr.key <= last_key {
                        return Err(format!("{product} {side:?} ladder not strictly sorted"));
                    }
                    last_key = lr.key;
                    levels_seen += 1;
                    if key_of(side, level.price) != lr.key {
                        return Err(format!("{product} level key differs from its price"));
                    }
                    if ladder.get(lr.key) != Some(lr.level) {
                        return Err(format!("{product} level {} not found by its key", level.price.0));
                    }
                    if level.price.0 % book.spec.tick.0 != 0 {
                        return Err(format!("{product} level {} off tick", level.price.0));
                    }
                    let (mut total, mut count, mut prev, mut m) = (Qty::ZERO, 0u32, NIL, level.head);
                    while m != NIL {
                        let o = self.orders.get(m);
                        if o.prev != prev || o.level != lr.level || o.book != b || o.side != side {
                            return Err(format!("order {} links are inconsistent", o.id));
                        }
                        if o.price != level.price || o.open.0 <= 0 || !o.accounts() || o.is_market() {
                            return Err(format!("order {} state is inconsistent", o.id));
                        }
                        if self.index.get(&o.id) != Some(m) {
                            return Err(format!("order {} missing from the index", o.id));
                        }
                        if o.id.0 > self.last_order_id {
                            return Err(format!("order {} is above the last order id", o.id));
                        }
                        total += o.open;
                        count += 1;
                        prev = m;
                        m = o.next;
                    }
                    if level.tail != prev || count == 0 || count != level.count || total != level.total {
                        return Err(format!(
                            "{product} level {} totals differ from its orders",
                            level.price.0
                        ));
                    }
                    resting += count as usize;
                }
                if levels_seen != ladder.len() {
                    return Err(format!(
                        "{product} {side:?}: ladder has {} levels, walked {levels_seen}",
                        ladder.len()
                    ));
                }
                for (&(stop_key, arrival), &s) in book.stops(side) {
                    let st = self.stops.get(s);
                    if st.book != b || st.side != side || st.stop_price.0 != stop_key || st.arrival != arrival
                    {
                        return Err(format!("stop {} is filed wrongly", st.id));
                    }
                    if st.id.0 > self.last_order_id || st.arrival > self.last_seq {
                        return Err(format!("stop {} is from the future", st.id));
                    }
                    if self.index.get(&st.id) != Some(s | STOP_BIT) {
                        return Err(format!("stop {} missing from the index", st.id));
                    }
                    stops += 1;
                }
            }
            if book.crossed() {
                return Err(format!("{product} book is crossed"));
            }
        }
        if resting != self.resting_live || stops != self.stops_live || self.index.len() != resting + stops {
            return Err(format!(
                "counts differ: walked {resting}+{stops}, recorded {}+{}, index {}",
                self.resting_live,
                self.stops_live,
                self.index.len()
            ));
        }
        Ok(())
    }
}
