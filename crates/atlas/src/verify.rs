//! `atlas verify`: replay the journal from genesis and check everything it can.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use atlas_journal::Storage;
use atlas_journal::verify;
use atlas_store::{PgStore, SqliteStore};
use clap::Args;

/// The database file inside a data directory.
pub const DATABASE_FILE: &str = "atlas.db";

/// Options of `atlas verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The data directory whose journal to verify.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// A database URL instead of the data directory (`sqlite://FILE` or
    /// `postgres://USER@HOST:PORT/DB`).
    #[arg(long)]
    database_url: Option<String>,
}

/// Opens the storage named by a database URL (`sqlite://FILE`, `postgres://…`),
/// or the SQLite file in the data directory when there is none.
pub fn open_store(data_dir: &std::path::Path, url: Option<&str>) -> anyhow::Result<Box<dyn Storage>> {
    Ok(match url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Box::new(PgStore::connect(url)?)
        }
        Some(url) if url.starts_with("sqlite://") => {
            let path = PathBuf::from(&url["sqlite://".len()..]);
            if !path.is_file() {
                bail!("no database at {}", path.display());
            }
            Box::new(SqliteStore::open(&path)?)
        }
        // Never echo the URL: it may carry a password.
        Some(_) => bail!("unsupported database URL scheme: use sqlite://FILE or postgres://..."),
        None => {
            let path = data_dir.join(DATABASE_FILE);
            if !path.is_file() {
                bail!("no database at {}", path.display());
            }
            Box::new(SqliteStore::open(&path)?)
        }
    })
}

/// Runs the verification; exit code 1 on any mismatch or damage.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut store = open_store(&args.data_dir, args.database_url.as_deref())?;
    // The engine's limits take part in replay: use the ones the journal recorded.
    let config = store.engine_config()?.unwrap_or_default();
    let journal_ok = match verify(&mut store, config) {
        Ok(r) => {
            println!("journal OK: {} entries, {} snapshots checked", r.entries, r.snapshots_checked);
            println!("state hash {}", r.state_hash);
            println!("chain hash {}", r.chain_hash);
            true
        }
        Err(e) => {
            eprintln!("journal verification FAILED: {e}");
            false
        }
    };
    drop(store);
    let audit_ok = match verify_audit(&args.data_dir, args.database_url.as_deref())? {
        Ok(n) => {
            println!("audit trail OK: {n} entries");
            true
        }
        Err(e) => {
            eprintln!("audit trail verification FAILED: {e}");
            false
        }
    };
    Ok(if journal_ok && audit_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Walks the audit trail's hash chain.
fn verify_audit(
    data_dir: &std::path::Path,
    url: Option<&str>,
) -> anyhow::Result<Result<u64, atlas_store::AuditBroken>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let db = match url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                atlas_store::Db::connect_pg(url).await?
            }
            Some(url) => {
                atlas_store::Db::open_sqlite(std::path::Path::new(&url["sqlite://".len()..])).await?
            }
            None => atlas_store::Db::open_sqlite(&data_dir.join(DATABASE_FILE)).await?,
        };
        Ok(db.verify_audit().await?)
    })
}
