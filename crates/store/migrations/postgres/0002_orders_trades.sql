-- The query tables, derived from the journal and written in the same transaction
-- as the batch that changed them. Quantities and prices are integers in the
-- product's units; notional (sum of price x quantity, for the average price) is a
-- decimal string because it can exceed 64 bits.
CREATE TABLE orders (
    id                   BIGINT PRIMARY KEY CHECK (id >= 1),
    client_order_id      TEXT,
    product_id           BIGINT NOT NULL,
    participant_id       BIGINT NOT NULL,
    side                 TEXT    NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type           TEXT    NOT NULL,
    time_in_force        TEXT    NOT NULL,
    post_only            BOOLEAN NOT NULL,
    self_trade_prevention TEXT   NOT NULL,
    price                BIGINT,
    stop_price           BIGINT,
    original_qty         BIGINT NOT NULL CHECK (original_qty > 0),
    traded_qty           BIGINT NOT NULL CHECK (traded_qty >= 0),
    cancelled_qty        BIGINT NOT NULL CHECK (cancelled_qty >= 0),
    open_qty             BIGINT NOT NULL CHECK (open_qty >= 0),
    notional             TEXT    NOT NULL,
    status               TEXT    NOT NULL,
    entry_seq            BIGINT NOT NULL,
    entry_time_ns        BIGINT NOT NULL,
    update_seq           BIGINT NOT NULL,
    update_time_ns       BIGINT NOT NULL,
    triggered            BOOLEAN NOT NULL,
    expired              BOOLEAN NOT NULL
);
CREATE INDEX orders_by_participant ON orders (participant_id, status, id);
CREATE INDEX orders_by_client_id ON orders (participant_id, client_order_id);
CREATE INDEX orders_open ON orders (open_qty) WHERE open_qty > 0;

CREATE TABLE trades (
    id                    BIGINT PRIMARY KEY CHECK (id >= 1),
    product_id            BIGINT NOT NULL,
    price                 BIGINT NOT NULL CHECK (price > 0),
    quantity              BIGINT NOT NULL CHECK (quantity > 0),
    maker_order_id        BIGINT NOT NULL,
    maker_participant_id  BIGINT NOT NULL,
    taker_order_id        BIGINT NOT NULL,
    taker_participant_id  BIGINT NOT NULL,
    aggressor_side        TEXT    NOT NULL CHECK (aggressor_side IN ('BUY', 'SELL')),
    seq                   BIGINT NOT NULL,
    time_ns               BIGINT NOT NULL,
    busted                BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX trades_by_product ON trades (product_id, id);
CREATE INDEX trades_by_maker ON trades (maker_order_id);
CREATE INDEX trades_by_taker ON trades (taker_order_id);
