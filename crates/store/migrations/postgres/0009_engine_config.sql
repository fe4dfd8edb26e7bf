-- The engine limits a shard's journal was written with (see the SQLite twin).
CREATE TABLE engine_config (
    shard       INTEGER PRIMARY KEY,
    orders_max  BIGINT NOT NULL CHECK (orders_max >= 1)
);
