//! The certificate authority behind `atlas pki`: create a CA (its key optionally
//! under a passphrase), issue server and client certificates with DNS, IP and
//! SPIFFE-style URI names, renew them, import a third party's chain after
//! checking it, inspect certificates, and package a client's pair as PKCS#12.
//!
//! Identities are URI SANs: listeners `spiffe://atlas/<listener>`, services
//! `spiffe://atlas/service/<name>`, people `spiffe://atlas/user/<name>`. The
//! internal listener admits clients by these (see `tls::internal`).

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SignatureAlgorithm,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The passphrase of the CA key, from `ATLAS_CA_PASSPHRASE_FILE` (a secret
/// mount) or `ATLAS_CA_PASSPHRASE`.
pub fn passphrase_from_env() -> anyhow::Result<Option<Secret>> {
    if let Ok(path) = std::env::var("ATLAS_CA_PASSPHRASE_FILE") {
        return Secret::from_file(Path::new(&path)).map(Some);
    }
    Ok(std::env::var("ATLAS_CA_PASSPHRASE").ok().map(Secret::new))
}

/// A secret string: not printed by `Debug`, wiped when dropped.
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    /// Reads a secret file (a trailing newline is not part of it).
    pub fn from_file(path: &Path) -> anyhow::Result<Secret> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading the secret file {}", path.display()))?;
        Ok(Secret(text.trim_end_matches(['\n', '\r']).to_owned()))
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Key algorithms for new keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (the default).
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl std::str::FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> Result<KeyType, String> {
        match s {
            "ecdsa-p256" => Ok(KeyType::EcdsaP256),
            "ecdsa-p384" => Ok(KeyType::EcdsaP384),
            "ed25519" => Ok(KeyType::Ed25519),
            _ => Err(format!("key type must be ecdsa-p256, ecdsa-p384 or ed25519, not {s:?}")),
        }
    }
}

impl KeyType {
    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
    /// A new key.
    pub fn generate(self) -> anyhow::Result<KeyPair> {
        Ok(KeyPair::generate_for(self.algorithm())?)
    }
}

/// Writes a file atomically (a temporary file in the same directory, synced,
/// then renamed over the target), created with `mode`: a reader (a listener
/// reloading its certificate) sees the old file or the new one, never half.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

const PEM_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";
/// PBKDF2 rounds for an encrypted CA key (OWASP's figure for HMAC-SHA256).
const PBKDF2_ROUNDS: u32 = 600_000;

/// A private key as PEM: PKCS#8, encrypted (PBES2: PBKDF2-SHA256 and AES-256-CBC,
/// which OpenSSL reads) when a passphrase is given.
pub fn key_pem(key: &KeyPair, passphrase: Option<&Secret>) -> anyhow::Result<String> {
    let Some(pass) = passphrase else {
        return Ok(key.serialize_pem());
    };
    ensure!(pass.expose().len() >= 8, "the passphrase must be at least 8 characters");
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rand::fill(&mut salt);
    rand::fill(&mut iv);
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ROUNDS, &salt, &iv)
        .map_err(|e| anyhow::anyhow!("encryption parameters: {e}"))?;
    let der = key.serialize_der();
    let info =
        pkcs8::PrivateKeyInfo::try_from(der.as_slice()).map_err(|e| anyhow::anyhow!("key encoding: {e}"))?;
    let encrypted = info
        .encrypt_with_params(params, pass.expose().as_bytes())
        .map_err(|e| anyhow::anyhow!("encrypting the key: {e}"))?;
    Ok(encrypted
        .to_pem(PEM_ENCRYPTED, pkcs8::LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("key encoding: {e}"))?
        .to_string())
}

