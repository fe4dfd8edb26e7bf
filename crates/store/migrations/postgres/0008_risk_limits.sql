-- Pre-trade risk limits and the kill switch, per participant (see the SQLite twin).
CREATE TABLE risk_limits (
    participant_id     BIGINT PRIMARY KEY REFERENCES participants (id),
    order_qty_max      BIGINT CHECK (order_qty_max >= 1),
    order_notional_max TEXT,
    open_orders_max    BIGINT CHECK (open_orders_max >= 0),
    collar_bps         BIGINT CHECK (collar_bps BETWEEN 1 AND 100000),
    killed             BIGINT NOT NULL DEFAULT 0 CHECK (killed IN (0, 1)),
    updated_ns         BIGINT NOT NULL
);
