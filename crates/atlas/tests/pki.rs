//! `atlas pki` end to end: a CA under a passphrase (OpenSSL reads the key with
//! it, and only with it), `atlas up` issuing its listeners' certificates from
//! that CA, client certificates for services admitted by identity on the
//! internal listener while other identities are refused, PKCS#12 that OpenSSL
//! opens, inspect/list, renewal served without a restart, and the import of a
//! third party's RSA chain — refused when out of order, with a foreign key,
//! not covering the host or expired, served when right.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::path::Path;
use std::process::{Command, Output};

use reqwest::StatusCode;
use server::Server;

fn atlas(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atlas")).args(args).envs(env.iter().copied()).output().unwrap()
}

fn ok(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "failed:\n{text}");
    text
}

fn failed(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "should have failed:\n{text}");
    text
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).output().unwrap()
}

/// A client trusting `ca` and presenting `name`'s certificate from `dir`.
fn client_with(ca: &Path, dir: &Path, name: &str) -> reqwest::blocking::Client {
    let mut pem = std::fs::read(dir.join(format!("{name}.crt"))).unwrap();
    pem.extend(std::fs::read(dir.join(format!("{name}.key"))).unwrap());
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

/// The certificate a listener serves to a new connection.
fn served_fingerprint(ca: &Path, url: &str) -> Vec<u8> {
    use sha2::Digest;
    let client = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .tls_info(true)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let resp = client.get(url).send().unwrap();
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>().expect("TLS info");
    sha2::Sha256::digest(info.peer_certificate().unwrap()).to_vec()
}

fn file_fingerprint(path: &Path) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use sha2::Digest;
    let der = CertificateDer::from_pem_file(path).unwrap();
    sha2::Sha256::digest(&der).to_vec()
}

