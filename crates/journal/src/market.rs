//! Market data as the sequencer publishes it: after each commit, the level
//! changes and trades of the batch, in order, on a broadcast channel that never
//! blocks the writer (a receiver that falls behind loses messages and is told
//! so). Each product's level2 stream is numbered on the engine thread — one
//! number per batch that changed the product's levels, so updates coalesce
//! under load — and queries run at batch ends, so a query of the engine (the
//! REST book) can say exactly which update it reflects.

use std::collections::HashMap;
use std::sync::Arc;

use atlas_engine::Event;
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Seq, Side, Timestamp, TradeId};

/// Batches the broadcast holds for slow receivers before they lag.
pub const FEED_CAPACITY: usize = 16_384;

/// One batch's changes to one product's price levels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelUpdate {
    /// The product.
    pub product: ProductId,
    /// The product's level2 sequence number: one more than its previous update's.
    pub sequence: u64,
    /// The journal sequence number of the last command that changed them.
    pub seq: Seq,
    /// That command's time.
    pub time: Timestamp,
    /// Each level's new total (0: gone), in the order they were first changed.
    pub changes: Vec<LevelTotal>,
}

/// A trade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The product.
    pub product: ProductId,
    /// The trade id.
    pub trade_id: TradeId,
    /// The price.
    pub price: Price,
    /// The quantity.
    pub quantity: Qty,
    /// The resting order's side.
    pub maker_side: Side,
    /// The resting order.
    pub maker_order: OrderId,
    /// The incoming order.
    pub taker_order: OrderId,
    /// The maker's participant.
    pub maker_participant: ParticipantId,
    /// The taker's participant.
    pub taker_participant: ParticipantId,
    /// The command's journal sequence number.
    pub seq: Seq,
    /// The command's time.
    pub time: Timestamp,
}

/// What the feed carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarketEvent {
    /// Level changes.
    Levels(LevelUpdate),
    /// A trade.
    Match(Match),
    /// The shard rebuilt its state after a storage failure: level2 numbering
    /// may have skipped; receivers start over from a snapshot.
    Reset,
}

/// One committed batch's market data, and its private part: the orders it
/// changed and the trades it printed (for each participant's own feed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MarketBatch {
    /// In commit order.
    pub events: Vec<MarketEvent>,
    /// The final state of every order the batch changed.
    pub orders: Vec<crate::projection::OrderRow>,
    /// The trades the batch printed.
    pub trades: Vec<crate::projection::TradeRow>,
    /// The journal sequence numbers of the batch's first and last commands
    /// (both 0 when it wrote none): an order whose `entry_seq` lies between
    /// them was entered by this batch, whatever batches a receiver missed.
    pub commands: (u64, u64),
    /// When the writer published it, once committed (Unix nanoseconds): where
    /// a subscriber's publish lag starts.
    pub published_ns: i64,
}

/// A receiver of the feed.
pub type MarketFeed = tokio::sync::broadcast::Receiver<Arc<MarketBatch>>;

/// Each product's last level2 sequence number (engine thread only). Numbers
/// start at the journal's sequence number when the shard starts, so they only
/// ever grow across restarts (a restart closes every feed connection; clients
/// start over from a snapshot and see the jump).
#[derive(Clone, Debug, Default)]
pub struct MarketSeqs {
    base: u64,
    last: HashMap<ProductId, u64>,
}

impl MarketSeqs {
    /// Numbering that starts above `base` (the journal's last sequence number).
    pub fn starting_at(base: u64) -> MarketSeqs {
        MarketSeqs { base, last: HashMap::new() }
    }

    /// The last level2 sequence number of a product (`base` before its first update).
    pub fn get(&self, product: ProductId) -> u64 {
        self.last.get(&product).copied().unwrap_or(self.base)
    }

    /// Adds one command's events to the batch being built: its trades, in
    /// order, and its level changes (a level changed twice in the batch keeps
    /// its last total).
    pub fn collect(&mut self, seq: Seq, time: Timestamp, events: &[Event], batch: &mut BatchBuilder) {
        for e in events {
            match e {
                Event::Level { product, side, price, quantity } => {
                    let i = match batch.levels.iter().position(|(p, ..)| p == product) {
                        Some(i) => i,
                        None => {
                            batch.levels.push((*product, seq, time, Vec::new()));
                            batch.levels.len() - 1
                        }
                    };
                    let levels = &mut batch.levels[i];
                    levels.1 = seq;
                    levels.2 = time;
                    // One hash lookup per change: a busy batch touches hundreds
                    // of levels, and a scan per change would grow with them.
                    match batch.seen.get(&(*product, *side, *price)) {
                        Some(&at) => levels.3[at].2 = *quantity,
                        None => {
                            batch.seen.insert((*product, *side, *price), levels.3.len());
                            levels.3.push((*side, *price, *quantity));
                        }
                    }
                }
                Event::Trade {
                    trade_id,
                    product,
                    price,
                    quantity,
                    maker_order,
                    maker_participant,
                    taker_order,
                    taker_participant,
                    aggressor,
                    ..
                } => batch.events.push(MarketEvent::Match(Match {
                    product: *product,
                    trade_id: *trade_id,
                    price: *price,
                    quantity: *quantity,
                    maker_side: aggressor.opposite(),
                    maker_order: *maker_order,
                    taker_order: *taker_order,
                    maker_participant: *maker_participant,
                    taker_participant: *taker_participant,
                    seq,
                    time,
                })),
                _ => {}
            }
        }
    }

