-- The services' own tables: products, participants, users and API keys. The
-- engine's view of products (tick, lot, halted) comes from the journal; these
-- rows hold what the services add (symbols, names, credentials).
CREATE TABLE products (
    id            INTEGER PRIMARY KEY CHECK (id >= 1 AND id <= 4294967295),
    symbol        TEXT    NOT NULL UNIQUE CHECK (length(symbol) BETWEEN 1 AND 16),
    description   TEXT    NOT NULL CHECK (length(description) <= 256),
    product_type  TEXT    NOT NULL CHECK (product_type IN ('EQUITY')),
    tick_size     TEXT    NOT NULL,
    price_scale   INTEGER NOT NULL CHECK (price_scale BETWEEN 0 AND 9),
    lot_size      INTEGER NOT NULL CHECK (lot_size >= 1),
    currency      TEXT    NOT NULL CHECK (length(currency) = 3),
    status        TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'HALTED', 'DELETED')),
    created_ns    INTEGER NOT NULL,
    updated_ns    INTEGER NOT NULL
) STRICT;

CREATE TABLE participants (
    id                INTEGER PRIMARY KEY CHECK (id >= 1 AND id <= 4294967295),
    name              TEXT    NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    participant_type  TEXT    NOT NULL CHECK (participant_type IN ('BROKER')),
    status            TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED')),
    created_ns        INTEGER NOT NULL,
    updated_ns        INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id              INTEGER PRIMARY KEY CHECK (id >= 1),
    username        TEXT    NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),
    password_hash   TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('admin', 'operator', 'broker')),
    participant_id  INTEGER REFERENCES participants (id),
    status          TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED')),
    created_ns      INTEGER NOT NULL,
    -- A broker trades for exactly one participant; internal users for none.
    CHECK ((role = 'broker') = (participant_id IS NOT NULL))
) STRICT;
CREATE INDEX users_by_participant ON users (participant_id);

CREATE TABLE api_keys (
    key              TEXT    PRIMARY KEY CHECK (length(key) BETWEEN 16 AND 64),
    user_id          INTEGER NOT NULL REFERENCES users (id),
    secret           TEXT    NOT NULL,
    passphrase_hash  TEXT    NOT NULL,
    created_ns       INTEGER NOT NULL,
    revoked_ns       INTEGER
) STRICT;
CREATE INDEX api_keys_by_user ON api_keys (user_id);
