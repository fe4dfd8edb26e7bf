//! `atlas pki`: the exchange's certificate authority from the command line.
//! Creates a CA, issues and renews certificates, imports a third party's chain
//! for a listener (after checking it), inspects and lists certificates, and
//! makes token signing keys. Listeners pick up replaced files within a second.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use atlas_services::ca::{self, Coverage, KeyType, Request, Secret};
use clap::{Args, Subcommand};

/// `atlas pki …`
#[derive(Subcommand, Debug)]
pub enum Pki {
    /// Create a CA: `DIR/ca.crt` and `DIR/ca.key` (mode 0600, encrypted if
    /// ATLAS_CA_PASSPHRASE_FILE or ATLAS_CA_PASSPHRASE is set). Never replaces one.
    InitCa {
        #[command(flatten)]
        dir: Dir,
        /// The CA's common name.
        #[arg(long, default_value = "Atlas internal CA")]
        common_name: String,
        /// Lifetime in days.
        #[arg(long, default_value_t = 3650)]
        days: i64,
        /// ecdsa-p256, ecdsa-p384 or ed25519.
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: KeyType,
    },
    /// Issue a server (default) or client certificate signed by the CA:
    /// `OUT/NAME.crt` and `OUT/NAME.key`, and `OUT/NAME.p12` with --p12.
    Issue(IssueArgs),
    /// Put a third party's certificate chain and key in place of a listener's
    /// (`external` or `internal`), after checking chain order and signatures,
    /// validity, that the key matches, and that the names cover --dns/--ip.
    Import(ImportArgs),
    /// Show the certificates of PEM files: subject, issuer, names, validity.
    Inspect {
        /// PEM files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the certificates of the PKI directory with their expiry.
    List {
        #[command(flatten)]
        dir: Dir,
    },
    /// Re-issue certificates of this CA that expire within --within-days (or
    /// all with --force): same names and identities, a new key.
    Renew {
        #[command(flatten)]
        dir: Dir,
        /// Certificates to renew by name (`external`, `admin`, …); default all.
        names: Vec<String>,
        /// Renew those expiring within this many days.
        #[arg(long, default_value_t = 30)]
        within_days: i64,
        /// Renew even if not expiring soon.
        #[arg(long)]
        force: bool,
        /// New lifetime in days.
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
    /// Add a token signing key (ES256) to a key directory; it signs new tokens
    /// from the next second, older keys keep verifying until removed.
    JwtKey {
        /// The key directory (as `atlas up --jwt-keys-dir`).
        #[arg(long, default_value = "./data/secrets/jwt")]
        dir: PathBuf,
    },
}

/// The PKI directory.
#[derive(Args, Debug)]
pub struct Dir {
    /// The PKI directory (`atlas up` uses DATA_DIR/pki).
    #[arg(long, default_value = "./data/pki")]
    dir: PathBuf,
}

/// `atlas pki issue`.
#[derive(Args, Debug)]
pub struct IssueArgs {
    /// The certificate's name: its common name and file names.
    name: String,
    #[command(flatten)]
    dir: Dir,
    /// A client certificate (for mutual TLS) instead of a server one.
    #[arg(long)]
    client: bool,
    /// DNS names (repeatable).
    #[arg(long)]
    dns: Vec<String>,
    /// IP addresses (repeatable).
    #[arg(long)]
    ip: Vec<IpAddr>,
    /// URI identities (repeatable); default `spiffe://atlas/service/NAME`.
    #[arg(long)]
    uri: Vec<String>,
    /// Lifetime in days (short by default; renew with `atlas pki renew`).
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// ecdsa-p256, ecdsa-p384 or ed25519.
    #[arg(long, default_value = "ecdsa-p256")]
    key_type: KeyType,
    /// Where to write (default: the PKI directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write NAME.p12 (key, certificate and CA), under the password in
    /// this file.
    #[arg(long)]
    p12_password_file: Option<PathBuf>,
}

/// `atlas pki import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The listener it is for: `external` or `internal`.
    #[arg(long = "as", value_parser = ["external", "internal"])]
    listener: String,
    /// The chain: the server's certificate first, then intermediates (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long)]
    key: PathBuf,
    /// The root the chain must end at (PEM), if not included.
    #[arg(long)]
    trust: Option<PathBuf>,
    /// Host names the certificate must cover (repeatable).
    #[arg(long)]
    dns: Vec<String>,
    /// Addresses the certificate must cover (repeatable).
    #[arg(long)]
    ip: Vec<IpAddr>,
    #[command(flatten)]
    dir: Dir,
}

fn days_text(seconds: i64) -> String {
    if seconds < 0 {
        format!("EXPIRED {} days ago", -seconds / 86_400)
    } else {
        format!("{} days left", seconds / 86_400)
    }
}

fn print_cert(c: &ca::CertInfo) {
    println!("  subject:     {}", c.subject);
    println!("  issuer:      {}", c.issuer);
    println!("  serial:      {}", c.serial);
    println!("  valid:       {} to {} ({})", c.not_before, c.not_after, days_text(c.seconds_left));
    println!("  names:       {}", if c.sans.is_empty() { "-".to_owned() } else { c.sans.join(", ") });
    println!(
        "  kind:        {}{}",
        if c.is_ca { "CA" } else { "end entity" },
        if c.usages.is_empty() { String::new() } else { format!(" ({})", c.usages.join(", ")) }
    );
    println!("  sha256:      {}", c.fingerprint);
}

/// Runs a `pki` subcommand.
pub fn run(cmd: Pki) -> anyhow::Result<()> {
    match cmd {
        Pki::InitCa { dir, common_name, days, key_type } => {
            let pass = ca::passphrase_from_env()?;
            let path = ca::init_ca(&dir.dir, &common_name, days, key_type, pass.as_ref())?;
            println!(
                "CA created: {} (key {}{})",
                path.display(),
                dir.dir.join("ca.key").display(),
                if pass.is_some() { ", encrypted" } else { "" }
            );
        }
        Pki::Issue(a) => issue(a)?,
        Pki::Import(a) => import(a)?,
        Pki::Inspect { files } => {
            for f in files {
                let pem = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
                let certs = ca::parse_pem(&pem).with_context(|| f.display().to_string())?;
                for (i, c) in certs.iter().enumerate() {
                    println!("{} [{}]", f.display(), i + 1);
                    print_cert(c);
                }
            }
        }
        Pki::List { dir } => {
            for (name, path) in cert_files(&dir.dir)? {
                let pem = std::fs::read(&path)?;
                match ca::parse_pem(&pem) {
                    Ok(certs) => {
                        let c = &certs[0];
                        println!(
                            "{name:<20} {:<10} {}  {}  {}",
                            if c.is_ca { "CA" } else { c.usages.first().copied().unwrap_or("-") },
                            c.not_after,
                            days_text(c.seconds_left),
                            c.sans.join(",")
                        );
                    }
                    Err(e) => println!("{name:<20} unreadable: {e}"),
                }
            }
        }
        Pki::Renew { dir, names, within_days, force, days } => {
            let authority = ca::load_ca(&dir.dir, ca::passphrase_from_env()?.as_ref())?;
            let all = cert_files(&dir.dir)?;
            let chosen: Vec<(String, PathBuf)> = if names.is_empty() {
                all.into_iter().filter(|(n, _)| n != "ca").collect()
            } else {
                let mut v = Vec::new();
                for n in names {
                    let found = all.iter().find(|(m, _)| *m == n).cloned();
                    v.push(found.with_context(|| format!("no {n}.crt in {}", dir.dir.display()))?);
                }
                v
            };
            for (name, path) in chosen {
                let old = ca::parse_pem(&std::fs::read(&path)?)?.remove(0);
                if !force && old.seconds_left > within_days * 86_400 {
                    println!("{name}: {} — not due", days_text(old.seconds_left));
                    continue;
                }
                match ca::renew(&authority, &dir.dir, &name, days) {
                    Ok(issued) => {
                        ca::write_pair(&dir.dir, &name, &issued.cert_pem, &issued.key.serialize_pem())?;
                        println!("{name}: renewed for {days} days");
                    }
                    Err(e) => println!("{name}: skipped: {e}"),
                }
            }
        }
        Pki::JwtKey { dir } => {
            let path = atlas_services::auth::generate_key_file(&dir)?;
            println!("token signing key added: {}", path.display());
        }
    }
    Ok(())
}

/// The `*.crt` files of a directory, by name.
fn cert_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "crt")
            && let Some(stem) = path.file_stem()
        {
            out.push((stem.to_string_lossy().into_owned(), path));
        }
    }
    out.sort();
    Ok(out)
}