    /// Ends the batch: one numbered level update per product it changed, after
    /// its trades.
    pub fn finish(&mut self, batch: &mut BatchBuilder) -> Vec<MarketEvent> {
        let mut out = Vec::new();
        self.finish_onto(batch, &mut out);
        out
    }
}

/// Merging level changes into an update scans it while that costs at most
/// this many comparisons, and indexes it beyond.
const MERGE_SCAN_MAX: usize = 256;

impl MarketSeqs {
    /// Ends a batch onto the market data of the work it joins (empty for a
    /// batch of its own): its trades after those there, before the level
    /// updates; its level changes into the update of their product there,
    /// which keeps its number (a level changed again keeps its last total), or
    /// else into a new update with the product's next number.
    pub fn finish_onto(&mut self, batch: &mut BatchBuilder, onto: &mut Vec<MarketEvent>) {
        let first_levels =
            onto.iter().position(|e| matches!(e, MarketEvent::Levels(_))).unwrap_or(onto.len());
        onto.splice(first_levels..first_levels, batch.events.drain(..));
        batch.seen.clear();
        for (product, seq, time, changes) in batch.levels.drain(..) {
            let existing = onto.iter_mut().find_map(|e| match e {
                MarketEvent::Levels(u) if u.product == product => Some(u),
                _ => None,
            });
            match existing {
                Some(u) => {
                    u.seq = seq;
                    u.time = time;
                    if changes.len().saturating_mul(u.changes.len()) <= MERGE_SCAN_MAX {
                        // A few changes (the usual merge: a drain of one or
                        // two orders): a scan beats building an index.
                        for (side, price, qty) in changes {
                            match u.changes.iter_mut().find(|c| c.0 == side && c.1 == price) {
                                Some(c) => c.2 = qty,
                                None => u.changes.push((side, price, qty)),
                            }
                        }
                    } else {
                        let at: HashMap<(Side, Price), usize> = u
                            .changes
                            .iter()
                            .enumerate()
                            .map(|(i, (side, price, _))| ((*side, *price), i))
                            .collect();
                        for (side, price, qty) in changes {
                            match at.get(&(side, price)) {
                                Some(&i) => u.changes[i].2 = qty,
                                None => u.changes.push((side, price, qty)),
                            }
                        }
                    }
                }
                None => {
                    let n = self.last.entry(product).or_insert(self.base);
                    *n += 1;
                    onto.push(MarketEvent::Levels(LevelUpdate { product, sequence: *n, seq, time, changes }));
                }
            }
        }
    }
}

/// A batch's market data while the engine thread builds it.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    events: Vec<MarketEvent>,
    /// Per product: the last command's seq and time, and each level's last total.
    levels: Vec<(ProductId, Seq, Timestamp, Vec<LevelTotal>)>,
    /// Where each (product, side, price) changed in this batch sits in its
    /// product's list.
    seen: HashMap<(ProductId, Side, Price), usize>,
}

/// A level's side, price and new total.
pub type LevelTotal = (Side, Price, Qty);

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(changes: &[(i64, i64)]) -> Vec<Event> {
        changes
            .iter()
            .map(|&(price, qty)| Event::Level {
                product: ProductId(1),
                side: if price < 100 { Side::Buy } else { Side::Sell },
                price: Price(price),
                quantity: Qty(qty),
            })
            .collect()
    }

    /// Two batches finished one onto the other give the update one batch of
    /// both would: one number, each level's last total, in first-change
    /// order; whether the merge scans (few changes) or indexes (many).
    #[test]
    fn a_batch_finished_onto_another_is_one_update() {
        let first: Vec<(i64, i64)> = (0..40).map(|i| (60 + i, i + 1)).collect();
        for second in
            [vec![(61, 7), (150, 3)], (0..30).map(|i| (50 + 2 * i, 100 + i)).chain([(150, 3)]).collect()]
        {
            let (mut split, mut whole) = (MarketSeqs::starting_at(10), MarketSeqs::starting_at(10));
            let (mut a, mut b, mut both) =
                (BatchBuilder::default(), BatchBuilder::default(), BatchBuilder::default());
            split.collect(Seq(1), Timestamp(1), &levels(&first), &mut a);
            split.collect(Seq(2), Timestamp(2), &levels(&second), &mut b);
            whole.collect(Seq(1), Timestamp(1), &levels(&first), &mut both);
            whole.collect(Seq(2), Timestamp(2), &levels(&second), &mut both);
            let mut merged = Vec::new();
            split.finish_onto(&mut a, &mut merged);
            split.finish_onto(&mut b, &mut merged);
            assert_eq!(merged, whole.finish(&mut both));
            assert_eq!((split.get(ProductId(1)), whole.get(ProductId(1))), (11, 11));
        }
    }
}
