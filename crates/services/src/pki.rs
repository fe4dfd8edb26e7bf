//! The internal certificate authority `atlas up` creates on first start: a CA,
//! a server certificate per listener, and the bootstrap administrator's client
//! certificate, all in `DIR/pki`. Later starts reuse them. (`atlas pki` for
//! issuing, importing and renewing comes with the security work.)

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};

/// Server certificates are valid this long; the CA ten times longer.
const SERVER_CERT_DAYS: i64 = 90;
const CA_CERT_DAYS: i64 = 3650;

/// Where one certificate and its key live.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (mode 0600).
    pub key: PathBuf,
}

/// The files of a data directory's PKI.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA certificate: the trust anchor clients use.
    pub ca_cert: PathBuf,
    /// The external listener's certificate.
    pub external: CertFiles,
    /// The internal listener's certificate.
    pub internal: CertFiles,
    /// The bootstrap administrator's client certificate.
    pub admin: CertFiles,
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    // Created with its final mode, so a key is never readable by others, even briefly.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Atlas");
    dn.push(DnType::CommonName, "Atlas internal CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(CA_CERT_DAYS);
    Ok(params)
}

fn leaf_params(cn: &str, sans: Vec<SanType>, client: bool) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Atlas");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages =
        vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(SERVER_CERT_DAYS);
    Ok(params)
}

fn server_sans(name: &str, ips: &[IpAddr]) -> anyhow::Result<Vec<SanType>> {
    let mut sans = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::URI(format!("spiffe://atlas/{name}").as_str().try_into()?),
    ];
    for ip in ips {
        sans.push(SanType::IpAddress(*ip));
    }
    Ok(sans)
}

/// Creates the PKI in `dir/pki` unless it exists; returns its files. `external`
/// and `internal` are the listeners' IP addresses (put in their certificates).
pub fn ensure(dir: &Path, external: IpAddr, internal: IpAddr) -> anyhow::Result<Pki> {
    let pki_dir = dir.join("pki");
    let files = |name: &str| CertFiles {
        cert: pki_dir.join(format!("{name}.crt")),
        key: pki_dir.join(format!("{name}.key")),
    };
    let pki = Pki {
        ca_cert: pki_dir.join("ca.crt"),
        external: files("external"),
        internal: files("internal"),
        admin: files("admin"),
    };
    if pki.ca_cert.exists() {
        // A CA made by `atlas pki init-ca` (or certificates removed to be
        // re-made): issue what is missing with it.
        let leaves = [
            (&pki.external, "external", false, vec![external, [127, 0, 0, 1].into()]),
            (&pki.internal, "internal", false, vec![internal, [127, 0, 0, 1].into()]),
            (&pki.admin, "admin", true, vec![]),
        ];
        let missing: Vec<_> =
            leaves.into_iter().filter(|(f, ..)| !f.cert.exists() || !f.key.exists()).collect();
        if !missing.is_empty() {
            let ca = crate::ca::load_ca(&pki_dir, crate::ca::passphrase_from_env()?.as_ref())?;
            for (_, name, client, ips) in missing {
                let uri = if client {
                    format!("spiffe://atlas/user/{name}")
                } else {
                    format!("spiffe://atlas/{name}")
                };
                let req = crate::ca::Request {
                    name: name.to_owned(),
                    client,
                    dns: if client { vec![] } else { vec!["localhost".to_owned()] },
                    ips: {
                        let mut ips: Vec<IpAddr> =
                            ips.into_iter().filter(|ip| !ip.is_unspecified()).collect();
                        ips.dedup();
                        ips
                    },
                    uris: vec![uri],
                    days: SERVER_CERT_DAYS,
                    key_type: crate::ca::KeyType::EcdsaP256,
                };
                let issued = crate::ca::issue(&ca, &req)?;
                crate::ca::write_pair(&pki_dir, name, &issued.cert_pem, &issued.key.serialize_pem())?;
            }
        }
        return Ok(pki);
    }
    fs::create_dir_all(&pki_dir).with_context(|| format!("creating {}", pki_dir.display()))?;
    // A start that died half-way left some files but no CA certificate: start over.
    for f in [&pki.external, &pki.internal, &pki.admin] {
        let _ = fs::remove_file(&f.cert);
        let _ = fs::remove_file(&f.key);
    }
    let _ = fs::remove_file(pki_dir.join("ca.key"));
    let loopback: IpAddr = [127, 0, 0, 1].into();
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params()?.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params()?, &ca_key);
    let leaves = [
        (&pki.external, "external", server_sans("external", &[external, loopback])?, false),
        (&pki.internal, "internal", server_sans("internal", &[internal, loopback])?, false),
        (&pki.admin, "admin", vec![SanType::URI("spiffe://atlas/user/admin".try_into()?)], true),
    ];
    for (files, cn, sans, client) in leaves {
        let key = KeyPair::generate()?;
        let cert = leaf_params(cn, sans, client)?.signed_by(&key, &issuer)?;
        write_file(&files.key, key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&files.cert, cert.pem().as_bytes(), 0o644)?;
    }
    write_file(&pki_dir.join("ca.key"), ca_key.serialize_pem().as_bytes(), 0o600)?;
    // The CA certificate last: its presence means the set is complete.
    write_file(&pki.ca_cert, ca_cert.pem().as_bytes(), 0o644)?;
    Ok(pki)
}
