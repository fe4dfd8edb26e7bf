//! The OpenAPI descriptions: served by the real binary on both listeners, listing
//! every endpoint of API.md with unique operation ids and resolvable schemas, the
//! same as `atlas openapi` prints; and the docs page renders the whole external
//! API in headless Chromium with every host but the server unreachable (it works
//! offline). That the descriptions match the real answers is checked by
//! `api.rs`, against every request it makes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use server::Server;

/// API.md's endpoints, per listener (method, path template).
const EXTERNAL: &[(&str, &str)] = &[
    ("post", "/atlas/api/auth/token"),
    ("get", "/atlas/api/product/equity"),
    ("get", "/atlas/api/product/equity/{id}"),
    ("get", "/atlas/api/participant/broker/{id}"),
    ("post", "/atlas/api/order"),
    ("get", "/atlas/api/order"),
    ("delete", "/atlas/api/order"),
    ("get", "/atlas/api/order/{id}"),
    ("put", "/atlas/api/order/{id}"),
    ("delete", "/atlas/api/order/{id}"),
    ("get", "/atlas/api/orderBook/{product}"),
    ("get", "/atlas/api/ticker/{product}"),
    ("get", "/atlas/api/candles/{product}"),
    ("get", "/atlas/api/trade"),
    ("get", "/atlas/api/trade/{id}"),
    ("get", "/atlas/api/trade/order/{order}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];

const INTERNAL: &[(&str, &str)] = &[
    ("post", "/atlas/internal/api/auth/token"),
    ("post", "/atlas/internal/api/user"),
    ("post", "/atlas/internal/api/product/equity"),
    ("get", "/atlas/internal/api/product/equity"),
    ("get", "/atlas/internal/api/product/equity/{id}"),
    ("put", "/atlas/internal/api/product/equity/{id}"),
    ("delete", "/atlas/internal/api/product/equity/{id}"),
    ("post", "/atlas/internal/api/product/equity/{id}/halt"),
    ("post", "/atlas/internal/api/product/equity/{id}/resume"),
    ("post", "/atlas/internal/api/participant/broker"),
    ("get", "/atlas/internal/api/participant/broker"),
    ("get", "/atlas/internal/api/participant/broker/{id}"),
    ("put", "/atlas/internal/api/participant/broker/{id}"),
    ("delete", "/atlas/internal/api/participant/broker/{id}"),
    ("post", "/atlas/internal/api/participant/broker/{id}/user"),
    ("post", "/atlas/internal/api/participant/broker/{id}/apikey"),
    ("delete", "/atlas/internal/api/participant/broker/{id}/apikey/{key}"),
    ("get", "/atlas/internal/api/participant/broker/{id}/limits"),
    ("put", "/atlas/internal/api/participant/broker/{id}/limits"),
    ("post", "/atlas/internal/api/participant/broker/{id}/killSwitch"),
    ("post", "/atlas/internal/api/orderBook/endOfDay"),
    ("get", "/atlas/internal/api/orderBook/{product}"),
    ("get", "/atlas/internal/api/order/{id}"),
    ("get", "/atlas/internal/api/trade/{id}"),
    ("delete", "/atlas/internal/api/trade/{id}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// Checks one description's shape; returns its documented paths.
fn check_description(doc: &Value, expected: &[(&str, &str)], listener: &str) -> Vec<String> {
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{listener}: {}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in expected {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{listener}: {method} {path} missing"
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert!(documented >= expected.len(), "{listener}: {documented} operations");
    let mut ids = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let id =
                op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "{listener}: operationId {id} repeats");
            assert!(op["summary"].is_string(), "{listener}: {method} {path} has no summary");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
            // Every path parameter is declared.
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(['{', '}']);
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{listener}: {method} {path} does not declare {name}");
            }
        }
    }
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("non-local ref {r}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "{listener}: dangling {r}");
    }
    paths.keys().cloned().collect()
}

fn chromium() -> String {
    for candidate in ["chromium", "chromium-browser"] {
        if Command::new(candidate).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return candidate.to_owned();
        }
    }
    panic!("headless Chromium is needed for the docs page test: scripts/test installs Debian's chromium");
}

#[test]
fn descriptions_are_served_complete_and_the_docs_page_works_offline() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);

    // Served without a credential on each listener.
    let external = server::external_spec(&s);
    let paths = check_description(&external, EXTERNAL, "external");
    assert!(paths.iter().all(|p| !p.starts_with("/atlas/internal")), "{paths:?}");
    let internal = server::internal_spec(&s);
    let internal_paths = check_description(&internal, INTERNAL, "internal");
    assert!(internal_paths.iter().all(|p| !p.starts_with("/atlas/api")), "{internal_paths:?}");
    // The internal description stays internal.
    let leak = s.client().get(format!("{}/atlas/internal/api/openapi.json", s.external)).send().unwrap();
    assert_eq!(leak.status(), 404);
    let page = s.admin_client().get(format!("{}/atlas/internal/api/docs/", s.internal)).send().unwrap();
    assert_eq!(page.status(), 200);

    // `atlas openapi` prints what is served.
    for (flag, served) in [(None, &external), (Some("--internal"), &internal)] {
        let out = Command::new(env!("CARGO_BIN_EXE_atlas")).arg("openapi").args(flag).output().unwrap();
        assert!(out.status.success());
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(&printed, served, "atlas openapi {flag:?}");
    }

    // The docs page renders every documented path in a browser that can reach
    // nothing but the server: its assets are in the binary, not on a CDN.
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // The test's own CA is not in Chromium's store.
            "--ignore-certificate-errors",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=30000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{}/atlas/api/docs/", s.external))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("Atlas exchange API"), "the page did not render the description:\n{dom}");
    for path in &paths {
        assert!(dom.contains(&format!("data-path=\"{path}\"")), "the page does not show {path}");
    }
}
