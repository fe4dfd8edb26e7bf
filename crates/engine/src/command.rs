//! Commands: the only way in. Each carries its own sequence number and time.

use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Seq, Side, Timestamp, TradeId};

/// One state-changing instruction, stamped by the sequencer.
///
/// The engine reads nothing but this: no clock, no randomness, no I/O. Replaying the
/// same commands from the same state gives the same events and the same state hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Position in the shard's journal; must be exactly one more than the last one.
    pub seq: Seq,
    /// When the sequencer accepted the command. Carried for the journal and for
    /// consumers; the engine's decisions never depend on it.
    pub time: Timestamp,
    /// What to do.
    pub kind: CommandKind,
}

/// What a [`Command`] asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandKind {
    /// Enter a new order.
    NewOrder(NewOrder),
    /// Cancel one open order.
    Cancel {
        /// The order.
        order_id: OrderId,
        /// The participant asking; `None` is an operator acting on anyone's order.
        participant: Option<ParticipantId>,
    },
    /// Change an open order in place.
    Amend(Amend),
    /// Cancel all open orders of a participant, optionally for one product only.
    MassCancel {
        /// Whose orders.
        participant: ParticipantId,
        /// Only this product's, if set.
        product: Option<ProductId>,
    },
    /// Stop accepting new orders and amends for a product (cancels still work).
    Halt {
        /// The product.
        product: ProductId,
    },
    /// Accept orders again after a halt.
    Resume {
        /// The product.
        product: ProductId,
    },
    /// The trading day ended: expire every DAY order (of one product, or all).
    EndOfDay {
        /// Only this product's DAY orders, if set.
        product: Option<ProductId>,
    },
    /// List a product: create its (empty, active) book.
    AddProduct(ProductSpec),
    /// Delist a product: cancel its open orders and drop its book.
    RemoveProduct {
        /// The product.
        product: ProductId,
    },
    /// Bust a printed trade: it no longer counts for clearing, the tape or volume.
    /// The books are unchanged (the orders' fills stand as matched); only trades
    /// the engine has printed can be busted.
    BustTrade {
        /// The trade.
        trade: TradeId,
    },
}

/// A product's trading parameters, as the engine needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductSpec {
    /// The product.
    pub id: ProductId,
    /// Prices must be positive multiples of this (in price units).
    pub tick: Price,
    /// Quantities must be positive multiples of this (in units).
    pub lot: Qty,
}

/// The kind of order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OrderType {
    /// Trades at its price or better; the rest may rest.
    Limit,
    /// Trades at any price; the rest is cancelled, never booked.
    Market,
    /// Waits (untriggered) until a trade prints at or through `stop_price`, then
    /// enters as a market order.
    Stop,
    /// Waits like [`OrderType::Stop`], then enters as a limit order at `price`.
    StopLimit,
}

/// How long an order may stay open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeInForce {
    /// Good till cancelled.
    Gtc,
    /// Expires at the end of the trading day.
    Day,
    /// Immediate or cancel: what does not trade at once is cancelled.
    Ioc,
    /// Fill or kill: trades its whole quantity at once, or nothing at all.
    Fok,
}

/// What to do when an incoming order would trade with a resting order of the same
/// participant. Applied to the incoming order's matching only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SelfTradePrevention {
    /// Self-trades are allowed.
    None,
    /// Cancel the rest of the incoming order.
    CancelNewest,
    /// Cancel the resting order and keep matching.
    CancelOldest,
    /// Cancel both the resting order and the rest of the incoming order.
    CancelBoth,
    /// Reduce both by the smaller open quantity (no trade); cancel whichever reaches
    /// zero and keep matching.
    Decrement,
}

/// The fields of a new order. Everything server-owned (id, participant) is filled
/// in by the sequencer from the authenticated caller, never from a client's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewOrder {
    /// Assigned by the sequencer; strictly greater than every earlier order id.
    pub order_id: OrderId,
    /// The owner.
    pub participant: ParticipantId,
    /// The product.
    pub product: ProductId,
    /// Buy or sell.
    pub side: Side,
    /// Limit, market, stop or stop-limit.
    pub order_type: OrderType,
    /// GTC, DAY, IOC or FOK.
    pub time_in_force: TimeInForce,
    /// Total quantity, in units; a positive multiple of the lot.
    pub quantity: Qty,
    /// Limit price (LIMIT and STOP_LIMIT only).
    pub price: Option<Price>,
    /// Trigger price (STOP and STOP_LIMIT only).
    pub stop_price: Option<Price>,
    /// Reject instead of trading on entry (LIMIT with GTC or DAY only).
    pub post_only: bool,
    /// Self-trade prevention for this order's matching.
    pub self_trade_prevention: SelfTradePrevention,
}

/// Change an open order in place (same id). A smaller quantity keeps time priority;
/// a price change or a larger quantity loses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amend {
    /// The order.
    pub order_id: OrderId,
    /// The participant asking; `None` is an operator.
    pub participant: Option<ParticipantId>,
    /// New total quantity (including what already traded), if changing.
    pub quantity: Option<Qty>,
    /// New limit price, if changing (limit orders and untriggered stop-limits).
    pub price: Option<Price>,
    /// New trigger price, if changing (untriggered stops only).
    pub stop_price: Option<Price>,
}