#[test]
fn the_certificate_authority_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pki = data.join("pki");
    let pki_s = pki.to_str().unwrap();
    let pass_file = dir.path().join("ca-pass");
    std::fs::write(&pass_file, "a long CA passphrase\n").unwrap();
    let pass_env = [("ATLAS_CA_PASSPHRASE_FILE", pass_file.to_str().unwrap())];

    // A CA with an encrypted key.
    ok(&atlas(&["pki", "init-ca", "--dir", pki_s], &pass_env));
    let key_text = std::fs::read_to_string(pki.join("ca.key")).unwrap();
    assert!(key_text.contains("BEGIN ENCRYPTED PRIVATE KEY"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(pki.join("ca.key")).unwrap().permissions().mode() & 0o777, 0o600);
    let key_path = pki.join("ca.key");
    let key_s = key_path.to_str().unwrap();
    let pass_arg = format!("file:{}", pass_file.display());
    ok(&openssl(&["pkey", "-in", key_s, "-passin", &pass_arg, "-noout"]));
    failed(&openssl(&["pkey", "-in", key_s, "-passin", "pass:wrong-passphrase", "-noout"]));
    assert!(failed(&atlas(&["pki", "init-ca", "--dir", pki_s], &pass_env)).contains("never replaced"));
    // Without the passphrase nothing can be issued.
    assert!(failed(&atlas(&["pki", "issue", "x", "--client", "--dir", pki_s], &[])).contains("encrypted"));

    // `atlas up` issues its listeners' and the admin's certificates from it.
    let mut env: Vec<(&str, &str)> = pass_env.to_vec();
    env.extend([("ATLAS_RATE_LIMIT_QUERIES", "0"), ("ATLAS_RATE_LIMIT_ORDERS", "0")]);
    let s = Server::start_with(&data, None, &env);
    let inspect = ok(&atlas(&["pki", "inspect", pki.join("external.crt").to_str().unwrap()], &[]));
    assert!(inspect.contains("issuer:      O=Atlas, CN=Atlas internal CA"), "{inspect}");
    assert!(inspect.contains("URI:spiffe://atlas/external") && inspect.contains("serverAuth"), "{inspect}");
    assert_eq!(
        s.admin_client().get(format!("{}/healthz", s.internal)).send().unwrap().status(),
        StatusCode::OK
    );

    // A service's client certificate is admitted by its identity...
    ok(&atlas(&["pki", "issue", "reporting", "--client", "--dir", pki_s, "--days", "7"], &pass_env));
    let reporting = client_with(&pki.join("ca.crt"), &pki, "reporting");
    assert_eq!(reporting.get(format!("{}/healthz", s.internal)).send().unwrap().status(), StatusCode::OK);
    // ...one of the same CA with another identity is not, nor a server's
    // certificate used as a client's.
    ok(&atlas(
        &["pki", "issue", "rogue", "--client", "--dir", pki_s, "--uri", "spiffe://atlas/listener/internal"],
        &pass_env,
    ));
    let rogue = client_with(&pki.join("ca.crt"), &pki, "rogue");
    assert!(rogue.get(format!("{}/healthz", s.internal)).send().is_err(), "another identity got in");
    let server_as_client = client_with(&pki.join("ca.crt"), &pki, "external");
    assert!(server_as_client.get(format!("{}/healthz", s.internal)).send().is_err());
    assert!(s.log().contains("client certificate identity not admitted"));

    // PKCS#12 that OpenSSL opens with the password.
    let p12_pass = dir.path().join("p12-pass");
    std::fs::write(&p12_pass, "p12-password-123").unwrap();
    let out_dir = dir.path().join("out");
    ok(&atlas(
        &[
            "pki",
            "issue",
            "desk",
            "--client",
            "--dir",
            pki_s,
            "--out",
            out_dir.to_str().unwrap(),
            "--p12-password-file",
            p12_pass.to_str().unwrap(),
        ],
        &pass_env,
    ));
    let opened = ok(&openssl(&[
        "pkcs12",
        "-in",
        out_dir.join("desk.p12").to_str().unwrap(),
        "-passin",
        &format!("file:{}", p12_pass.display()),
        "-nodes",
    ]));
    assert!(
        opened.contains("BEGIN PRIVATE KEY")
            && opened.contains("CN=desk")
            && opened.contains("CN=Atlas internal CA")
    );
    failed(&openssl(&[
        "pkcs12",
        "-in",
        out_dir.join("desk.p12").to_str().unwrap(),
        "-passin",
        "pass:nope",
        "-nodes",
    ]));

    // list shows every certificate and its expiry.
    let list = ok(&atlas(&["pki", "list", "--dir", pki_s], &[]));
    for name in ["ca", "external", "internal", "admin", "reporting", "rogue"] {
        assert!(list.lines().any(|l| l.starts_with(name)), "{name} missing:\n{list}");
    }
    let reporting_line = list.lines().find(|l| l.starts_with("reporting")).unwrap();
    assert!(reporting_line.contains("6 days left") || reporting_line.contains("7 days left"), "{list}");

    // Renewal: a new certificate, same names, served without a restart.
    let health = format!("{}/healthz", s.external);
    let ca = pki.join("ca.crt");
    let before = served_fingerprint(&ca, &health);
    assert_eq!(before, file_fingerprint(&pki.join("external.crt")));
    let renew = ok(&atlas(&["pki", "renew", "--dir", pki_s, "--within-days", "30"], &pass_env));
    // Just issued for 90 days: a whole 90 left if checked within the second
    // it was issued in (validity is kept to whole seconds), else 89.
    let external_not_due = ["external: 89 days left — not due", "external: 90 days left — not due"];
    assert!(
        external_not_due.iter().any(|l| renew.contains(l)) && renew.contains("reporting: renewed"),
        "{renew}"
    );
    ok(&atlas(&["pki", "renew", "external", "--force", "--dir", pki_s], &pass_env));
    let after_file = file_fingerprint(&pki.join("external.crt"));
    assert_ne!(after_file, before);
    let renewed = ok(&atlas(&["pki", "inspect", pki.join("external.crt").to_str().unwrap()], &[]));
    assert!(
        renewed.contains("URI:spiffe://atlas/external") && renewed.contains("DNS:localhost"),
        "{renewed}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if served_fingerprint(&ca, &health) == after_file {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the renewed certificate was never served");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    import_a_third_party_chain(&s, dir.path(), &pki);
}

