//! A small blocking FIX 4.4 initiator for tests: frames with `atlas_wire::fix`,
//! signs the Logon as Coinbase's FIX gateway wants, and lets a test send any
//! message (also wrong ones) and wait for answers with a deadline.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_wire::fix::{self, Frame, Message};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rustls_pki_types::pem::PemObject;
use sha2::Sha256;

/// An API key's credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub key: String,
    pub secret: String,
    pub passphrase: String,
}

impl Credentials {
    pub fn of(v: &serde_json::Value) -> Credentials {
        Credentials {
            key: v["key"].as_str().unwrap().to_owned(),
            secret: v["secret"].as_str().unwrap().to_owned(),
            passphrase: v["passphrase"].as_str().unwrap().to_owned(),
        }
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// One connection.
pub struct FixClient {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    pub creds: Credentials,
    /// The next MsgSeqNum this client sends.
    pub next_out: u64,
}

pub fn now() -> String {
    now_offset(0)
}

/// The current time shifted by `offset` seconds, as a FIX UTCTimestamp.
pub fn now_offset(offset: i64) -> String {
    time_offset(std::time::SystemTime::now(), offset)
}

/// `at` shifted by `offset` seconds, as a FIX UTCTimestamp.
pub fn time_offset(at: std::time::SystemTime, offset: i64) -> String {
    let ns = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let secs = (ns / 1_000_000_000) as i64 + offset;
    let ms = (ns / 1_000_000 % 1000) as u32;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}:{:02}:{:02}.{ms:03}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Coinbase's logon signature.
pub fn sign(secret_b64: &str, parts: &[&str]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut mac = Hmac::<Sha256>::new_from_slice(&b64.decode(secret_b64).unwrap()).unwrap();
    mac.update(parts.join("\x01").as_bytes());
    b64.encode(mac.finalize().into_bytes())
}

impl FixClient {
    /// Plaintext (loopback) connection.
    pub fn plain(addr: &str, creds: &Credentials) -> FixClient {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        FixClient { stream: Box::new(tcp), buf: Vec::new(), creds: creds.clone(), next_out: 1 }
    }

    /// TLS connection trusting `ca_pem`.
    pub fn tls(addr: &str, ca_pem: &[u8], creds: &Credentials) -> FixClient {
        let stream = tls_stream(addr, ca_pem);
        stream.sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        FixClient { stream: Box::new(stream), buf: Vec::new(), creds: creds.clone(), next_out: 1 }
    }

    /// Sends raw bytes.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// The header fields for a message of `msg_type` with sequence number `seq`.
    pub fn message(&self, msg_type: &str, seq: u64, body: &[(u32, &str)]) -> Vec<u8> {
        let (seq, time) = (seq.to_string(), now());
        let mut fields: Vec<(u32, &[u8])> = vec![
            (35, msg_type.as_bytes()),
            (34, seq.as_bytes()),
            (49, self.creds.key.as_bytes()),
            (52, time.as_bytes()),
            (56, b"ATLAS"),
        ];
        fields.extend(body.iter().map(|(t, v)| (*t, v.as_bytes())));
        fix::encode(&fields)
    }

    /// Sends a message with the next sequence number.
    pub fn send(&mut self, msg_type: &str, body: &[(u32, &str)]) {
        let m = self.message(msg_type, self.next_out, body);
        self.next_out += 1;
        self.raw(&m);
    }

    /// A signed Logon with sequence number `seq` and extra fields.
    pub fn logon_message(&self, seq: u64, extra: &[(u32, &str)]) -> Vec<u8> {
        let (seq_text, time) = (seq.to_string(), now());
        let c = &self.creds;
        let signature = sign(&c.secret, &[&time, "A", &seq_text, &c.key, "ATLAS", &c.passphrase]);
        let mut fields: Vec<(u32, &[u8])> = vec![
            (35, b"A"),
            (34, seq_text.as_bytes()),
            (49, c.key.as_bytes()),
            (52, time.as_bytes()),
            (56, b"ATLAS"),
            (98, b"0"),
            (108, b"30"),
            (553, c.key.as_bytes()),
            (554, c.passphrase.as_bytes()),
            (95, b"44"),
            (96, signature.as_bytes()),
        ];
        fields.extend(extra.iter().map(|(t, v)| (*t, v.as_bytes())));
        fix::encode(&fields)
    }

    /// Logs on with the next sequence number; returns the Logon answer.
    pub fn logon(&mut self, extra: &[(u32, &str)]) -> Message {
        let m = self.logon_message(self.next_out, extra);
        self.next_out += 1;
        self.raw(&m);
        let answer = self.recv();
        assert_eq!(answer.msg_type(), b"A", "logon answer: {}", show(&answer));
        answer
    }

    /// The next message, within 10 s; panics on timeout or close.
    pub fn recv(&mut self) -> Message {
        self.try_recv(Duration::from_secs(10)).expect("a FIX message within 10 s")
    }

    /// The next message within `wait`; None on timeout or when closed.
    pub fn try_recv(&mut self, wait: Duration) -> Option<Message> {
        let deadline = Instant::now() + wait;
        loop {
            match fix::frame(&self.buf) {
                Frame::Message(n, m) => {
                    self.buf.drain(..n);
                    return Some(m);
                }
                Frame::Garbled(n, why) => panic!("the server sent a garbled message ({why}): {n} bytes"),
                Frame::Incomplete => {}
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }

    /// Messages until one of `msg_type` (skipping heartbeats); returns it and
    /// what came before it.
    pub fn recv_type(&mut self, msg_type: &str) -> (Message, Vec<Message>) {
        let mut before = Vec::new();
        loop {
            let m = self.recv();
            if m.msg_type() == msg_type.as_bytes() {
                return (m, before);
            }
            before.push(m);
        }
    }

    /// True once the server has closed the connection (within 10 s); messages
    /// before the close are returned.
    pub fn closed(&mut self) -> (bool, Vec<Message>) {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.try_recv(Duration::from_millis(200)) {
                Some(m) => seen.push(m),
                None => {
                    // Distinguish a timeout from a close: a read of 0 bytes.
                    let mut probe = [0u8; 1];
                    match self.stream.read(&mut probe) {
                        Ok(0) => return (true, seen),
                        Ok(_) => self.buf.push(probe[0]),
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => return (true, seen),
                    }
                }
            }
        }
        (false, seen)
    }
}

/// A message in readable form (SOH as `|`).
/// A blocking TLS connection to `addr` (no ALPN: HTTP/1.1 where it is
/// HTTP), trusting `ca_pem` and checking the name `localhost`; the handshake
/// happens on the first read or write.
pub fn tls_stream(addr: &str, ca_pem: &[u8]) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

pub fn show(m: &Message) -> String {
    String::from_utf8_lossy(m.bytes()).replace('\x01', "|")
}

/// ACME and two brokers (alice, bob), each with a user (`NAME-password`) and
/// an API key; returns the keys.
pub fn seed(s: &super::Server) -> Vec<Credentials> {
    let adm = super::admin(s);
    let (st, b) = adm.post(
        "/atlas/internal/api/product/equity",
        serde_json::json!({"symbol": "ACME", "tickSize": "0.01"}),
    );
    assert_eq!(st, reqwest::StatusCode::CREATED, "{b}");
    let mut keys = Vec::new();
    for name in ["alice", "bob"] {
        let (st, b) = adm.post(
            "/atlas/internal/api/participant/broker",
            serde_json::json!({"name": format!("Broker {name}")}),
        );
        assert_eq!(st, reqwest::StatusCode::CREATED, "{b}");
        let id = b["id"].as_u64().unwrap();
        let (st, u) = adm.post(
            &format!("/atlas/internal/api/participant/broker/{id}/user"),
            serde_json::json!({"username": name, "password": format!("{name}-password"), "role": "broker"}),
        );
        assert_eq!(st, reqwest::StatusCode::CREATED, "{u}");
        let (st, key) =
            adm.post(&format!("/atlas/internal/api/participant/broker/{id}/apikey"), serde_json::json!({}));
        assert_eq!(st, reqwest::StatusCode::CREATED, "{key}");
        super::record_secrets(None, &key);
        keys.push(Credentials::of(&key));
    }
    keys
}
