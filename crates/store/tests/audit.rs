//! The audit trail's hash chain on both backends: concurrent appends never fork
//! it, and an edited, deleted or inserted row is found by the walk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use atlas_store::{AuditBroken, AuditEvent, Db, SqliteStore};
use common::PgCluster;

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        time_ns: 1_700_000_000_000_000_000 + i as i64,
        principal: format!("user:{}", i % 3),
        ip: i.is_multiple_of(2).then(|| "127.0.0.1".to_owned()),
        action: if i.is_multiple_of(2) { "PRODUCT_HALTED".into() } else { "LOGIN_FAILED".into() },
        target: i.is_multiple_of(3).then(|| format!("product:{i}")),
        detail: format!("{{\"n\":{i}}}"),
    }
}

async fn exec(db_url: &str, statement: &'static str) {
    if db_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(db_url).await.unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
    } else {
        let pool = sqlx::SqlitePool::connect(db_url).await.unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
}

async fn chain(db: &Db, url: &str) {
    assert_eq!(db.verify_audit().await.unwrap(), Ok(0), "an empty trail verifies");
    // Forty writers at once: every append lands, in one unbroken chain.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move { db.append_audit(&event(i)).await.unwrap() }));
    }
    let mut seqs: Vec<i64> = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
    assert_eq!(db.verify_audit().await.unwrap(), Ok(40));
    // Paging and the action filter.
    let page = db.audit(10, 5, None).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![11, 12, 13, 14, 15]);
    let failed = db.audit(0, 100, Some("LOGIN_FAILED")).await.unwrap();
    assert_eq!(failed.len(), 20);
    assert!(failed.iter().all(|r| r.event.action == "LOGIN_FAILED"));
    assert_eq!(
        page[0].prev_hash,
        db.audit(9, 1, None).await.unwrap()[0].hash,
        "each entry links to the one before"
    );

    // An edited detail breaks the chain at that entry.
    exec(url, "UPDATE audit SET detail = '{\"n\":999}' WHERE seq = 17").await;
    assert_eq!(db.verify_audit().await.unwrap(), Err(AuditBroken::Hash(17)));
    // Cutting the tail there leaves a valid (shorter) chain: truncation is what
    // a chain alone cannot show, which is why the latest hash is worth keeping
    // elsewhere (see docs).
    exec(url, "DELETE FROM audit WHERE seq >= 17").await;
    assert_eq!(db.verify_audit().await.unwrap(), Ok(16));
    // A removed entry in the middle is a gap.
    exec(url, "DELETE FROM audit WHERE seq = 5").await;
    assert_eq!(db.verify_audit().await.unwrap(), Err(AuditBroken::Gap { after: 4, found: 6 }));
}

#[test]
fn sqlite_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("atlas.db");
    drop(SqliteStore::open(&path).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = Db::open_sqlite(&path).await.unwrap();
        chain(&db, &format!("sqlite://{}", path.display())).await;
    });
}

#[test]
fn postgres_audit_chain() {
    let cluster = PgCluster::start();
    let url = cluster.database("audit");
    drop(atlas_store::PgStore::connect(&url).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = Db::connect_pg(&url).await.unwrap();
        chain(&db, &url).await;
    });
}
