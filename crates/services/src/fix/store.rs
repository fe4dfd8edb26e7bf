//! A FIX session's persistent state, one directory per session (SenderCompID)
//! under `DATA_DIR/fix/`: `seqnums` holds the next outgoing and the next
//! expected incoming sequence numbers, `messages` every message sent (for
//! resends), `messages.1` the previous file once `messages` grew past
//! [`MESSAGES_FILE_BYTES_MAX`] (older messages are then answered by a gap fill).
//!
//! Writes go to the operating system at the end of each burst of work, before
//! anything is sent (a process crash loses no message sent and never reuses a
//! sequence number); they are not synced to the disk per message — the orders
//! themselves are durable in the journal before anything is sent.
//!
//! The next expected incoming number is written only along with something
//! sent, and when the session ends: at 20k orders/s a write of its own after
//! every message read was one more system call per order on the session's
//! thread. After a process crash the session may therefore expect a number the
//! client has already sent; it asks for the gap, as after any gap, and the
//! client resends it (orders as possible duplicates, whose ClOrdIDs the journal
//! recognises) or fills it. A message read but not yet committed when the
//! process died is then resent rather than lost.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use atlas_wire::fix::{self, Frame};

/// The messages file is rotated past this size.
pub const MESSAGES_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Where a rotated-out messages file waits to be deleted.
const DOOMED: &str = "messages.deleting";

/// One session's store.
pub struct SessionStore {
    dir: PathBuf,
    seqnums: File,
    messages: File,
    written: u64,
    pending: Vec<u8>,
    /// The next sequence number to send.
    pub next_out: u64,
    /// The next sequence number expected.
    pub next_in: u64,
    saved: (u64, u64),
    /// [`MESSAGES_FILE_BYTES_MAX`], but in tests.
    rotate_at: u64,
}

/// A directory name for a CompID (API keys are hex; anything else is encoded).
fn dir_name(comp_id: &str) -> String {
    if !comp_id.is_empty()
        && comp_id.len() <= 64
        && comp_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        comp_id.to_owned()
    } else {
        comp_id.bytes().map(|b| format!("{b:02x}")).collect()
    }
}

fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).append(append).mode(0o600).open(path)
}

impl SessionStore {
    /// Opens (or creates) the store of `comp_id` under `root`.
    pub fn open(root: &Path, comp_id: &str) -> std::io::Result<SessionStore> {
        let dir = root.join(dir_name(comp_id));
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let mut seqnums = open_private(&dir.join("seqnums"), false)?;
        let mut raw = Vec::new();
        seqnums.read_to_end(&mut raw)?;
        let (next_out, next_in) = match raw.get(..16) {
            Some(b) => {
                let mut out = [0u8; 8];
                let mut inn = [0u8; 8];
                out.copy_from_slice(&b[..8]);
                inn.copy_from_slice(&b[8..16]);
                (u64::from_le_bytes(out).max(1), u64::from_le_bytes(inn).max(1))
            }
            None => (1, 1),
        };
        // Left by a rotation the process did not live to finish.
        let _ = std::fs::remove_file(dir.join(DOOMED));
        let messages = open_private(&dir.join("messages"), true)?;
        let written = messages.metadata()?.len();
        Ok(SessionStore {
            dir,
            seqnums,
            messages,
            written,
            pending: Vec::new(),
            next_out,
            next_in,
            saved: (next_out, next_in),
            rotate_at: MESSAGES_FILE_BYTES_MAX,
        })
    }