/// Reads a PKCS#8 key, decrypting it if it is encrypted.
pub fn read_key(path: &Path, passphrase: Option<&Secret>) -> anyhow::Result<KeyPair> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.contains(PEM_ENCRYPTED) {
        let pass = passphrase.with_context(|| {
            format!("{} is encrypted: set ATLAS_CA_PASSPHRASE_FILE (or ATLAS_CA_PASSPHRASE)", path.display())
        })?;
        let (_, doc) = pkcs8::SecretDocument::from_pem(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a PEM key: {e}", path.display()))?;
        let enc = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let plain = enc
            .decrypt(pass.expose().as_bytes())
            .map_err(|_| anyhow::anyhow!("{}: wrong passphrase (or a damaged key)", path.display()))?;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec());
        return KeyPair::try_from(&der).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    KeyPair::from_pem(&text).map_err(|_| anyhow::anyhow!("{} is not a PKCS#8 private key", path.display()))
}

/// The CA's certificate parameters (also used to rebuild its issuer identity).
fn ca_params(common_name: &str, days: i64) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Atlas");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(days);
    Ok(params)
}

/// Creates a CA in `dir` (`ca.crt`, `ca.key` mode 0600); refuses to replace one.
pub fn init_ca(
    dir: &Path,
    common_name: &str,
    days: i64,
    key_type: KeyType,
    passphrase: Option<&Secret>,
) -> anyhow::Result<PathBuf> {
    let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    ensure!(
        !cert_path.exists() && !key_path.exists(),
        "{} already holds a CA; it is never replaced",
        dir.display()
    );
    ensure!((1..=36_500).contains(&days), "--days must be 1 to 36500");
    let key = key_type.generate()?;
    let cert = ca_params(common_name, days)?.self_signed(&key)?;
    write_atomic(&key_path, key_pem(&key, passphrase)?.as_bytes(), 0o600)?;
    write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(cert_path)
}

/// A loaded CA that can sign.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM), appended to PKCS#12 chains.
    pub cert_pem: String,
}

/// Loads the CA of `dir` (its key decrypted with the passphrase if needed).
pub fn load_ca(dir: &Path, passphrase: Option<&Secret>) -> anyhow::Result<Ca> {
    let cert_pem = fs::read_to_string(dir.join("ca.crt"))
        .with_context(|| format!("reading {}", dir.join("ca.crt").display()))?;
    let key = read_key(&dir.join("ca.key"), passphrase)?;
    let der =
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).context("ca.crt is not a PEM certificate")?;
    let issuer = Issuer::from_ca_cert_der(&der, key).context("ca.crt cannot be used as an issuer")?;
    Ok(Ca { issuer, cert_pem })
}

/// What to put in a new certificate.
#[derive(Clone, Debug)]
pub struct Request {
    /// The common name.
    pub name: String,
    /// A client certificate (else a server one).
    pub client: bool,
    /// DNS names.
    pub dns: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
    /// URIs (SPIFFE-style identities).
    pub uris: Vec<String>,
    /// Lifetime.
    pub days: i64,
    /// The new key's algorithm.
    pub key_type: KeyType,
}

/// A new certificate and its key, as PEM.
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its key (PKCS#8).
    pub key: KeyPair,
}

