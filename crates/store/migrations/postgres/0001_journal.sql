-- The command journal and engine snapshots of each shard (see the SQLite twin).
CREATE TABLE journal (
    shard      INTEGER NOT NULL,
    first_seq  BIGINT  NOT NULL CHECK (first_seq >= 1),
    last_seq   BIGINT  NOT NULL,
    prev_hash  BYTEA   NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash       BYTEA   NOT NULL CHECK (octet_length(hash) = 32),
    entries    BYTEA   NOT NULL,
    PRIMARY KEY (shard, first_seq),
    UNIQUE (shard, last_seq),
    CHECK (last_seq >= first_seq)
);

CREATE TABLE snapshot (
    shard          INTEGER NOT NULL,
    seq            BIGINT  NOT NULL CHECK (seq >= 1),
    time_ns        BIGINT  NOT NULL,
    chain_hash     BYTEA   NOT NULL CHECK (octet_length(chain_hash) = 32),
    state_hash     BYTEA   NOT NULL CHECK (octet_length(state_hash) = 32),
    next_order_id  BIGINT  NOT NULL CHECK (next_order_id >= 1),
    engine         BYTEA,
    client_orders  BYTEA,
    PRIMARY KEY (shard, seq)
);
