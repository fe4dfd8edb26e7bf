//! Test helpers: `atlas up` as a child process on random ports, and HTTPS clients
//! for its two listeners.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fix;
pub mod openapi;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";
/// The server's standard error, in its data directory.
pub const LOG_FILE: &str = "atlas.log";

/// A running `atlas up`.
pub struct Server {
    child: Child,
    pub external: String,
    pub internal: String,
    /// The FIX acceptor (TLS), `host:port`.
    pub fix: String,
    /// The plaintext FIX acceptor on loopback, `host:port`.
    pub fix_plain: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
}

impl Server {
    pub fn start(data_dir: &Path, database_url: Option<&str>) -> Server {
        // Functional tests run far above the default rate limits; the limits
        // have their own test.
        Server::start_with(
            data_dir,
            database_url,
            &[
                ("ATLAS_RATE_LIMIT_ORDERS", "0"),
                ("ATLAS_RATE_LIMIT_QUERIES", "0"),
                ("ATLAS_LOGIN_FAILURES_PER_IP", "0"),
            ],
        )
    }

    /// Starts with extra environment variables.
    pub fn start_with(data_dir: &Path, database_url: Option<&str>, env: &[(&str, &str)]) -> Server {
        // The server's log goes to a file in its data directory, for the tests
        // that read it (and for the reader of a failed test).
        std::fs::create_dir_all(data_dir).unwrap();
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join(LOG_FILE)).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_atlas"));
        cmd.envs(env.iter().copied());
        cmd.args(["up", "--data-dir"])
            .arg(data_dir)
            .args(["--external-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0"])
            .args(["--fix-addr", "127.0.0.1:0", "--fix-plain-addr", "127.0.0.1:0"])
            .env("ATLAS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let mut child = cmd.spawn().expect("start atlas up");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the listening line");
        if line.is_empty() {
            let log = std::fs::read_to_string(data_dir.join(LOG_FILE)).unwrap_or_default();
            panic!("atlas up did not start; its log:\n{log}");
        }
        // "atlas up: external https://A internal https://B fix tls://C fix-plain tcp://D (CA …)"
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.len() >= 10 && words[2] == "external" && words[6] == "fix" && words[8] == "fix-plain",
            "unexpected first line: {line:?}"
        );
        Server {
            child,
            external: words[3].to_owned(),
            internal: words[5].to_owned(),
            fix: words[7].trim_start_matches("tls://").to_owned(),
            fix_plain: words[9].trim_start_matches("tcp://").to_owned(),
            data_dir: data_dir.to_owned(),
            database_url: database_url.map(str::to_owned),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process dies wherever it is, as in a crash.
    pub fn crash(mut self) -> (PathBuf, Option<String>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.data_dir.clone(), self.database_url.clone())
    }

    pub fn stop(mut self) -> (PathBuf, Option<String>) {
        // SIGTERM: a clean shutdown.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "atlas up exited with {status}");
        (self.data_dir.clone(), self.database_url.clone())
    }

    /// Everything the server (and its earlier runs on this data directory) logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join(LOG_FILE)).unwrap_or_default()
    }

    pub fn ca(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(&std::fs::read(self.data_dir.join("pki/ca.crt")).unwrap()).unwrap()
    }

    /// A client that trusts the CA (and presents no certificate).
    pub fn client(&self) -> Client {
        Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(self.ca())
            .build()
            .unwrap()
    }

    /// A client presenting the bootstrap admin's certificate.
    pub fn admin_client(&self) -> Client {
        let mut pem = std::fs::read(self.data_dir.join("pki/admin.crt")).unwrap();
        pem.extend(std::fs::read(self.data_dir.join("pki/admin.key")).unwrap());
        Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(self.ca())
            .identity(reqwest::Identity::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of atlas up ({}) ---\n{}", self.data_dir.display(), self.log());
        }
        // Kept for the suite-wide scan for secrets (scripts/check-logs).
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("atlas-server-logs");
        let _ = std::fs::create_dir_all(&kept);
        let name = format!("{}-{}.log", std::process::id(), self.child.id());
        let _ = std::fs::write(kept.join(name), self.log());
    }
}

/// The external listener's OpenAPI description, fetched without a credential.
pub fn external_spec(s: &Server) -> Value {
    s.client().get(format!("{}/atlas/api/openapi.json", s.external)).send().unwrap().json().unwrap()
}

