//! Attacks on the running binary (the start of issue 5's security suite): every
//! internal operation is unreachable on the external listener, whatever the
//! credential; plaintext and TLS 1.0/1.1 are refused on both listeners while 1.2
//! and 1.3 work; the internal listener refuses clients without a certificate
//! from the exchange's CA; and tokens that are expired or signed with another
//! key get 401.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Api, Server, admin, broker};

fn setup(s: &Server) {
    let adm = admin(s);
    adm.post("/atlas/internal/api/product/equity", json!({"symbol": "ACME"}));
    adm.post("/atlas/internal/api/participant/broker", json!({"name": "Broker alice"}));
    adm.post(
        "/atlas/internal/api/participant/broker/1/user",
        json!({"username": "alice", "password": "alice-password", "role": "broker"}),
    );
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("https://").to_owned()
}

/// `openssl s_client` against `addr` with extra arguments; true if the
/// handshake completed.
fn handshake(addr: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-servername", "localhost"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // A completed handshake prints "New, TLSv1.x, Cipher is …"; a failed one
    // "New, (NONE), Cipher is (NONE)".
    let done = text.contains("New, TLSv1") && !text.contains("Cipher is (NONE)");
    (done, text)
}

#[test]
fn the_edge_refuses_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    setup(&s);
    let adm = admin(&s);
    let alice = broker(&s, "alice");

    // Every internal operation, with ids filled in, answers 404 on the external
    // listener: anonymous, as a broker, and with an operator's internal token.
    let internal = server::internal_spec(&s);
    let mut tried = 0;
    for (path, item) in internal["paths"].as_object().unwrap() {
        if !path.starts_with("/atlas/internal") {
            continue;
        }
        let concrete: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let m: reqwest::Method = method.to_uppercase().parse().unwrap();
            for who in [None, alice.token.clone(), adm.token.clone()] {
                let api = Api { client: s.client(), base: s.external.clone(), token: who };
                let mut r = api.req(m.clone(), &concrete);
                if matches!(m, reqwest::Method::POST | reqwest::Method::PUT) {
                    r = r.json(&json!({}));
                }
                let (st, body) = api.send(r);
                assert_eq!(st, StatusCode::NOT_FOUND, "{method} {concrete} on the external listener: {body}");
                tried += 1;
            }
        }
    }
    assert!(tried >= 3 * 25, "only {tried} internal operations tried");

    for addr in [host_port(&s.external), host_port(&s.internal)] {
        // Plaintext HTTP gets no HTTP answer.
        let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let _ = tcp.read_to_end(&mut buf);
        assert!(!buf.starts_with(b"HTTP/"), "{addr} answered plaintext HTTP");
    }

    // TLS versions, with the admin's certificate where the listener needs one.
    let pki = dir.path().join("pki");
    let (cert, key) =
        (pki.join("admin.crt").display().to_string(), pki.join("admin.key").display().to_string());
    let legacy = ["-cipher", "DEFAULT:@SECLEVEL=0"];
    for (addr, client) in [
        (host_port(&s.external), vec![]),
        (host_port(&s.internal), vec!["-cert", cert.as_str(), "-key", key.as_str()]),
    ] {
        for (version, ok) in [("-tls1_3", true), ("-tls1_2", true), ("-tls1_1", false), ("-tls1", false)] {
            let mut args = client.clone();
            args.push(version);
            if !ok {
                args.extend(legacy);
            }
            let (done, text) = handshake(&addr, &args);
            assert_eq!(done, ok, "{addr} {version}:\n{text}");
            if !ok {
                // Refused by the server (it sent an alert), not by the client's
                // own policy before anything was sent.
                assert!(text.contains("SSL alert number"), "{version}: {text}");
            }
        }
    }

    // The internal listener: no client certificate, or one from another CA, is refused.
    let internal_addr = host_port(&s.internal);
    assert!(
        !handshake(&internal_addr, &["-tls1_3"]).0
            || s.client().get(format!("{}/healthz", s.internal)).send().is_err()
    );
    let no_cert = s.client().get(format!("{}/healthz", s.internal)).send();
    assert!(no_cert.is_err(), "a client without a certificate reached the internal listener");
    let evil = tempfile::tempdir().unwrap();
    let (evil_cert, evil_key) = (evil.path().join("c.pem"), evil.path().join("k.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=admin"])
        .arg("-keyout")
        .arg(&evil_key)
        .arg("-out")
        .arg(&evil_cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let mut pem = std::fs::read(&evil_cert).unwrap();
    pem.extend(std::fs::read(&evil_key).unwrap());
    let impostor = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(s.ca())
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    assert!(
        impostor.get(format!("{}/healthz", s.internal)).send().is_err(),
        "a certificate from another CA reached the internal listener"
    );

    // Tokens (ES256): our key re-signing works; another key under our key id,
    // HS256 keyed with our public key (algorithm confusion) and expired tokens
    // get 401.
    use base64::Engine as _;
    use hmac::Mac;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = alice.token.clone().unwrap();
    let header: Value =
        serde_json::from_slice(&b64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].as_str().unwrap().to_owned();
    let mut claims: Value =
        serde_json::from_slice(&b64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let key_file = std::fs::read_dir(dir.path().join("secrets/jwt")).unwrap().next().unwrap().unwrap().path();
    let real = rcgen::KeyPair::from_pem(&std::fs::read_to_string(key_file).unwrap()).unwrap();
    let real = EncodingKey::from_ec_der(&real.serialize_der());
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = EncodingKey::from_ec_der(&other.serialize_der());
    let sign = |key: &EncodingKey, claims: &Value| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.clone());
        jsonwebtoken::encode(&h, claims, key).unwrap()
    };
    let as_token = |t: String| Api { client: s.client(), base: s.external.clone(), token: Some(t) };
    // The real key re-signing the real claims works (the forging is right)...
    assert_eq!(as_token(sign(&real, &claims)).get("/atlas/api/order").0, StatusCode::OK);
    // ...another key does not...
    assert_eq!(as_token(sign(&other, &claims)).get("/atlas/api/order").0, StatusCode::UNAUTHORIZED);
    // ...nor HS256 keyed with the published public key...
    let (_, jwks) = adm.get("/atlas/internal/api/auth/jwks");
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).unwrap().clone();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    for secret in [jwk.to_string(), format!("{}{}", jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())] {
        let head = format!(
            "{}.{}",
            b64.encode(json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string()),
            b64.encode(claims.to_string())
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(head.as_bytes());
        let forged = format!("{head}.{}", b64.encode(mac.finalize().into_bytes()));
        assert_eq!(as_token(forged).get("/atlas/api/order").0, StatusCode::UNAUTHORIZED);
    }
    // ...nor an expired token, even with the real key.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    claims["iat"] = json!(now - 7_200);
    claims["exp"] = json!(now - 3_600);
    assert_eq!(as_token(sign(&real, &claims)).get("/atlas/api/order").0, StatusCode::UNAUTHORIZED);
}

