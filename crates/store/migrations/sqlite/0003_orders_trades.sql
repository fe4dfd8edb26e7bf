-- The query tables, derived from the journal and written in the same transaction
-- as the batch that changed them. Quantities and prices are integers in the
-- product's units; notional (sum of price x quantity, for the average price) is a
-- decimal string because it can exceed 64 bits.
CREATE TABLE orders (
    id                   INTEGER PRIMARY KEY CHECK (id >= 1),
    client_order_id      TEXT,
    product_id           INTEGER NOT NULL,
    participant_id       INTEGER NOT NULL,
    side                 TEXT    NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type           TEXT    NOT NULL,
    time_in_force        TEXT    NOT NULL,
    post_only            INTEGER NOT NULL CHECK (post_only IN (0, 1)),
    self_trade_prevention TEXT   NOT NULL,
    price                INTEGER,
    stop_price           INTEGER,
    original_qty         INTEGER NOT NULL CHECK (original_qty > 0),
    traded_qty           INTEGER NOT NULL CHECK (traded_qty >= 0),
    cancelled_qty        INTEGER NOT NULL CHECK (cancelled_qty >= 0),
    open_qty             INTEGER NOT NULL CHECK (open_qty >= 0),
    notional             TEXT    NOT NULL,
    status               TEXT    NOT NULL,
    entry_seq            INTEGER NOT NULL,
    entry_time_ns        INTEGER NOT NULL,
    update_seq           INTEGER NOT NULL,
    update_time_ns       INTEGER NOT NULL,
    triggered            INTEGER NOT NULL CHECK (triggered IN (0, 1)),
    expired              INTEGER NOT NULL CHECK (expired IN (0, 1))
) STRICT;
CREATE INDEX orders_by_participant ON orders (participant_id, status, id);
CREATE INDEX orders_by_client_id ON orders (participant_id, client_order_id);
CREATE INDEX orders_open ON orders (open_qty) WHERE open_qty > 0;

CREATE TABLE trades (
    id                    INTEGER PRIMARY KEY CHECK (id >= 1),
    product_id            INTEGER NOT NULL,
    price                 INTEGER NOT NULL CHECK (price > 0),
    quantity              INTEGER NOT NULL CHECK (quantity > 0),
    maker_order_id        INTEGER NOT NULL,
    maker_participant_id  INTEGER NOT NULL,
    taker_order_id        INTEGER NOT NULL,
    taker_participant_id  INTEGER NOT NULL,
    aggressor_side        TEXT    NOT NULL CHECK (aggressor_side IN ('BUY', 'SELL')),
    seq                   INTEGER NOT NULL,
    time_ns               INTEGER NOT NULL,
    busted                INTEGER NOT NULL DEFAULT 0 CHECK (busted IN (0, 1))
) STRICT;
CREATE INDEX trades_by_product ON trades (product_id, id);
CREATE INDEX trades_by_maker ON trades (maker_order_id);
CREATE INDEX trades_by_taker ON trades (taker_order_id);