fn issue(a: IssueArgs) -> anyhow::Result<()> {
    let authority = ca::load_ca(&a.dir.dir, ca::passphrase_from_env()?.as_ref())?;
    let uris = if a.uri.is_empty() { vec![format!("spiffe://atlas/service/{}", a.name)] } else { a.uri };
    let req = Request {
        name: a.name.clone(),
        client: a.client,
        dns: a.dns,
        ips: a.ip,
        uris,
        days: a.days,
        key_type: a.key_type,
    };
    let issued = ca::issue(&authority, &req)?;
    let out = a.out.unwrap_or(a.dir.dir);
    let (cert, key) = ca::write_pair(&out, &a.name, &issued.cert_pem, &issued.key.serialize_pem())?;
    println!("issued {} ({} days): {} {}", a.name, a.days, cert.display(), key.display());
    if let Some(pw) = a.p12_password_file {
        let password = Secret::from_file(&pw)?;
        let bytes = ca::pkcs12(&issued, &authority.cert_pem, &a.name, &password)?;
        let path = out.join(format!("{}.p12", a.name));
        ca::write_atomic(&path, &bytes, 0o600)?;
        println!("PKCS#12: {}", path.display());
    }
    Ok(())
}

fn import(a: ImportArgs) -> anyhow::Result<()> {
    let chain = std::fs::read(&a.cert).with_context(|| format!("reading {}", a.cert.display()))?;
    let key = std::fs::read(&a.key).with_context(|| format!("reading {}", a.key.display()))?;
    let trust = match &a.trust {
        Some(t) => Some(std::fs::read(t).with_context(|| format!("reading {}", t.display()))?),
        None => None,
    };
    let notes = ca::validate_import(&chain, &key, trust.as_deref(), &Coverage { dns: a.dns, ips: a.ip })
        .context("the certificate was not imported")?;
    for n in &notes {
        println!("note: {n}");
    }
    let (Ok(chain_text), Ok(key_text)) = (String::from_utf8(chain), String::from_utf8(key)) else {
        bail!("the files are not PEM text");
    };
    let (cert, _) = ca::write_pair(&a.dir.dir, &a.listener, &chain_text, &key_text)?;
    println!(
        "imported for the {} listener: {} (served within a second, no restart)",
        a.listener,
        cert.display()
    );
    Ok(())
}
