-- Snapshot bytes in chunks, each written in its own short transaction: one
-- statement inserting a whole engine image (tens of MB) held SQLite's single
-- write lock long enough to stall the journal's commits behind it. A snapshot
-- row is written after all its chunks, so a crash in between leaves only
-- orphan chunks, which the next snapshot removes.
CREATE TABLE snapshot_chunk (
    shard  INTEGER NOT NULL,
    seq    INTEGER NOT NULL CHECK (seq >= 1),
    kind   INTEGER NOT NULL CHECK (kind IN (0, 1)),   -- 0 engine, 1 client order ids
    part   INTEGER NOT NULL CHECK (part >= 0),
    bytes  BLOB    NOT NULL,
    PRIMARY KEY (shard, seq, kind, part)
) STRICT;
-- How many chunks of each kind the snapshot has (NULL: the bytes are inline in
-- `engine` and `client_orders`, as older snapshots have them; or dropped).
ALTER TABLE snapshot ADD COLUMN engine_chunks INTEGER CHECK (engine_chunks IS NULL OR engine_chunks >= 0);
ALTER TABLE snapshot ADD COLUMN client_order_chunks INTEGER CHECK (client_order_chunks IS NULL OR client_order_chunks >= 0);
