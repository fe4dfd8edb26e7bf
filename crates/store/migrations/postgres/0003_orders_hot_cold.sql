-- Split orders into a small table of working orders, rewritten as they trade, and
-- a write-once table of finished ones. A single table made every batch rewrite
-- pages scattered over the whole order history (a resting order's row sits among
-- all the orders entered around it); with the split, updates stay within the few
-- pages of working orders and finished orders append at the end. `orders` stays as
-- a view over both, for readers that want every order.
-- The old partial index's name is the new table's.
DROP INDEX orders_open;

CREATE TABLE orders_open (
    id                   BIGINT PRIMARY KEY CHECK (id >= 1),
    client_order_id      TEXT,
    product_id           BIGINT  NOT NULL,
    participant_id       BIGINT  NOT NULL,
    side                 TEXT    NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type           TEXT    NOT NULL,
    time_in_force        TEXT    NOT NULL,
    post_only            BOOLEAN NOT NULL,
    self_trade_prevention TEXT   NOT NULL,
    price                BIGINT ,
    stop_price           BIGINT ,
    original_qty         BIGINT  NOT NULL CHECK (original_qty > 0),
    traded_qty           BIGINT  NOT NULL CHECK (traded_qty >= 0),
    cancelled_qty        BIGINT  NOT NULL CHECK (cancelled_qty >= 0),
    open_qty             BIGINT  NOT NULL CHECK (open_qty > 0),
    notional             TEXT    NOT NULL,
    status               TEXT    NOT NULL CHECK (status IN ('NEW', 'BOOKED', 'PARTIALLY_FILLED')),
    entry_seq            BIGINT  NOT NULL,
    entry_time_ns        BIGINT  NOT NULL,
    update_seq           BIGINT  NOT NULL,
    update_time_ns       BIGINT  NOT NULL,
    triggered            BOOLEAN NOT NULL,
    expired              BOOLEAN NOT NULL CHECK (NOT expired),
    CHECK (traded_qty + cancelled_qty + open_qty = original_qty)
);
CREATE INDEX orders_open_by_participant ON orders_open (participant_id, id);
CREATE INDEX orders_open_by_client_id ON orders_open (participant_id, client_order_id);

CREATE TABLE orders_done (
    id                   BIGINT PRIMARY KEY CHECK (id >= 1),
    client_order_id      TEXT,
    product_id           BIGINT  NOT NULL,
    participant_id       BIGINT  NOT NULL,
    side                 TEXT    NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type           TEXT    NOT NULL,
    time_in_force        TEXT    NOT NULL,
    post_only            BOOLEAN NOT NULL,
    self_trade_prevention TEXT   NOT NULL,
    price                BIGINT ,
    stop_price           BIGINT ,
    original_qty         BIGINT  NOT NULL CHECK (original_qty > 0),
    traded_qty           BIGINT  NOT NULL CHECK (traded_qty >= 0),
    cancelled_qty        BIGINT  NOT NULL CHECK (cancelled_qty >= 0),
    open_qty             BIGINT  NOT NULL CHECK (open_qty = 0),
    notional             TEXT    NOT NULL,
    status               TEXT    NOT NULL
        CHECK (status IN ('FILLED', 'CANCELLED', 'PARTIALLY_CANCELLED', 'EXPIRED')),
    entry_seq            BIGINT  NOT NULL,
    entry_time_ns        BIGINT  NOT NULL,
    update_seq           BIGINT  NOT NULL,
    update_time_ns       BIGINT  NOT NULL,
    triggered            BOOLEAN NOT NULL,
    expired              BOOLEAN NOT NULL,
    CHECK (traded_qty + cancelled_qty = original_qty)
);
CREATE INDEX orders_done_by_participant ON orders_done (participant_id, id);
CREATE INDEX orders_done_by_client_id ON orders_done (participant_id, client_order_id);

INSERT INTO orders_open SELECT * FROM orders WHERE open_qty > 0;
INSERT INTO orders_done SELECT * FROM orders WHERE open_qty = 0;
DROP TABLE orders;

CREATE VIEW orders AS
    SELECT * FROM orders_open
    UNION ALL
    SELECT * FROM orders_done;
