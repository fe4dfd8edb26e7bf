//! Turns at a SQLite file's one write lock for the writers of it in this
//! process: the journal's writer (also the WAL checkpoint's last pass before
//! the WAL restarts), the snapshot thread and the services' writes.
//!
//! SQLite's own busy handler polls (it sleeps 1 ms, then 2, 5, ... up to 100 ms
//! between tries). Under sustained load the journal's writer commits back to
//! back and retakes the lock within microseconds, so it held the lock at nearly
//! every poll: a snapshot waited seconds (a process killed every second never
//! wrote one, and recovery time grew without bound), and a service write such as
//! a new API key could run into its 5 s busy timeout. A FIFO mutex taken around
//! each write transaction hands the lock to whoever waited first: the others
//! slot in between commits, each waiting at most for the transactions queued
//! ahead of it, and the writer for the short ones queued ahead of its next
//! commit.
//!
//! Other processes still meet SQLite's busy handler; only one Atlas process
//! writes a database (its writer lock file), so those are tools and readers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// The turn of one database file.
pub(crate) type WriteTurn = Arc<tokio::sync::Mutex<()>>;

/// Every file's turn while anyone holds it, by canonical path.
static TURNS: LazyLock<Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

/// The turn of the database at `path`, shared by every caller in this process
/// that names the same file (by any path).
pub(crate) fn of(path: &Path) -> WriteTurn {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut turns = TURNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(turn) = turns.get(&key).and_then(Weak::upgrade) {
        return turn;
    }
    // Forget the files nobody holds any more, so the map stays as small as the
    // set of open databases.
    turns.retain(|_, t| t.strong_count() > 0);
    let turn = WriteTurn::default();
    turns.insert(key, Arc::downgrade(&turn));
    turn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_has_one_turn_by_any_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"").expect("create");
        let first = of(&path);
        let by_other_path = of(&dir.path().join(".").join("a.db"));
        assert!(Arc::ptr_eq(&first, &by_other_path), "the same file shares its turn");
        let other = of(&dir.path().join("b.db"));
        assert!(!Arc::ptr_eq(&first, &other), "another file has its own");
        let weak = Arc::downgrade(&first);
        drop((first, by_other_path));
        assert!(weak.upgrade().is_none(), "the registry does not keep a turn alive");
    }
}
