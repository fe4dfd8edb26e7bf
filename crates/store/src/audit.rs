//! The audit trail: an append-only, hash-chained record of who changed the
//! exchange's configuration or access. Each entry's hash is SHA-256 over the
//! previous entry's hash and the entry's own fields (length-prefixed), so editing,
//! removing, reordering or inserting a row breaks the chain from there on.
//!
//! Appends within one process take turns (a mutex); across processes the next
//! sequence number is the primary key, so of two writers that read the same
//! chain head one inserts and the other gets a duplicate and retries on the new
//! head. The chain never forks.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::with_pool;
use crate::db::{Db, DbError, Pool, db_err};

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];
/// Retries of an append that lost a race for the next sequence number.
const APPEND_ATTEMPTS: usize = 16;
/// Entries read per page when verifying.
const VERIFY_PAGE: i64 = 1_000;

/// What an entry records (without its place in the chain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// When, in nanoseconds since the epoch.
    pub time_ns: i64,
    /// Who: `user:ID`, `key:ID`, `system`, or `login:NAME` for a login attempt.
    pub principal: String,
    /// The client's IP address, if known.
    pub ip: Option<String>,
    /// What, e.g. `LOGIN_FAILED`, `PRODUCT_HALTED`, `TRADE_BUSTED`.
    pub action: String,
    /// On what, e.g. `product:1`.
    pub target: Option<String>,
    /// More, as JSON (never a secret).
    pub detail: String,
}

/// A stored entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// Its place in the chain, from 1.
    pub seq: i64,
    /// What it records.
    pub event: AuditEvent,
    /// The previous entry's hash.
    pub prev_hash: [u8; 32],
    /// Its own hash.
    pub hash: [u8; 32],
}

fn put(h: &mut Sha256, field: &[u8]) {
    h.update((field.len() as u64).to_be_bytes());
    h.update(field);
}

/// The hash of the entry `seq` with `event`, after `prev`.
pub fn entry_hash(prev: &[u8; 32], seq: i64, e: &AuditEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"atlas-audit-v1");
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(e.time_ns.to_be_bytes());
    put(&mut h, e.principal.as_bytes());
    match &e.ip {
        Some(ip) => {
            h.update([1]);
            put(&mut h, ip.as_bytes());
        }
        None => h.update([0]),
    }
    put(&mut h, e.action.as_bytes());
    match &e.target {
        Some(t) => {
            h.update([1]);
            put(&mut h, t.as_bytes());
        }
        None => h.update([0]),
    }
    put(&mut h, e.detail.as_bytes());
    h.finalize().into()
}

fn hash32(v: Vec<u8>) -> Result<[u8; 32], DbError> {
    v.try_into().map_err(|_| DbError::Storage("stored audit hash is not 32 bytes".into()))
}

macro_rules! audit_row {
    ($row:expr) => {{
        let r = $row;
        Ok::<AuditRow, DbError>(AuditRow {
            seq: r.try_get("seq").map_err(db_err)?,
            event: AuditEvent {
                time_ns: r.try_get("time_ns").map_err(db_err)?,
                principal: r.try_get("principal").map_err(db_err)?,
                ip: r.try_get("ip").map_err(db_err)?,
                action: r.try_get("action").map_err(db_err)?,
                target: r.try_get("target").map_err(db_err)?,
                detail: r.try_get("detail").map_err(db_err)?,
            },
            prev_hash: hash32(r.try_get("prev_hash").map_err(db_err)?)?,
            hash: hash32(r.try_get("hash").map_err(db_err)?)?,
        })
    }};
}

/// How the chain failed to verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuditBroken {
    /// A sequence number is missing or repeated.
    #[error("audit entry {found} follows {after}: the chain has a gap")]
    Gap {
        /// The previous entry's.
        after: i64,
        /// This one's.
        found: i64,
    },
    /// An entry does not link to the previous one, or its hash does not match
    /// its fields.
    #[error("audit entry {0} does not match its hash or its predecessor's")]
    Hash(i64),
}