/// Signing keys rotate without a restart: a new key file signs new tokens from
/// the next second while tokens of the old key still work; removing the old
/// file ends them. The JWKS lists what verifies.
#[test]
fn token_signing_keys_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    setup(&s);
    let adm = admin(&s);
    let alice = broker(&s, "alice");
    let kid_of = |t: &str| -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let h: Value = serde_json::from_slice(&b64.decode(t.split('.').next().unwrap()).unwrap()).unwrap();
        h["kid"].as_str().unwrap().to_owned()
    };
    let old_kid = kid_of(alice.token.as_deref().unwrap());
    let keys = dir.path().join("secrets/jwt");
    let old_file = std::fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path();
    // A new key, named to sort last (as `atlas pki jwt-key` names them).
    let new = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(keys.join("jwt-999999999999-000000000.pem"), new.serialize_pem()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let fresh = loop {
        let b = broker(&s, "alice");
        if kid_of(b.token.as_deref().unwrap()) != old_kid {
            break b;
        }
        assert!(std::time::Instant::now() < deadline, "the new key never signed");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let (_, jwks) = adm.get("/atlas/internal/api/auth/jwks");
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(alice.get("/atlas/api/order").0, StatusCode::OK, "a token of the old key still works");
    assert_eq!(fresh.get("/atlas/api/order").0, StatusCode::OK);
    // The old key retired: its tokens stop working.
    std::fs::remove_file(old_file).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alice.get("/atlas/api/order").0 == StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "a retired key's token kept working");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(alice.get("/atlas/api/order").0, StatusCode::UNAUTHORIZED);
    assert_eq!(fresh.get("/atlas/api/order").0, StatusCode::OK);
    // The admin's own token was signed with the retired key: a new login works.
    let adm = admin(&s);
    let (_, jwks) = adm.get("/atlas/internal/api/auth/jwks");
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    // A broken key file does not take the service down: the keys it had stay.
    std::fs::write(keys.join("jwt-999999999999-999999999.pem"), "not a key").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(fresh.get("/atlas/api/order").0, StatusCode::OK);
    assert_eq!(broker(&s, "alice").get("/atlas/api/order").0, StatusCode::OK);
    assert!(s.log().contains("token signing keys not reloaded"));
}
