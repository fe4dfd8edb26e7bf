-- Pre-trade risk limits and the kill switch, per participant. NULL: no limit.
-- The notional limit is a decimal string in the product's currency.
CREATE TABLE risk_limits (
    participant_id     INTEGER PRIMARY KEY REFERENCES participants (id),
    order_qty_max      INTEGER CHECK (order_qty_max >= 1),
    order_notional_max TEXT,
    open_orders_max    INTEGER CHECK (open_orders_max >= 0),
    collar_bps         INTEGER CHECK (collar_bps BETWEEN 1 AND 100000),
    killed             INTEGER NOT NULL DEFAULT 0 CHECK (killed IN (0, 1)),
    updated_ns         INTEGER NOT NULL
) STRICT;
