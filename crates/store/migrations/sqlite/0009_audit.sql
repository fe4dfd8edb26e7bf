-- The audit trail: who did what to the exchange's configuration and access
-- (logins, users, API keys, products, participants, limits, kill switches, halts,
-- busts), append-only and hash-chained like the journal: each row's hash covers
-- the previous row's hash and its own fields, so an edited, removed or inserted
-- row breaks the chain (`atlas verify` checks it).
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY CHECK (seq >= 1),
    time_ns    INTEGER NOT NULL,
    principal  TEXT    NOT NULL CHECK (length(principal) BETWEEN 1 AND 128),
    ip         TEXT             CHECK (ip IS NULL OR length(ip) <= 64),
    action     TEXT    NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target     TEXT             CHECK (target IS NULL OR length(target) <= 256),
    detail     TEXT    NOT NULL CHECK (length(detail) <= 4096),
    prev_hash  BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash       BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32)
) STRICT;
CREATE INDEX audit_by_action ON audit (action, seq);
