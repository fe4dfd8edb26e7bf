-- The audit trail (see the SQLite migration): append-only, hash-chained.
CREATE TABLE audit (
    seq        BIGINT  PRIMARY KEY CHECK (seq >= 1),
    time_ns    BIGINT  NOT NULL,
    principal  TEXT    NOT NULL CHECK (length(principal) BETWEEN 1 AND 128),
    ip         TEXT             CHECK (ip IS NULL OR length(ip) <= 64),
    action     TEXT    NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target     TEXT             CHECK (target IS NULL OR length(target) <= 256),
    detail     TEXT    NOT NULL CHECK (length(detail) <= 4096),
    prev_hash  BYTEA   NOT NULL CHECK (length(prev_hash) = 32),
    hash       BYTEA   NOT NULL UNIQUE CHECK (length(hash) = 32)
);
CREATE INDEX audit_by_action ON audit (action, seq);