fn import_a_third_party_chain(s: &Server, tmp: &Path, pki: &Path) {
    let ext = tmp.join("ext");
    std::fs::create_dir_all(&ext).unwrap();
    let p = |n: &str| ext.join(n).to_str().unwrap().to_owned();
    std::fs::write(
        ext.join("ext.cnf"),
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
         [leaf]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:exchange.example.com,DNS:*.exchange.example.com,IP:127.0.0.1\n",
    )
    .unwrap();
    // A commercial-looking chain: root → intermediate → leaf, RSA, the leaf's
    // key in PKCS#1 form.
    ok(&openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p("root.key"),
        "-out",
        &p("root.crt"),
        "-days",
        "30",
        "-subj",
        "/O=Example Trust/CN=Example Root",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]));
    ok(&openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p("int.key"),
        "-out",
        &p("int.csr"),
        "-subj",
        "/O=Example Trust/CN=Example Issuing CA",
    ]));
    ok(&openssl(&[
        "x509",
        "-req",
        "-in",
        &p("int.csr"),
        "-CA",
        &p("root.crt"),
        "-CAkey",
        &p("root.key"),
        "-CAcreateserial",
        "-out",
        &p("int.crt"),
        "-days",
        "20",
        "-extfile",
        &p("ext.cnf"),
        "-extensions",
        "ca",
    ]));
    ok(&openssl(&["genrsa", "-traditional", "-out", &p("leaf.key"), "2048"]));
    ok(&openssl(&[
        "req",
        "-new",
        "-key",
        &p("leaf.key"),
        "-out",
        &p("leaf.csr"),
        "-subj",
        "/CN=exchange.example.com",
    ]));
    ok(&openssl(&[
        "x509",
        "-req",
        "-in",
        &p("leaf.csr"),
        "-CA",
        &p("int.crt"),
        "-CAkey",
        &p("int.key"),
        "-CAcreateserial",
        "-out",
        &p("leaf.crt"),
        "-days",
        "10",
        "-extfile",
        &p("ext.cnf"),
        "-extensions",
        "leaf",
    ]));
    let cat = |parts: &[&str], out: &str| {
        let text: String = parts.iter().map(|f| std::fs::read_to_string(p(f)).unwrap()).collect();
        std::fs::write(p(out), text).unwrap();
    };
    cat(&["leaf.crt", "int.crt"], "chain.pem");
    cat(&["int.crt", "leaf.crt"], "backwards.pem");
    let pki_s = pki.to_str().unwrap();
    let import = |cert: &str, key: &str, extra: &[&str]| {
        let mut args =
            vec!["pki", "import", "--as", "external", "--dir", pki_s, "--cert", cert, "--key", key];
        args.extend_from_slice(extra);
        atlas(&args, &[])
    };
    let (chain, leaf_key, root) = (p("chain.pem"), p("leaf.key"), p("root.crt"));
    let before = std::fs::read(pki.join("external.crt")).unwrap();
    assert!(failed(&import(&p("backwards.pem"), &leaf_key, &[])).contains("out of order"));
    assert!(failed(&import(&chain, &p("int.key"), &[])).contains("does not belong"));
    assert!(
        failed(&import(&chain, &leaf_key, &["--trust", &root, "--dns", "other.example.com"]))
            .contains("does not cover")
    );
    assert!(
        failed(&import(&chain, &leaf_key, &["--trust", pki.join("ca.crt").to_str().unwrap()]))
            .contains("trust anchor")
    );
    // An expired chain (made with rcgen: OpenSSL cannot back-date here).
    let old_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["exchange.example.com".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = params.self_signed(&old_key).unwrap();
    std::fs::write(p("expired.crt"), expired.pem()).unwrap();
    std::fs::write(p("expired.key"), old_key.serialize_pem()).unwrap();
    assert!(failed(&import(&p("expired.crt"), &p("expired.key"), &[])).contains("not valid now"));
    assert_eq!(
        std::fs::read(pki.join("external.crt")).unwrap(),
        before,
        "a refused import changed the files"
    );

    // The right chain goes in and is served for the host name, no restart.
    let done = ok(&import(
        &chain,
        &leaf_key,
        &[
            "--trust",
            &root,
            "--dns",
            "exchange.example.com",
            "--dns",
            "api.exchange.example.com",
            "--ip",
            "127.0.0.1",
        ],
    ));
    assert!(done.contains("imported for the external listener"), "{done}");
    let addr: std::net::SocketAddr = s.external.trim_start_matches("https://").parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let client = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&root).unwrap()).unwrap())
            .resolve("exchange.example.com", addr)
            .build()
            .unwrap();
        if let Ok(r) = client.get(format!("https://exchange.example.com:{}/healthz", addr.port())).send() {
            assert_eq!(r.status(), StatusCode::OK);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the imported certificate was never served");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
