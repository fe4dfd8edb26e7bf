-- The engine limits a shard's journal was written with: replay must use the same
-- (a different orders_max could accept or reject different orders).
CREATE TABLE engine_config (
    shard       INTEGER PRIMARY KEY,
    orders_max  INTEGER NOT NULL CHECK (orders_max >= 1)
) STRICT;