/// Issues a certificate signed by `ca`.
pub fn issue(ca: &Ca, req: &Request) -> anyhow::Result<Issued> {
    ensure!((1..=825).contains(&req.days), "--days must be 1 to 825 (browsers refuse longer)");
    ensure!(
        req.client || !req.dns.is_empty() || !req.ips.is_empty(),
        "a server certificate needs at least one --dns name or --ip address"
    );
    ensure!(
        !req.name.is_empty()
            && req.name.len() <= 64
            && req.name.chars().all(|c| c.is_ascii_graphic() || c == ' '),
        "the name must be 1 to 64 printable characters"
    );
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Atlas");
    dn.push(DnType::CommonName, req.name.as_str());
    params.distinguished_name = dn;
    for d in &req.dns {
        params.subject_alt_names.push(SanType::DnsName(
            d.as_str().try_into().map_err(|_| anyhow::anyhow!("{d:?} is not a DNS name"))?,
        ));
    }
    params.subject_alt_names.extend(req.ips.iter().copied().map(SanType::IpAddress));
    for u in &req.uris {
        ensure!(u.contains("://"), "{u:?} is not a URI (spiffe://atlas/service/NAME)");
        params
            .subject_alt_names
            .push(SanType::URI(u.as_str().try_into().map_err(|_| anyhow::anyhow!("{u:?} is not a URI"))?));
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if req.client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(req.days);
    let key = req.key_type.generate()?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok(Issued { cert_pem: cert.pem(), key })
}

/// Writes `NAME.crt` and `NAME.key` (0600) into `dir`, each replaced atomically;
/// the key first, so a listener never pairs the new certificate with the old key
/// (it refuses mismatched pairs and keeps serving the old one meanwhile).
pub fn write_pair(
    dir: &Path,
    name: &str,
    cert_pem: &str,
    key_pem: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    ensure!(
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !name.starts_with('.'),
        "{name:?}: file names are letters, digits, '-', '_' and '.'"
    );
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    write_atomic(&key, key_pem.as_bytes(), 0o600)?;
    write_atomic(&cert, cert_pem.as_bytes(), 0o644)?;
    Ok((cert, key))
}

/// A PKCS#12 bundle (key, certificate and the CA) under a password, for
/// clients that want one file (browsers, Java, curl with `--cert-type P12`).
pub fn pkcs12(issued: &Issued, ca_pem: &str, alias: &str, password: &Secret) -> anyhow::Result<Vec<u8>> {
    ensure!(password.expose().len() >= 8, "the PKCS#12 password must be at least 8 characters");
    let leaf = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes())?;
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())?;
    let chain = vec![
        p12_keystore::Certificate::from_der(&leaf).map_err(|e| anyhow::anyhow!("{e}"))?,
        p12_keystore::Certificate::from_der(&ca).map_err(|e| anyhow::anyhow!("{e}"))?,
    ];
    let mut local_id = [0u8; 20];
    rand::fill(&mut local_id);
    let chain = p12_keystore::PrivateKeyChain::new(issued.key.serialize_der(), local_id, chain);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(alias, p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    store.writer(password.expose()).write().map_err(|e| anyhow::anyhow!("writing PKCS#12: {e}"))
}

/// What `inspect` shows of one certificate.
#[derive(Clone, Debug)]
pub struct CertInfo {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number (hex).
    pub serial: String,
    /// Validity start, RFC 3339.
    pub not_before: String,
    /// Validity end, RFC 3339.
    pub not_after: String,
    /// Seconds from now to the end (negative: expired).
    pub seconds_left: i64,
    /// DNS, IP and URI names.
    pub sans: Vec<String>,
    /// A CA certificate.
    pub is_ca: bool,
    /// `serverAuth`, `clientAuth`.
    pub usages: Vec<&'static str>,
    /// SHA-256 of the DER.
    pub fingerprint: String,
    /// The DER.
    pub der: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rfc3339(t: x509_parser::time::ASN1Time) -> String {
    t.to_datetime().format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Reads every certificate of a PEM text.
pub fn parse_pem(pem: &[u8]) -> anyhow::Result<Vec<CertInfo>> {
    let ders: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().context("not PEM certificates")?;
    ensure!(!ders.is_empty(), "no certificate in the file");
    ders.iter().map(|d| info(d)).collect()
}

fn info(der: &[u8]) -> anyhow::Result<CertInfo> {
    use sha2::Digest;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(format!("DNS:{d}")),
                GeneralName::URI(u) => sans.push(format!("URI:{u}")),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => sans.push(format!("IP:{}", std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))),
                    16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(ip);
                        sans.push(format!("IP:{}", std::net::Ipv6Addr::from(b)));
                    }
                    _ => {}
                },
                other => sans.push(format!("{other:?}")),
            }
        }
    }
    let mut usages = Vec::new();
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        if eku.value.server_auth {
            usages.push("serverAuth");
        }
        if eku.value.client_auth {
            usages.push("clientAuth");
        }
    }
    let end = cert.validity().not_after.timestamp();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex(cert.raw_serial()),
        not_before: rfc3339(cert.validity().not_before),
        not_after: rfc3339(cert.validity().not_after),
        seconds_left: end - now,
        sans,
        is_ca: cert.is_ca(),
        usages,
        fingerprint: hex(&sha2::Sha256::digest(der)),
        der: der.to_vec(),
    })
}

