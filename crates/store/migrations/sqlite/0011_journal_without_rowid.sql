-- The journal as one b-tree keyed by (shard, first_seq), without the rowid
-- table and the second index on (shard, last_seq). Each commit appends one
-- row, and SQLite rewrites every page it touches: three b-trees meant three
-- leaf pages (12 KiB of WAL) per commit for a few hundred bytes of entries,
-- about a fifth of the pages a small order batch writes. Batches never
-- overlap (the sequencer numbers them one after another), so the key on
-- first_seq alone orders and finds them; replay reads from the batch that
-- holds its cursor's next command.
CREATE TABLE journal_keyed (
    shard      INTEGER NOT NULL,
    first_seq  INTEGER NOT NULL CHECK (first_seq >= 1),
    last_seq   INTEGER NOT NULL,
    prev_hash  BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash       BLOB    NOT NULL CHECK (length(hash) = 32),
    entries    BLOB    NOT NULL,
    PRIMARY KEY (shard, first_seq),
    CHECK (last_seq >= first_seq)
) STRICT, WITHOUT ROWID;

INSERT INTO journal_keyed (shard, first_seq, last_seq, prev_hash, hash, entries)
    SELECT shard, first_seq, last_seq, prev_hash, hash, entries FROM journal ORDER BY shard, first_seq;
DROP TABLE journal;
ALTER TABLE journal_keyed RENAME TO journal;
