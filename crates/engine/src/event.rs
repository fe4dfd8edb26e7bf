//! Events: everything `apply` reports about what a command did.

use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Side, TradeId};

use crate::Reject;

/// One thing that happened while applying a command, in the order it happened.
///
/// Each command yields either exactly one [`Event::Rejected`] (and nothing changed),
/// or [`Event::Accepted`] first and then its consequences. [`Event::Level`] changes
/// come last: one per price level whose total differs from before the command,
/// per product, bids before offers, best price first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The command was accepted; its consequences follow.
    Accepted,
    /// The command was refused and changed nothing.
    Rejected {
        /// Why.
        reason: Reject,
    },
    /// Two orders traded, at the resting (maker) order's price.
    Trade {
        /// The engine's trade id.
        trade_id: TradeId,
        /// The product.
        product: ProductId,
        /// The maker's price.
        price: Price,
        /// How much traded (always positive).
        quantity: Qty,
        /// The resting order.
        maker_order: OrderId,
        /// The resting order's owner.
        maker_participant: ParticipantId,
        /// What the maker has left open after this trade (0: filled).
        maker_open: Qty,
        /// The incoming order.
        taker_order: OrderId,
        /// The incoming order's owner.
        taker_participant: ParticipantId,
        /// The incoming order's side.
        aggressor: Side,
    },
    /// The order now rests in the book, at the back of its price level's queue.
    Booked {
        /// The order.
        order_id: OrderId,
        /// Its limit price.
        price: Price,
        /// Its open quantity.
        open: Qty,
    },
    /// Part or all of an order's open quantity was cancelled.
    Cancelled {
        /// The order.
        order_id: OrderId,
        /// How much was cancelled now.
        quantity: Qty,
        /// What is still open (0: the order is done).
        open: Qty,
        /// Why.
        reason: CancelReason,
    },
    /// An order's terms changed in place.
    Amended {
        /// The order.
        order_id: OrderId,
        /// New total quantity.
        quantity: Qty,
        /// Open quantity after the change.
        open: Qty,
        /// Limit price after the change.
        price: Option<Price>,
        /// Stop price after the change.
        stop_price: Option<Price>,
        /// False when the order went to the back of the queue (and, for a price
        /// change, was matched again as if new).
        priority_kept: bool,
    },
    /// A DAY order reached the end of its trading day.
    Expired {
        /// The order.
        order_id: OrderId,
        /// The open quantity that expired.
        quantity: Qty,
    },
    /// A stop order's trigger was reached; it now enters as a market or limit order.
    StopTriggered {
        /// The order.
        order_id: OrderId,
    },
    /// A product was listed, halted, resumed or removed.
    ProductStatus {
        /// The product.
        product: ProductId,
        /// Its new status.
        status: ProductStatus,
    },
    /// A trade was busted (see [`crate::CommandKind::BustTrade`]).
    TradeBusted {
        /// The trade.
        trade_id: TradeId,
    },
    /// A price level's new total (0: the level is gone). For market data (L2).
    Level {
        /// The product.
        product: ProductId,
        /// The book side.
        side: Side,
        /// The level's price.
        price: Price,
        /// Total open quantity at the level now.
        quantity: Qty,
    },
}

/// Why quantity was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// The owner asked.
    Requested,
    /// An operator cancelled it.
    Operator,
    /// A mass cancel (by the owner, a kill switch, or a disabled participant).
    MassCancel,
    /// The unfilled rest of a MARKET or IOC order.
    Unfilled,
    /// A FOK order that could not fill completely.
    FillOrKill,
    /// Self-trade prevention.
    SelfTrade,
    /// The product was delisted.
    ProductRemoved,
}

impl CancelReason {
    /// A stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            CancelReason::Requested => "REQUESTED",
            CancelReason::Operator => "OPERATOR",
            CancelReason::MassCancel => "MASS_CANCEL",
            CancelReason::Unfilled => "UNFILLED",
            CancelReason::FillOrKill => "FILL_OR_KILL",
            CancelReason::SelfTrade => "SELF_TRADE",
            CancelReason::ProductRemoved => "PRODUCT_REMOVED",
        }
    }
}

/// A product's trading status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProductStatus {
    /// Trading.
    Active,
    /// Halted: no new orders or amends.
    Halted,
    /// Delisted: the book is gone.
    Removed,
}

#[cfg(test)]
mod tests {
    /// Every command writes several events on the hot path: keep them one cache
    /// line each.
    #[test]
    fn events_fit_a_cache_line() {
        assert!(std::mem::size_of::<super::Event>() <= 64, "{}", std::mem::size_of::<super::Event>());
    }
}
