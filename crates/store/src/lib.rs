//! Durable storage for Atlas. Today: the journal and snapshots on SQLite, the
//! embedded default. PostgreSQL implements the same `atlas_journal::Storage` trait
//! and passes the same tests (next).

mod sqlite;

pub use sqlite::SqliteStore;
