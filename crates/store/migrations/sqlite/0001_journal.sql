-- The command journal and engine snapshots of each shard.
--
-- One row per committed batch: its entries in the journal's own binary encoding,
-- and the hash chain before and after them. Verification re-derives every entry's
-- hash, so the chain columns are a check, not the only copy of the truth.
CREATE TABLE journal (
    shard      INTEGER NOT NULL,
    first_seq  INTEGER NOT NULL CHECK (first_seq >= 1),
    last_seq   INTEGER NOT NULL,
    prev_hash  BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash       BLOB    NOT NULL CHECK (length(hash) = 32),
    entries    BLOB    NOT NULL,
    PRIMARY KEY (shard, first_seq),
    UNIQUE (shard, last_seq),
    CHECK (last_seq >= first_seq)
) STRICT;

-- Engine snapshots. Old snapshots keep their hashes (verify checks every one) but
-- drop their engine bytes once newer ones exist.
CREATE TABLE snapshot (
    shard          INTEGER NOT NULL,
    seq            INTEGER NOT NULL CHECK (seq >= 1),
    time_ns        INTEGER NOT NULL,
    chain_hash     BLOB    NOT NULL CHECK (length(chain_hash) = 32),
    state_hash     BLOB    NOT NULL CHECK (length(state_hash) = 32),
    next_order_id  INTEGER NOT NULL CHECK (next_order_id >= 1),
    engine         BLOB,
    PRIMARY KEY (shard, seq)
) STRICT;