/// Does a certificate name (`*.example.com` covers one label) cover `host`?
fn dns_covers(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match p.strip_prefix("*.") {
        Some(rest) => h.split_once('.').is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => p == h,
    }
}

/// What an import must cover.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// Host names clients will use.
    pub dns: Vec<String>,
    /// Addresses clients will use.
    pub ips: Vec<IpAddr>,
}

/// Checks a third party's chain and key before they are put in place: the
/// chain is in order (each certificate issued, and signed, by the next), ends
/// at `trust` if given, every certificate is within its validity, the key is
/// the leaf's, the leaf is for servers, and its names cover `coverage`.
/// Answers notes worth printing (e.g. an expiry within 30 days).
pub fn validate_import(
    chain_pem: &[u8],
    key_pem: &[u8],
    trust_pem: Option<&[u8]>,
    coverage: &Coverage,
) -> anyhow::Result<Vec<String>> {
    let chain = parse_pem(chain_pem).context("the certificate file")?;
    let mut notes = Vec::new();
    let parsed: Vec<X509Certificate<'_>> = chain
        .iter()
        .map(|c| X509Certificate::from_der(&c.der).map(|(_, x)| x))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, pair) in parsed.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        ensure!(
            child.issuer() == parent.subject(),
            "the chain is out of order: certificate {} ({}) is issued by {}, but the next one is {}",
            i + 1,
            child.subject(),
            child.issuer(),
            parent.subject()
        );
        child.verify_signature(Some(parent.public_key())).map_err(|_| {
            anyhow::anyhow!("certificate {} ({}) is not signed by the next one", i + 1, child.subject())
        })?;
        ensure!(
            parent.is_ca(),
            "certificate {} ({}) is not a CA but issues the one before it",
            i + 2,
            parent.subject()
        );
    }
    let last = parsed.last().context("empty chain")?;
    match trust_pem {
        Some(trust) => {
            let roots = parse_pem(trust).context("the trust file")?;
            let ok = roots.iter().any(|r| {
                r.der == chain[chain.len() - 1].der
                    || X509Certificate::from_der(&r.der).is_ok_and(|(_, root)| {
                        last.issuer() == root.subject()
                            && last.verify_signature(Some(root.public_key())).is_ok()
                    })
            });
            ensure!(ok, "the chain does not end at the given trust anchor (it ends at {})", last.issuer());
        }
        None if last.subject() == last.issuer() => {
            last.verify_signature(None)
                .map_err(|_| anyhow::anyhow!("the self-signed root's signature is wrong"))?;
        }
        None => notes.push(format!(
            "the chain ends at {}, which is not in the file: clients must trust it already",
            last.issuer()
        )),
    }
    let now = x509_parser::time::ASN1Time::now();
    for (i, c) in parsed.iter().enumerate() {
        ensure!(
            c.validity().not_before <= now && now <= c.validity().not_after,
            "certificate {} ({}) is not valid now (valid {} to {})",
            i + 1,
            c.subject(),
            rfc3339(c.validity().not_before),
            rfc3339(c.validity().not_after)
        );
    }
    let leaf = &chain[0];
    if leaf.seconds_left < 30 * 86_400 {
        notes.push(format!(
            "the certificate expires in {} days ({})",
            leaf.seconds_left / 86_400,
            leaf.not_after
        ));
    }
    ensure!(!leaf.is_ca, "the first certificate is a CA, not the server's own");
    ensure!(
        leaf.usages.is_empty() || leaf.usages.contains(&"serverAuth"),
        "the certificate is not for servers (its extended key usage lacks serverAuth)"
    );
    // The key: whatever rustls would load (PKCS#8, PKCS#1, SEC1), and it must
    // be the leaf's.
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("the key file holds no private key")?;
    let provider = rustls::crypto::ring::default_provider();
    let key = provider.key_provider.load_private_key(key).context("the key is of a kind TLS cannot use")?;
    let ders: Vec<CertificateDer<'static>> =
        chain.iter().map(|c| CertificateDer::from(c.der.clone())).collect();
    rustls::sign::CertifiedKey::new(ders, key)
        .keys_match()
        .map_err(|_| anyhow::anyhow!("the key does not belong to the certificate"))?;
    for d in &coverage.dns {
        ensure!(
            leaf.sans.iter().any(|s| s.strip_prefix("DNS:").is_some_and(|p| dns_covers(p, d))),
            "the certificate does not cover {d} (it names {})",
            leaf.sans.join(", ")
        );
    }
    for ip in &coverage.ips {
        ensure!(
            leaf.sans
                .iter()
                .any(|s| s.strip_prefix("IP:").and_then(|a| a.parse::<IpAddr>().ok()) == Some(*ip)),
            "the certificate does not cover {ip} (it names {})",
            leaf.sans.join(", ")
        );
    }
    Ok(notes)
}