impl Db {
    /// Appends an entry to the chain; returns it.
    pub async fn append_audit(&self, event: &AuditEvent) -> Result<AuditRow, DbError> {
        let head_q = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
        let insert_q = "INSERT INTO audit (seq, time_ns, principal, ip, action, target, detail, prev_hash, hash) \
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        let _serial = self.audit_lock.lock().await;
        let _turn = self.write_turn().await;
        for _ in 0..APPEND_ATTEMPTS {
            let head: Option<(i64, Vec<u8>)> = with_pool!(write self, |p, _o, _t| {
                sqlx::query(head_q)
                    .fetch_optional(p)
                    .await
                    .map_err(db_err)?
                    .map(|r| {
                        Ok::<_, DbError>((
                            r.try_get("seq").map_err(db_err)?,
                            r.try_get("hash").map_err(db_err)?,
                        ))
                    })
                    .transpose()
            })?;
            let (prev_seq, prev_hash) = match head {
                Some((s, h)) => (s, hash32(h)?),
                None => (0, GENESIS),
            };
            let seq = prev_seq + 1;
            let hash = entry_hash(&prev_hash, seq, event);
            let inserted = with_pool!(write self, |p, _o, _t| {
                sqlx::query(insert_q)
                    .bind(seq)
                    .bind(event.time_ns)
                    .bind(&event.principal)
                    .bind(&event.ip)
                    .bind(&event.action)
                    .bind(&event.target)
                    .bind(&event.detail)
                    .bind(&prev_hash[..])
                    .bind(&hash[..])
                    .execute(p)
                    .await
                    .map(|_| ())
                    .map_err(db_err)
            });
            match inserted {
                Ok(_) => return Ok(AuditRow { seq, event: event.clone(), prev_hash, hash }),
                // Another writer took this sequence number: retry on the new head.
                Err(DbError::Duplicate) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(DbError::Storage("the audit chain is too contended".into()))
    }

    /// Entries after `after`, oldest first, at most `limit` (optionally of one action).
    pub async fn audit(
        &self,
        after: i64,
        limit: u32,
        action: Option<&str>,
    ) -> Result<Vec<AuditRow>, DbError> {
        let q = "SELECT * FROM audit WHERE seq > $1 AND ($2 IS NULL OR action = $2) ORDER BY seq LIMIT $3";
        with_pool!(self, |p, _o, _t| {
            let rows = sqlx::query(q)
                .bind(after)
                .bind(action)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
                .map_err(db_err)?;
            rows.iter().map(|r| audit_row!(r)).collect()
        })
    }

    /// Walks the whole chain; returns how many entries it holds, or where it breaks.
    pub async fn verify_audit(&self) -> Result<Result<u64, AuditBroken>, DbError> {
        let q = "SELECT * FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2";
        let (mut last_seq, mut last_hash, mut n) = (0i64, GENESIS, 0u64);
        loop {
            let page: Vec<AuditRow> = with_pool!(self, |p, _o, _t| {
                let rows =
                    sqlx::query(q).bind(last_seq).bind(VERIFY_PAGE).fetch_all(p).await.map_err(db_err)?;
                rows.iter().map(|r| audit_row!(r)).collect::<Result<Vec<_>, DbError>>()
            })?;
            if page.is_empty() {
                return Ok(Ok(n));
            }
            for row in page {
                if row.seq != last_seq + 1 {
                    return Ok(Err(AuditBroken::Gap { after: last_seq, found: row.seq }));
                }
                if row.prev_hash != last_hash || entry_hash(&last_hash, row.seq, &row.event) != row.hash {
                    return Ok(Err(AuditBroken::Hash(row.seq)));
                }
                (last_seq, last_hash) = (row.seq, row.hash);
                n += 1;
            }
        }
    }
}
