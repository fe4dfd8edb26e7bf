//! The Atlas matching engine: a pure, deterministic price-time order book per
//! product.
//!
//! Drive it with [`Engine::apply`]: one [`Command`] in, a list of [`Event`]s out.
//! The engine does no I/O, never blocks or awaits, never reads a clock and draws no
//! random numbers: everything it needs (sequence number, time, order ids) arrives in
//! the command. Replaying the same commands therefore rebuilds the same state, which
//! [`Engine::state_hash`] makes checkable, and [`Engine::snapshot`] /
//! [`Engine::restore`] bound how much has to be replayed.
//!
//! ```
//! use atlas_engine::*;
//! use atlas_types::*;
//!
//! let mut engine = Engine::default();
//! let mut events = Vec::new();
//! let mut seq = 0;
//! let mut cmd = |kind| { seq += 1; Command { seq: Seq(seq), time: Timestamp(0), kind } };
//! engine.apply(&cmd(CommandKind::AddProduct(ProductSpec {
//!     id: ProductId(1), tick: Price(1), lot: Qty(1),
//! })), &mut events);
//! let order = |id, side, price| CommandKind::NewOrder(NewOrder {
//!     order_id: OrderId(id), participant: ParticipantId(id as u32), product: ProductId(1),
//!     side, order_type: OrderType::Limit, time_in_force: TimeInForce::Gtc,
//!     quantity: Qty(10), price: Some(Price(price)), stop_price: None,
//!     post_only: false, self_trade_prevention: SelfTradePrevention::None,
//! });
//! engine.apply(&cmd(order(1, Side::Sell, 101)), &mut events);
//! events.clear();
//! engine.apply(&cmd(order(2, Side::Buy, 102)), &mut events);
//! assert!(matches!(events[1], Event::Trade { price: Price(101), quantity: Qty(10), .. }));
//! ```

mod book;
mod command;
mod engine;
mod event;
mod index;
mod ladder;
mod query;
mod reject;
mod snapshot;

pub use command::{
    Amend, Command, CommandKind, NewOrder, OrderType, ProductSpec, SelfTradePrevention, TimeInForce,
};
pub use engine::{Engine, EngineConfig, ORDERS_MAX_DEFAULT, PRODUCTS_MAX};
pub use event::{CancelReason, Event, ProductStatus};
pub use query::{Depth, LevelView, OrderView, ProductView, RestingView, StopView};
pub use reject::Reject;
pub use snapshot::{SnapshotError, StateHash};