/// Re-issues `dir/NAME.crt` with a new key: same subject names, identities and
/// usage, a new validity of `days`. Only certificates of this CA can be renewed.
pub fn renew(ca: &Ca, dir: &Path, name: &str, days: i64) -> anyhow::Result<Issued> {
    let path = dir.join(format!("{name}.crt"));
    let pem = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let old = parse_pem(&pem)?.into_iter().next().context("no certificate")?;
    let ca_info = parse_pem(ca.cert_pem.as_bytes())?.into_iter().next().context("no CA certificate")?;
    if old.issuer != ca_info.subject {
        bail!("{} was issued by {}, not by this CA: renew it where it came from", path.display(), old.issuer);
    }
    let (_, x) = X509Certificate::from_der(&old.der).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cn = x.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or(name).to_owned();
    let mut req = Request {
        name: cn,
        client: old.usages.contains(&"clientAuth") && !old.usages.contains(&"serverAuth"),
        dns: vec![],
        ips: vec![],
        uris: vec![],
        days,
        key_type: KeyType::EcdsaP256,
    };
    for s in &old.sans {
        if let Some(d) = s.strip_prefix("DNS:") {
            req.dns.push(d.to_owned());
        } else if let Some(ip) = s.strip_prefix("IP:") {
            req.ips.push(ip.parse()?);
        } else if let Some(u) = s.strip_prefix("URI:") {
            req.uris.push(u.to_owned());
        }
    }
    issue(ca, &req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(dns_covers("*.example.com", "api.example.com"));
        assert!(!dns_covers("*.example.com", "a.b.example.com"));
        assert!(!dns_covers("*.example.com", "example.com"));
        assert!(dns_covers("API.example.com", "api.EXAMPLE.com"));
    }

    #[test]
    fn encrypted_keys_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyType::EcdsaP256.generate().unwrap();
        let pass = Secret::new("correct horse".into());
        let pem = key_pem(&key, Some(&pass)).unwrap();
        assert!(pem.contains(PEM_ENCRYPTED) && !pem.contains("BEGIN PRIVATE KEY"));
        let path = dir.path().join("k.pem");
        fs::write(&path, pem).unwrap();
        let back = read_key(&path, Some(&pass)).unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
        assert!(read_key(&path, Some(&Secret::new("wrong horse".into()))).is_err());
        assert!(read_key(&path, None).is_err());
        assert_eq!(format!("{pass:?}"), "Secret(***)");
    }
}
