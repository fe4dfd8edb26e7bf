//! Why a command was refused: a closed set with stable codes. A rejected command
//! changes nothing.

use thiserror::Error;

/// Every reason the engine refuses a command. The [`Reject::code`] strings are part
/// of the API contract: clients match on them, so they never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum Reject {
    /// No book for that product.
    #[error("unknown product")]
    UnknownProduct,
    /// A book for that product already exists.
    #[error("product already listed")]
    ProductExists,
    /// Tick or lot size is not positive or out of range.
    #[error("invalid product specification")]
    InvalidProductSpec,
    /// The product is halted: no new orders or amends.
    #[error("market is halted")]
    MarketHalted,
    /// Quantity is zero, negative or above the maximum.
    #[error("quantity must be positive and at most the maximum")]
    InvalidQuantity,
    /// Quantity is not a multiple of the lot size.
    #[error("quantity is not a multiple of the lot size")]
    QuantityNotOnLot,
    /// Price is zero, negative or above the maximum.
    #[error("price must be positive and at most the maximum")]
    InvalidPrice,
    /// Price is not a multiple of the tick size.
    #[error("price is not a multiple of the tick size")]
    PriceNotOnTick,
    /// A limit price is required for this order type.
    #[error("a price is required for this order type")]
    MissingPrice,
    /// A limit price is not allowed for this order type.
    #[error("a price is not allowed for this order type")]
    UnexpectedPrice,
    /// A stop price is required for this order type.
    #[error("a stop price is required for this order type")]
    MissingStopPrice,
    /// A stop price is not allowed for this order type or state.
    #[error("a stop price is not allowed for this order type, or once it has triggered")]
    UnexpectedStopPrice,
    /// Post-only needs a LIMIT order that may rest (GTC or DAY).
    #[error("post-only needs a GTC or DAY limit order")]
    InvalidPostOnly,
    /// The post-only order would have traded on entry.
    #[error("post-only order would trade")]
    PostOnlyWouldTrade,
    /// The order id is not greater than every earlier one.
    #[error("duplicate or out-of-order order id")]
    DuplicateOrderId,
    /// No such order (or it belongs to another participant).
    #[error("order not found")]
    UnknownOrder,
    /// The order existed but is no longer open.
    #[error("order is not open")]
    OrderNotOpen,
    /// An amend that changes nothing.
    #[error("amend changes nothing")]
    NothingToAmend,
    /// The new quantity is not above what already traded or was cancelled.
    #[error("new quantity must exceed the executed quantity")]
    QuantityBelowExecuted,
    /// The engine holds its maximum number of open orders.
    #[error("order capacity exhausted")]
    CapacityExhausted,
    /// No trade with that id was printed.
    #[error("trade not found")]
    UnknownTrade,
}

impl Reject {
    /// The stable, upper-snake machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Reject::UnknownProduct => "PRODUCT_NOT_FOUND",
            Reject::ProductExists => "PRODUCT_EXISTS",
            Reject::InvalidProductSpec => "INVALID_PRODUCT_SPEC",
            Reject::MarketHalted => "MARKET_HALTED",
            Reject::InvalidQuantity => "INVALID_QUANTITY",
            Reject::QuantityNotOnLot => "QUANTITY_NOT_ON_LOT",
            Reject::InvalidPrice => "INVALID_PRICE",
            Reject::PriceNotOnTick => "PRICE_NOT_ON_TICK",
            Reject::MissingPrice => "PRICE_REQUIRED",
            Reject::UnexpectedPrice => "PRICE_NOT_ALLOWED",
            Reject::MissingStopPrice => "STOP_PRICE_REQUIRED",
            Reject::UnexpectedStopPrice => "STOP_PRICE_NOT_ALLOWED",
            Reject::InvalidPostOnly => "INVALID_POST_ONLY",
            Reject::PostOnlyWouldTrade => "POST_ONLY_WOULD_TRADE",
            Reject::DuplicateOrderId => "DUPLICATE_ORDER_ID",
            Reject::UnknownOrder => "ORDER_NOT_FOUND",
            Reject::OrderNotOpen => "ORDER_NOT_OPEN",
            Reject::NothingToAmend => "NOTHING_TO_AMEND",
            Reject::QuantityBelowExecuted => "QUANTITY_BELOW_EXECUTED",
            Reject::CapacityExhausted => "CAPACITY_EXHAUSTED",
            Reject::UnknownTrade => "TRADE_NOT_FOUND",
        }
    }

    /// Every variant, for tables and documentation.
    pub const ALL: [Reject; 21] = [
        Reject::UnknownProduct,
        Reject::ProductExists,
        Reject::InvalidProductSpec,
        Reject::MarketHalted,
        Reject::InvalidQuantity,
        Reject::QuantityNotOnLot,
        Reject::InvalidPrice,
        Reject::PriceNotOnTick,
        Reject::MissingPrice,
        Reject::UnexpectedPrice,
        Reject::MissingStopPrice,
        Reject::UnexpectedStopPrice,
        Reject::InvalidPostOnly,
        Reject::PostOnlyWouldTrade,
        Reject::DuplicateOrderId,
        Reject::UnknownOrder,
        Reject::OrderNotOpen,
        Reject::NothingToAmend,
        Reject::QuantityBelowExecuted,
        Reject::CapacityExhausted,
        Reject::UnknownTrade,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_upper_snake() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reject::ALL {
            let code = r.code();
            assert!(code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{code}");
            assert!(seen.insert(code), "duplicate code {code}");
        }
    }
}
