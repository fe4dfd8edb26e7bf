//! Ids, fixed-point prices and quantities shared by every Atlas crate.
//!
//! Money never travels as a float. A [`Price`] is an integer count of the product's
//! price unit (10^-`scale` of the currency, where `scale` is per product) and a
//! [`Qty`] is an integer count of units (shares). Tick and lot sizes are multiples of
//! those units, and the engine rejects prices and quantities that are not on them.
//! [`decimal`] converts between these integers and the decimal strings that APIs
//! carry, exactly, refusing anything that would need rounding.

pub mod decimal;

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// An order's id, assigned by the sequencer; strictly increasing per shard.
    OrderId(u64)
);
id_type!(
    /// A trade's id, assigned by the engine from its own counter (deterministic).
    TradeId(u64)
);
id_type!(
    /// A participant (broker) id.
    ParticipantId(u32)
);
id_type!(
    /// A product (equity) id.
    ProductId(u32)
);
id_type!(
    /// A command's sequence number within its shard's journal.
    Seq(u64)
);

/// A point in time, nanoseconds since the Unix epoch (UTC). It arrives inside a
/// command; the engine never reads a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// A price as an integer count of the product's price unit (10^-scale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Price(pub i64);

/// A quantity as an integer count of units (for equities: shares).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Qty(pub i64);

impl Price {
    /// The largest price the engine accepts, in price units. Chosen so that a
    /// notional (`price * quantity`) of two maximal values still fits an `i128` with
    /// room to spare and any single level total fits an `i64`.
    pub const MAX: Price = Price(1_000_000_000_000_000);
}

impl Qty {
    /// Zero units.
    pub const ZERO: Qty = Qty(0);
    /// The largest single order quantity the engine accepts. With at most a few
    /// million resting orders, a level total stays far below `i64::MAX`.
    pub const MAX: Qty = Qty(1_000_000_000_000);

    /// The smaller of two quantities.
    #[inline]
    pub fn min(self, other: Qty) -> Qty {
        if self.0 <= other.0 { self } else { other }
    }

    /// True when the quantity is zero.
    #[inline]
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::Add for Qty {
    type Output = Qty;
    #[inline]
    fn add(self, rhs: Qty) -> Qty {
        Qty(self.0 + rhs.0)
    }
}

impl std::ops::Sub for Qty {
    type Output = Qty;
    #[inline]
    fn sub(self, rhs: Qty) -> Qty {
        Qty(self.0 - rhs.0)
    }
}

impl std::ops::AddAssign for Qty {
    #[inline]
    fn add_assign(&mut self, rhs: Qty) {
        self.0 += rhs.0;
    }
}

impl std::ops::SubAssign for Qty {
    #[inline]
    fn sub_assign(&mut self, rhs: Qty) {
        self.0 -= rhs.0;
    }
}

impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The side of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// A bid: wants to buy.
    Buy,
    /// An offer: wants to sell.
    Sell,
}

impl Side {
    /// The other side.
    #[inline]
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// The API spelling: `BUY` or `SELL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
}
