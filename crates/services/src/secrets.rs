//! Secrets from files and the environment, as a Kubernetes secret volume or a
//! Secrets Manager mount provides them: the database URL and password (watched,
//! so rotated credentials take effect without a restart) and the bootstrap
//! administrator's password. Held in `ca::Secret`, never logged.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use atlas_store::PgCredentials;

use crate::ca::Secret;

/// How often the credential files are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Where the database credentials come from.
#[derive(Clone, Debug, Default)]
pub struct DatabaseSecrets {
    /// A URL given directly (flag or `ATLAS_DATABASE_URL`).
    pub url: Option<String>,
    /// A file holding the URL (`ATLAS_DATABASE_URL_FILE`), re-read when it changes.
    pub url_file: Option<PathBuf>,
    /// A file holding only the password (`ATLAS_DATABASE_PASSWORD_FILE`), which
    /// replaces the URL's; re-read when it changes.
    pub password_file: Option<PathBuf>,
}

impl DatabaseSecrets {
    /// True if PostgreSQL is configured at all.
    pub fn is_postgres(&self) -> bool {
        self.url.is_some() || self.url_file.is_some()
    }

    fn read(&self) -> anyhow::Result<(Secret, Option<Secret>)> {
        let url = match (&self.url, &self.url_file) {
            (_, Some(f)) => Secret::from_file(f)?,
            (Some(u), None) => Secret::new(u.clone()),
            (None, None) => anyhow::bail!("no database URL"),
        };
        let password = self.password_file.as_deref().map(Secret::from_file).transpose()?;
        Ok((url, password))
    }

    /// The credentials as they are now.
    pub fn credentials(&self) -> anyhow::Result<PgCredentials> {
        let (url, password) = self.read()?;
        PgCredentials::new(url.expose(), password.as_ref().map(Secret::expose))
            .map_err(|e| anyhow::anyhow!("the database URL: {e}"))
    }

    fn stamp(&self) -> Vec<Option<(SystemTime, u64)>> {
        [&self.url_file, &self.password_file]
            .into_iter()
            .flatten()
            .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
            .collect()
    }

    /// Watches the files (if any) and rotates `credentials` when they change;
    /// a change that does not read or parse keeps the current credentials.
    pub fn watch(self, credentials: PgCredentials) {
        if self.url_file.is_none() && self.password_file.is_none() {
            return;
        }
        tokio::spawn(async move {
            let mut seen = self.stamp();
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                let now = self.stamp();
                if now == seen {
                    continue;
                }
                seen = now;
                let rotated = self.read().and_then(|(url, password)| {
                    credentials
                        .rotate(url.expose(), password.as_ref().map(Secret::expose))
                        .map_err(|e| anyhow::anyhow!(e))
                });
                match rotated {
                    Ok(()) => tracing::info!("database credentials reloaded; new connections use them"),
                    Err(e) => {
                        tracing::error!(error = %e, "database credentials not reloaded; keeping the current ones")
                    }
                }
            }
        });
    }
}

/// The bootstrap administrator's password: `ATLAS_ADMIN_PASSWORD_FILE` or
/// `ATLAS_ADMIN_PASSWORD`, if either is set.
pub fn admin_password() -> anyhow::Result<Option<Secret>> {
    if let Ok(path) = std::env::var("ATLAS_ADMIN_PASSWORD_FILE") {
        return Secret::from_file(Path::new(&path)).map(Some).context("ATLAS_ADMIN_PASSWORD_FILE");
    }
    Ok(std::env::var("ATLAS_ADMIN_PASSWORD").ok().map(Secret::new))
}
