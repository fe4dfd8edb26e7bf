//! PostgreSQL credentials that can change while Atlas runs: the URL (and a
//! password kept apart from it, as a secret mount provides it) parsed once into
//! connection options that every pool follows. Rotating them changes how new
//! connections log in; open connections stay as they are until they are
//! recycled or dropped, so nothing in flight fails.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

/// The shared, rotatable connection options.
#[derive(Clone)]
pub struct PgCredentials(Arc<Mutex<Inner>>);

struct Inner {
    options: PgConnectOptions,
    pools: Vec<PgPool>,
}

impl std::fmt::Debug for PgCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL or the password.
        f.write_str("PgCredentials(***)")
    }
}

fn parse(url: &str, password: Option<&str>) -> Result<PgConnectOptions, String> {
    // Parse errors would echo the URL (and its password): say only what is wrong.
    let options =
        PgConnectOptions::from_str(url.trim()).map_err(|_| "malformed PostgreSQL URL".to_owned())?;
    Ok(match password {
        Some(p) => options.password(p),
        None => options,
    })
}

impl PgCredentials {
    /// From a URL, and a password that replaces the URL's if given.
    pub fn new(url: &str, password: Option<&str>) -> Result<PgCredentials, String> {
        Ok(PgCredentials(Arc::new(Mutex::new(Inner { options: parse(url, password)?, pools: Vec::new() }))))
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current options, for a new pool.
    pub fn options(&self) -> PgConnectOptions {
        self.inner().options.clone()
    }

    /// Makes a long-lived pool follow future rotations.
    pub fn attach(&self, pool: &PgPool) {
        self.inner().pools.push(pool.clone());
    }

    /// New credentials: every attached pool opens its next connections with them.
    pub fn rotate(&self, url: &str, password: Option<&str>) -> Result<(), String> {
        let options = parse(url, password)?;
        let mut inner = self.inner();
        inner.pools.retain(|p| !p.is_closed());
        for p in &inner.pools {
            p.set_connect_options(options.clone());
        }
        inner.options = options;
        Ok(())
    }
}
