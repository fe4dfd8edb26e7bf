-- Fencing: which writer owns each shard. A starting writer bumps its shard's epoch
-- (waiting for commits in flight, whose FOR SHARE lock conflicts) before it reads
-- the journal back; every commit checks the epoch under FOR SHARE. A writer that
-- has been replaced, or the PostgreSQL backend of a killed process finishing a
-- COMMIT, can therefore never land a batch after the new writer's recovery.
CREATE TABLE shard_writer (
    shard  INTEGER PRIMARY KEY,
    epoch  BIGINT  NOT NULL CHECK (epoch >= 1)
);