    /// Starts both sequences over at 1 and forgets the messages sent.
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.pending.clear();
        self.messages.set_len(0)?;
        self.written = 0;
        let _ = std::fs::remove_file(self.dir.join("messages.1"));
        self.next_out = 1;
        self.next_in = 1;
        self.save()
    }

    /// Keeps a message just sent (its sequence number is `next_out - 1`).
    pub fn keep(&mut self, message: &[u8]) {
        self.pending.extend_from_slice(message);
    }

    /// Hands what was kept, and the sequence numbers if anything was sent, to
    /// the operating system (see the module's notes).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.write(false)
    }

    /// [`SessionStore::flush`], and the next expected incoming number too.
    pub fn save(&mut self) -> std::io::Result<()> {
        self.write(true)
    }

    fn write(&mut self, incoming_too: bool) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            if self.written + self.pending.len() as u64 > self.rotate_at && self.written > 0 {
                // Freeing the previous 64 MiB file took the session's thread
                // (and every report behind it) 20-30 ms on tmpfs: it moves
                // aside and is deleted on a thread of its own.
                let doomed = self.dir.join(DOOMED);
                if std::fs::rename(self.dir.join("messages.1"), &doomed).is_ok() {
                    let _ = std::thread::Builder::new()
                        .name("atlas-fix-rotate".into())
                        .spawn(move || std::fs::remove_file(doomed));
                }
                std::fs::rename(self.dir.join("messages"), self.dir.join("messages.1"))?;
                self.messages = open_private(&self.dir.join("messages"), true)?;
                self.written = 0;
            }
            self.messages.write_all(&self.pending)?;
            self.written += self.pending.len() as u64;
            self.pending.clear();
        }
        let sent = self.saved.0 != self.next_out;
        if (sent || incoming_too) && self.saved != (self.next_out, self.next_in) {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&self.next_out.to_le_bytes());
            b[8..].copy_from_slice(&self.next_in.to_le_bytes());
            self.seqnums.write_all_at(&b, 0)?;
            self.saved = (self.next_out, self.next_in);
        }
        Ok(())
    }

    /// The messages sent with sequence numbers `from..=to`, oldest first, as
    /// kept (messages no longer kept are simply absent).
    pub fn sent(&mut self, from: u64, to: u64) -> std::io::Result<Vec<fix::Message>> {
        self.flush()?;
        let mut out = Vec::new();
        for name in ["messages.1", "messages"] {
            let Ok(mut f) = File::open(self.dir.join(name)) else { continue };
            f.seek(SeekFrom::Start(0))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            let mut at = 0;
            while at < buf.len() {
                match fix::frame(&buf[at..]) {
                    Frame::Message(n, m) => {
                        at += n;
                        if m.uint(34).is_some_and(|s| s >= from && s <= to) {
                            out.push(m);
                        }
                    }
                    Frame::Garbled(n, _) => at += n,
                    Frame::Incomplete => break,
                }
            }
        }
        out.sort_by_key(|m| m.uint(34));
        // A sequence reset can leave an older copy of a number in messages.1.
        out.dedup_by_key(|m| m.uint(34));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn message(seq: u64) -> Vec<u8> {
        let seq = seq.to_string();
        fix::encode(&[(35, b"0"), (49, b"A"), (56, b"B"), (34, seq.as_bytes()), (52, b"20260101-00:00:00")])
    }

    #[test]
    fn the_incoming_number_is_written_with_what_is_sent_and_when_saved() {
        let root = tempfile::tempdir().unwrap();
        let reopened = || {
            let s = SessionStore::open(root.path(), "K2").unwrap();
            (s.next_out, s.next_in)
        };
        let mut store = SessionStore::open(root.path(), "K2").unwrap();
        // Messages read, nothing sent: not written (a crash asks for them again).
        store.next_in = 5;
        store.flush().unwrap();
        assert_eq!(reopened(), (1, 1));
        // Something sent: both numbers go with it.
        store.keep(&message(1));
        store.next_out = 2;
        store.flush().unwrap();
        assert_eq!(reopened(), (2, 5));
        store.next_in = 9;
        store.flush().unwrap();
        assert_eq!(reopened(), (2, 5));
        // The session's end saves everything.
        store.save().unwrap();
        assert_eq!(reopened(), (2, 9));
        // A reset is written at once.
        store.reset().unwrap();
        assert_eq!(reopened(), (1, 1));
    }

    #[test]
    fn rotation_keeps_the_previous_file_and_deletes_the_one_before() {
        let root = tempfile::tempdir().unwrap();
        let mut store = SessionStore::open(root.path(), "K1").unwrap();
        let dir = root.path().join("K1");
        // A rotation the process did not finish is cleaned up when it opens.
        std::fs::write(dir.join(DOOMED), b"old").unwrap();
        drop(store);
        store = SessionStore::open(root.path(), "K1").unwrap();
        assert!(!dir.join(DOOMED).exists());
        store.rotate_at = 1_000;
        for seq in 1..=60 {
            store.keep(&message(seq));
            store.next_out = seq + 1;
            store.flush().unwrap();
        }
        // Several rotations: the last two files stay, the rest are deleted
        // (on their own thread, so waited for).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while dir.join(DOOMED).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut names: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["messages", "messages.1", "seqnums"]);
        let kept: Vec<u64> = store.sent(1, 60).unwrap().iter().map(|m| m.uint(34).unwrap()).collect();
        assert!(kept.len() > 1 && kept.len() < 60, "{} kept", kept.len());
        assert_eq!(*kept.last().unwrap(), 60);
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "{kept:?}");
    }
}
