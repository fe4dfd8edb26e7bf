//! Certificate rotation without a restart: a new certificate for the external
//! listener, issued by the exchange's CA and swapped into place under live
//! traffic on fresh connections, is served to the next handshakes; not one
//! request fails; a connection opened before keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use server::Server;

/// The certificate the listener serves, as PEM.
fn served(addr: &str) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-servername", "localhost", "-showcerts"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("-----BEGIN CERTIFICATE-----").expect("a certificate");
    let end =
        text[start..].find("-----END CERTIFICATE-----").unwrap() + start + "-----END CERTIFICATE-----".len();
    text[start..end].split_whitespace().collect()
}

fn pem_body(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    text[start..end].split_whitespace().collect()
}

fn openssl(args: &[&str], dir: &std::path::Path) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn certificates_rotate_under_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    let addr = s.external.trim_start_matches("https://").to_owned();
    let pki = dir.path().join("pki");
    assert_eq!(served(&addr), pem_body(&pki.join("external.crt")));

    // A keep-alive connection opened before the rotation.
    let kept = s.client();
    assert!(kept.get(format!("{}/healthz", s.external)).send().unwrap().status().is_success());

    // Live traffic, each request on a fresh connection (a fresh handshake).
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let fresh = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(s.ca())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let url = format!("{}/healthz", s.external);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                match fresh.get(&url).send() {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    // A new key and certificate from the CA, moved into place (key first: until
    // the certificate follows, the pair does not match and the old one stays).
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ca = pki.join("ca.crt").display().to_string();
    let ca_key = pki.join("ca.key").display().to_string();
    openssl(
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=external",
            "-keyout",
            "new.key",
            "-out",
            "new.csr",
        ],
        work.path(),
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "new.csr",
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "new.crt",
        ],
        work.path(),
    );
    for name in ["new.key", "new.crt"] {
        let target = pki.join(if name == "new.key" { "external.key" } else { "external.crt" });
        let staged = pki.join(format!("{name}.staged"));
        std::fs::copy(work.path().join(name), &staged).unwrap();
        std::fs::rename(&staged, &target).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let new = pem_body(&pki.join("external.crt"));
    let mut seen = String::new();
    for _ in 0..50 {
        seen = served(&addr);
        if seen == new {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(seen, new, "the new certificate is served without a restart");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    traffic.join().unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok >= 20, "only {ok} requests went through");
    assert_eq!(failed, 0, "{failed} requests failed during the rotation");
    // The connection from before still works.
    assert!(kept.get(format!("{}/healthz", s.external)).send().unwrap().status().is_success());
}