/// The internal listener's OpenAPI description (with the admin's certificate).
pub fn internal_spec(s: &Server) -> Value {
    s.admin_client()
        .get(format!("{}/atlas/internal/api/openapi.json", s.internal))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Every request an `Api` made in this test binary, with its answer (for the
/// OpenAPI conformance check).
pub static EXCHANGES: Mutex<Vec<openapi::Exchange>> = Mutex::new(Vec::new());

/// One authenticated caller on one listener.
pub struct Api {
    pub client: Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn req(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }
    pub fn send(&self, r: RequestBuilder) -> (StatusCode, Value) {
        let (client, req) = r.build_split();
        let req = req.expect("request");
        let (method, path) = (req.method().to_string(), req.url().path().to_owned());
        let request_body: Option<Value> =
            req.body().and_then(|b| b.as_bytes()).and_then(|b| serde_json::from_slice(b).ok());
        let origin = req.url().origin().ascii_serialization();
        let resp = client.execute(req).expect("request");
        let status = resp.status();
        let problem = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/problem+json"));
        let text = resp.text().unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            assert!(problem, "errors are problem+json: {status} {body}");
            assert_eq!(body["status"], status.as_u16(), "{body}");
            assert!(
                body["code"].is_string() && body["title"].is_string() && body["type"].is_string(),
                "{body}"
            );
        }
        record_secrets(request_body.as_ref(), &body);
        let exchange =
            openapi::Exchange { base: origin, method, path, status: status.as_u16(), body: body.clone() };
        EXCHANGES.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(exchange);
        (status, body)
    }
    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::GET, path))
    }
    pub fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::POST, path).json(&body))
    }
    pub fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::PUT, path).json(&body))
    }
    pub fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::DELETE, path))
    }
}

/// Notes every credential the tests send or receive (passwords, access tokens,
/// API secrets and passphrases) in a file per test process, which
/// scripts/check-logs looks for in every server log of the suite.
pub fn record_secrets(request: Option<&Value>, response: &Value) {
    use std::io::Write;
    let mut found = Vec::new();
    for v in [request, Some(response)].into_iter().flatten() {
        for field in ["password", "secret", "passphrase", "accessToken"] {
            if let Some(s) = v.get(field).and_then(Value::as_str)
                && s.len() >= 8
            {
                found.push(s.to_owned());
            }
        }
    }
    if found.is_empty() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("atlas-test-secrets");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}.txt", std::process::id())))
    {
        for s in found {
            let _ = writeln!(f, "{s}");
        }
    }
}

pub fn code(r: &(StatusCode, Value)) -> (StatusCode, &str) {
    (r.0, r.1["code"].as_str().unwrap_or(""))
}

pub fn login(client: Client, base: &str, path: &str, user: &str, password: &str) -> Api {
    let api = Api { client, base: base.to_owned(), token: None };
    let (status, body) = api.post(path, json!({"username": user, "password": password}));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tokenType"], "Bearer");
    Api { token: Some(body["accessToken"].as_str().unwrap().to_owned()), ..api }
}

pub fn admin(s: &Server) -> Api {
    login(s.admin_client(), &s.internal, "/atlas/internal/api/auth/token", "admin", ADMIN_PASSWORD)
}

pub fn broker(s: &Server, user: &str) -> Api {
    login(s.client(), &s.external, "/atlas/api/auth/token", user, &format!("{user}-password"))
}

/// Checks every exchange recorded so far with `base` against the description
/// that server serves (external and internal). The Coinbase surface and the
/// metrics endpoint are not in it; on an undocumented path (an internal path on
/// the external listener), a 404 `NOT_FOUND` is the router's fallback and a 401
/// the gateway refusing the credential before routing.
pub fn check_against_openapi(s: &Server) -> usize {
    let external = openapi::Spec(external_spec(s));
    let internal = openapi::Spec(internal_spec(s));
    let all = EXCHANGES.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let mut checked = 0;
    let mut failures = Vec::new();
    for x in all.iter().filter(|x| x.base == s.external || x.base == s.internal) {
        if x.path.starts_with("/coinbase") || x.path == "/metrics" {
            continue;
        }
        let spec = if x.base == s.external { &external } else { &internal };
        let fallback = (x.status == 404 && x.body["code"] == "NOT_FOUND") || x.status == 401;
        if spec.operation(&x.method, &x.path).is_none() && fallback {
            continue;
        }
        checked += 1;
        if let Err(e) = spec.check(x) {
            failures.push(e);
        }
    }
    failures.sort();
    failures.dedup();
    assert!(
        failures.is_empty(),
        "answers that the OpenAPI description does not describe:\n{}",
        failures.join("\n")
    );
    checked
}
