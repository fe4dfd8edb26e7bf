-- API keys belong to a participant (programs trade for a broker, not as a user).
-- The table of 0005 was never written to; it is replaced.
DROP TABLE api_keys;
CREATE TABLE api_keys (
    id               INTEGER PRIMARY KEY CHECK (id >= 1),
    key              TEXT    NOT NULL UNIQUE CHECK (length(key) BETWEEN 16 AND 64),
    participant_id   INTEGER NOT NULL REFERENCES participants (id),
    -- The HMAC secret must be usable to verify signatures, so it is stored
    -- (base64), not hashed; the passphrase is random and checked by SHA-256.
    secret           TEXT    NOT NULL,
    passphrase_sha256 TEXT   NOT NULL CHECK (length(passphrase_sha256) = 64),
    created_by       INTEGER NOT NULL REFERENCES users (id),
    created_ns       INTEGER NOT NULL,
    revoked_ns       INTEGER
) STRICT;
CREATE INDEX api_keys_by_participant ON api_keys (participant_id);
