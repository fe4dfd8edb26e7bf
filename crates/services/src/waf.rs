//! The web application firewall in front of every route: IP allow and deny
//! lists per listener, and signature rules (SQL injection, cross-site scripting,
//! path traversal, command injection, known scanners) over the path, the query,
//! the headers and the strings of a JSON body — after undoing the encodings
//! attackers hide behind (percent-encoding, repeated; HTML entities; SQL
//! comments as white space; letter case).
//!
//! The signatures follow the ideas of the OWASP Core Rule Set's attack
//! categories, written for what an exchange's API carries: symbols, numbers,
//! identifiers and short names. No legitimate field of the API contains a tag,
//! a quote followed by SQL, or `../`, so the rules can be strict without false
//! positives (the security suite sends a thousand valid orders to prove it).
//!
//! A hit answers `403 REQUEST_BLOCKED` (problem+json, naming the rule), is logged
//! and counted (`atlas_waf_hits_total{rule,action}`); in detect-only mode it is
//! logged and counted but let through, for tuning.

use std::net::IpAddr;

pub use ipnet::IpNet;
use regex::bytes::{RegexSet, RegexSetBuilder};

/// What the rules do on a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WafMode {
    /// Answer 403.
    Block,
    /// Log and count, let the request through.
    Detect,
    /// No signature rules (IP lists still apply).
    Off,
}

impl std::str::FromStr for WafMode {
    type Err = String;
    fn from_str(s: &str) -> Result<WafMode, String> {
        match s {
            "block" => Ok(WafMode::Block),
            "detect" => Ok(WafMode::Detect),
            "off" => Ok(WafMode::Off),
            other => Err(format!("WAF mode must be block, detect or off, not {other:?}")),
        }
    }
}

/// Parses a comma-separated list of networks (`10.0.0.0/8`) or addresses
/// (`192.0.2.7`, taken as a /32 or /128).
pub fn parse_networks(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is neither a network (10.0.0.0/8) nor an address"))
        })
        .collect()
}

/// The internal listener admits these networks unless configured otherwise:
/// loopback and the private ranges a cluster's pods and VPCs use.
pub const INTERNAL_ALLOW_DEFAULT: &str =
    "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

/// One signature.
struct Rule {
    id: &'static str,
    pattern: &'static str,
}

/// The signatures, matched against lower-cased, decoded text. Each names its
/// class in its id.
const RULES: &[Rule] = &[
    // SQL injection.
    Rule {
        id: "sqli-tautology",
        pattern: r#"['"`)]\s*(or|and|xor|\|\||&&)\s*[\w'"(]+\s*(=|<|>|!=|\blike\b|\bis\b|\bin\b|\bbetween\b)"#,
    },
    Rule { id: "sqli-tautology", pattern: r"\b(or|and)\s+(\d+|true|false|null)\s*(=|<|>|is\b)" },
    Rule { id: "sqli-tautology", pattern: r#"['"]\s*(or|and)\s*['"]?\w*['"]?\s*(--|#|/\*|;|$)"# },
    Rule { id: "sqli-tautology", pattern: r"\b(or|and)\s+(true|false|null|\d+)\s*(--|#|/\*|;|$)" },
    Rule { id: "sqli-union", pattern: r"\bunion\b(\s+(all|distinct))?\s*\(?\s*select\b" },
    Rule {
        id: "sqli-stacked",
        pattern: r";\s*(drop|delete|insert|update|alter|create|truncate|exec|execute|shutdown|declare|select|grant|revoke|rename|merge|call|set)\b",
    },
    Rule { id: "sqli-comment", pattern: r#"['"`]\s*(--|#|/\*|;\s*--)|\)\s*(--|/\*)\s*$"# },
    Rule { id: "sqli-comment", pattern: r"/\*!?\d*\s*(select|union|and|or|from|where)\b" },
    Rule {
        id: "sqli-function",
        pattern: r"\b(sleep|benchmark|pg_sleep|load_file|extractvalue|updatexml|xp_cmdshell|sp_executesql|sp_oacreate|dbms_pipe\.receive_message|utl_http\.request|utl_inaddr\.get_host_name|randomblob|make_set|elt|exp|geometrycollection|polygon|multipoint|name_const|substring|substr|ascii|ord|char|chr|concat|concat_ws|group_concat|hex|unhex|version|database|user|current_user|system_user|schema|md5|if|ifnull|iif|case|cast|convert|count)\s*\(",
    },
    Rule { id: "sqli-function", pattern: r"\bwaitfor\s+(delay|time)\b" },
    Rule {
        id: "sqli-catalog",
        pattern: r"(information_schema|sysobjects|syscolumns|sys\.tables|pg_catalog|pg_shadow|pg_user|sqlite_master|mysql\.user|all_tables|user_tables|msysobjects|@@version|@@datadir|@@hostname)",
    },
    Rule {
        id: "sqli-statement",
        pattern: r"\b(select\b.{0,200}\bfrom|insert\s+into|delete\s+from|drop\s+(table|database|schema|user|view|index)|truncate\s+table|alter\s+(table|user|database)|create\s+(table|user|database|function|procedure)|update\s+[\w`.\x22\[\]]+\s+set|exec(ute)?\s+(master|xp_|sp_)|into\s+(out|dump)file|having\s+\d+|order\s+by\s+\d+|group\s+by\s+.{0,40}having)\b",
    },
    // Cross-site scripting.
    Rule { id: "xss-tag", pattern: r"<\s*/?\s*[a-z][a-z0-9:-]*(\s|/|>|$)" },
    Rule { id: "xss-tag", pattern: r"<\s*!\s*(--|\[cdata|doctype|entity)" },
    Rule {
        id: "xss-handler",
        pattern: r"\bon(abort|activate|afterprint|animation\w*|auxclick|before\w+|begin|blur|bounce|canplay\w*|change|click|close|contextmenu|copy|cuechange|cut|dblclick|drag\w*|drop|durationchange|end|ended|error|finish|focus\w*|formdata|hashchange|input|invalid|key\w+|load\w*|message|mouse\w+|offline|online|pagehide|pageshow|paste|pause|play\w*|pointer\w+|popstate|progress|readystatechange|repeat|reset|resize|scroll\w*|search|seek\w*|select\w*|show|start|storage|submit|suspend|timeupdate|toggle|touch\w+|transition\w+|unload|volumechange|waiting|wheel)\s*=",
    },
    Rule {
        id: "xss-scheme",
        pattern: r"\b(javascript|vbscript|livescript|mocha)\s*:|data\s*:\s*(text/html|image/svg|application/(x-)?javascript)",
    },
    Rule {
        id: "xss-script",
        pattern: r"(document\s*\.\s*(cookie|domain|write|location)|window\s*\.\s*(location|open|name)|\b(alert|prompt|confirm|eval|settimeout|setinterval|atob|fetch)\s*(\(|`)|fromcharcode|\bexpression\s*\(|\.constructor\s*\(|srcdoc\s*=|-moz-binding|\bstyle\s*=.{0,80}(url|expression)\s*\()",
    },
    // Path traversal and file disclosure.
    Rule { id: "traversal-dotdot", pattern: r"(^|[/\\])\.\.+([/\\]|$)" },
    Rule {
        id: "traversal-file",
        pattern: r"(/etc/(passwd|shadow|hosts|group|issue|sudoers)|/proc/(self|\d+)/|/var/log/|c:\\|\\windows\\|boot\.ini|win\.ini|system32|\.htaccess|\.htpasswd|/\.ssh/|id_rsa|/\.env\b|/\.git/|wp-config|web\.config|/bin/(ba)?sh|file://)",
    },
    Rule { id: "traversal-null", pattern: r"\x00" },
    // Command and expression injection.
    Rule {
        id: "command-injection",
        pattern: r"(;|\||&&|\$\(|`)\s*(cat|ls|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|ping|nslookup|powershell|cmd|python|perl|ruby|php|echo|rm|chmod|sleep)\b",
    },
    Rule {
        id: "command-injection",
        pattern: r"&\s*(ping|nslookup|curl|wget|nc|ncat|whoami|uname|powershell|cmd|bash|sh)\s+(-|/|\d)",
    },
    Rule { id: "xss-script", pattern: r#"\[\s*['"][^\]]{0,40}['"]\s*\+?\s*['"][^\]]{0,40}\]\s*\("# },
    Rule {
        id: "expression-injection",
        pattern: r"\$\{\s*(jndi|env|sys|lower|upper|::-)|\{\{.{0,100}\}\}|<%.{0,100}%>|#\{.{0,100}\}",
    },
];

/// Scanners and attack tools announce themselves in `User-Agent`.
const SCANNERS: &str = r"(sqlmap|nikto|nmap|masscan|acunetix|nessus|w3af|dirbuster|gobuster|wpscan|zgrab|hydra|havij|netsparker|appscan|openvas|arachni|jaeles|nuclei|fimap|commix)";

/// Headers that carry credentials or fixed formats: not inspected (a JWT or a
/// base64 signature is no attack, and looking costs time on every request).
const SKIPPED_HEADERS: &[&str] = &[
    "authorization",
    "atlas-key",
    "atlas-sign",
    "atlas-timestamp",
    "cb-access-key",
    "cb-access-sign",
    "cb-access-timestamp",
    "cb-access-passphrase",
    "content-length",
    "host",
];

/// Why a request was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The rule's id (`sqli-union`, `ip-denied`, …).
    pub rule: &'static str,
    /// Where in the request: `path`, `query`, `header`, `body`, `peer`.
    pub location: &'static str,
}

/// A JSON body nested deeper than [`JSON_DEPTH_MAX`].
#[derive(Clone, Copy, Debug)]
pub struct TooDeep;

/// JSON bodies nest at most this deep.
pub const JSON_DEPTH_MAX: usize = 32;

/// The firewall of one listener.
pub struct Waf {
    mode: WafMode,
    rules: RegexSet,
    scanners: regex::bytes::Regex,
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl std::fmt::Debug for Waf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waf")
            .field("mode", &self.mode)
            .field("allow", &self.allow)
            .field("deny", &self.deny)
            .finish()
    }
}

impl Waf {
    /// A firewall. An empty `allow` admits every address not in `deny`.
    pub fn new(mode: WafMode, allow: Vec<IpNet>, deny: Vec<IpNet>) -> Result<Waf, regex::Error> {
        let rules = RegexSetBuilder::new(RULES.iter().map(|r| r.pattern))
            .unicode(false)
            .size_limit(64 << 20)
            .build()?;
        let scanners = regex::bytes::RegexBuilder::new(SCANNERS).unicode(false).build()?;
        Ok(Waf { mode, rules, scanners, allow, deny })
    }

    /// The mode.
    pub fn mode(&self) -> WafMode {
        self.mode
    }

    /// Checks the client's address against the lists.
    pub fn check_peer(&self, ip: Option<IpAddr>) -> Option<Hit> {
        let ip = ip.map(canonical);
        let denied = ip.is_some_and(|ip| self.deny.iter().any(|n| n.contains(&ip)));
        let allowed =
            self.allow.is_empty() || ip.is_some_and(|ip| self.allow.iter().any(|n| n.contains(&ip)));
        if denied {
            Some(Hit { rule: "ip-denied", location: "peer" })
        } else if !allowed {
            Some(Hit { rule: "ip-not-allowed", location: "peer" })
        } else {
            None
        }
    }

    /// Inspects the request line and headers.
    pub fn check_head(&self, parts: &axum::http::request::Parts) -> Option<Hit> {
        if self.mode == WafMode::Off {
            return None;
        }
        let path = parts.uri.path();
        if let Some(rule) = self.scan(path.as_bytes(), false) {
            return Some(Hit { rule, location: "path" });
        }
        if let Some(q) = parts.uri.query() {
            for pair in q.split('&') {
                if let Some(rule) = self.scan(pair.as_bytes(), true) {
                    return Some(Hit { rule, location: "query" });
                }
            }
        }
        for (name, value) in &parts.headers {
            let name = name.as_str();
            if SKIPPED_HEADERS.contains(&name) {
                continue;
            }
            if name == "user-agent" && self.scanners.is_match(&value.as_bytes().to_ascii_lowercase()) {
                return Some(Hit { rule: "scanner", location: "header" });
            }
            if let Some(rule) = self.scan(value.as_bytes(), false) {
                return Some(Hit { rule, location: "header" });
            }
        }
        None
    }

    /// Inspects a body: each string (keys too) of a JSON document, or the raw
    /// text of anything else. Answers `Err` for JSON nested deeper than
    /// [`JSON_DEPTH_MAX`].
    pub fn check_body(&self, body: &[u8]) -> Result<Option<Hit>, TooDeep> {
        if json_depth(body) > JSON_DEPTH_MAX {
            return Err(TooDeep);
        }
        if self.mode == WafMode::Off || body.is_empty() {
            return Ok(None);
        }
        let hit = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => self.scan_json(&v),
            // Not JSON (the handler will say so): the raw text.
            Err(_) => self.scan(body, true),
        };
        Ok(hit.map(|rule| Hit { rule, location: "body" }))
    }

    fn scan_json(&self, v: &serde_json::Value) -> Option<&'static str> {
        match v {
            serde_json::Value::String(s) => self.scan(s.as_bytes(), false),
            serde_json::Value::Array(a) => a.iter().find_map(|x| self.scan_json(x)),
            serde_json::Value::Object(o) => {
                o.iter().find_map(|(k, x)| self.scan(k.as_bytes(), false).or_else(|| self.scan_json(x)))
            }
            _ => None,
        }
    }

    /// Matches one value (decoded) against the rules; the first rule's id.
    fn scan(&self, raw: &[u8], form: bool) -> Option<&'static str> {
        // Identifiers, symbols and numbers cannot match any rule: the common case
        // costs one pass over the bytes.
        if plain(raw) {
            return None;
        }
        let text = normalize(raw, form);
        let matches = self.rules.matches(&text);
        matches.iter().next().map(|i| RULES[i].id)
    }
}

/// Counts and logs a hit.
pub fn record(
    listener: crate::auth::Audience,
    hit: Hit,
    blocked: bool,
    ip: Option<IpAddr>,
    method: &axum::http::Method,
    path: &str,
) {
    let listener = match listener {
        crate::auth::Audience::External => "external",
        crate::auth::Audience::Internal => "internal",
    };
    let action = if blocked { "blocked" } else { "detected" };
    metrics::counter!("atlas_waf_hits_total", "listener" => listener, "rule" => hit.rule, "action" => action)
        .increment(1);
    // The path is the client's: logged escaped and cut short. (The query, the
    // headers and the body may carry credentials; they are not logged.)
    let path: String = path.chars().take(200).collect();
    tracing::warn!(listener, rule = hit.rule, location = hit.location, action, ip = ?ip, %method, path = ?path, "web application firewall hit");
}

/// Records a signature hit and, unless in detect-only mode, the 403 answer.
pub fn act(
    listener: crate::auth::Audience,
    waf: &Waf,
    hit: Hit,
    ip: Option<IpAddr>,
    parts: &axum::http::request::Parts,
) -> Option<axum::response::Response> {
    use axum::response::IntoResponse;
    let block = waf.mode == WafMode::Block;
    record(listener, hit, block, ip, &parts.method, parts.uri.path());
    block.then(|| {
        crate::error::ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "REQUEST_BLOCKED",
            format!(
                "the request was blocked by the web application firewall (rule {} in the {})",
                hit.rule, hit.location
            ),
        )
        .into_response()
    })
}

/// What the firewall costs per order request: peer lists, head and a typical
/// order body inspected `n` times (for `atlas bench waf`); the average.
pub fn inspection_cost(n: u32) -> std::time::Duration {
    let Ok(waf) = Waf::new(WafMode::Block, parse_networks("127.0.0.0/8").unwrap_or_default(), vec![]) else {
        return std::time::Duration::ZERO;
    };
    let Ok(req) = axum::http::Request::builder()
        .method("POST")
        .uri("/atlas/api/order")
        .header("authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1OjIifQ.sig")
        .header("content-type", "application/json")
        .header("user-agent", "atlas-bench/1.0")
        .header("accept", "*/*")
        .body(())
    else {
        return std::time::Duration::ZERO;
    };
    let (parts, ()) = req.into_parts();
    let body = br#"{"productId":1,"side":"BUY","type":"LIMIT","quantity":10,"price":"100.25","timeInForce":"GTC","clientOrderId":"c0ffee00-1234-4abc-8def-0123456789ab"}"#;
    let n = n.max(1);
    let start = std::time::Instant::now();
    for _ in 0..n {
        let hit = waf.check_peer(Some([127, 0, 0, 1].into())).is_some()
            || waf.check_head(std::hint::black_box(&parts)).is_some()
            || !matches!(waf.check_body(std::hint::black_box(body)), Ok(None));
        std::hint::black_box(hit);
    }
    start.elapsed() / n
}

/// Letters, digits, `-`, and single dots.
fn plain(raw: &[u8]) -> bool {
    raw.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
        && !raw.windows(2).any(|w| w == b"..")
}

/// IPv4 clients of a dual-stack socket arrive as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// How deep a JSON text nests (brackets outside strings); cheap and safe on
/// any input.
fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One round of percent-decoding (`%uXXXX` too, as IIS decodes it); `+` is a
/// space in form-encoded text.
fn percent_decode(s: &[u8], form: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' if i + 2 < s.len() => {
                if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                if (s[i + 1] == b'u' || s[i + 1] == b'U') && i + 5 < s.len() {
                    let digits: Option<Vec<u8>> = s[i + 2..i + 6].iter().map(|&b| hex(b)).collect();
                    if let Some(d) = digits {
                        let code = u32::from(d[0]) << 12
                            | u32::from(d[1]) << 8
                            | u32::from(d[2]) << 4
                            | u32::from(d[3]);
                        push_char(&mut out, code);
                        i += 6;
                        continue;
                    }
                }
                out.push(b'%');
                i += 1;
            }
            b'+' if form => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Appends a character: ASCII as is (full-width forms folded to ASCII, as some
/// back ends do), anything else as UTF-8.
fn push_char(out: &mut Vec<u8>, code: u32) {
    let code = if (0xFF01..=0xFF5E).contains(&code) { code - 0xFEE0 } else { code };
    match char::from_u32(code) {
        Some(c) => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        None => out.push(b'?'),
    }
}

/// HTML character references (`&lt;`, `&#60;`, `&#x3c;`) decoded.
fn entity_decode(s: &[u8]) -> Vec<u8> {
    const NAMED: &[(&[u8], u8)] = &[
        (b"lt", b'<'),
        (b"gt", b'>'),
        (b"quot", b'"'),
        (b"apos", b'\''),
        (b"amp", b'&'),
        (b"sol", b'/'),
        (b"colon", b':'),
        (b"lpar", b'('),
        (b"rpar", b')'),
        (b"tab", b'\t'),
        (b"newline", b'\n'),
        (b"nbsp", b' '),
    ];
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'&' {
            let rest = &s[i + 1..];
            let end =
                rest.iter().take(12).position(|&b| b == b';' || !(b.is_ascii_alphanumeric() || b == b'#'));
            let (name, consumed) = match end {
                Some(e) => (&rest[..e], e + usize::from(rest.get(e) == Some(&b';'))),
                None => (&rest[..rest.len().min(12)], rest.len().min(12)),
            };
            let decoded = if let Some(num) = name.strip_prefix(b"#") {
                let (digits, radix) = match num.first() {
                    Some(b'x' | b'X') => (&num[1..], 16),
                    _ => (num, 10),
                };
                std::str::from_utf8(digits).ok().and_then(|d| u32::from_str_radix(d, radix).ok())
            } else {
                let lower = name.to_ascii_lowercase();
                NAMED.iter().find(|(n, _)| *n == lower.as_slice()).map(|(_, c)| u32::from(*c))
            };
            if let Some(code) = decoded.filter(|_| !name.is_empty()) {
                push_char(&mut out, code);
                i += 1 + consumed;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Decodes until nothing changes (at most three rounds of percent-decoding, then
/// entities), lower-cases, turns SQL comments and control white space into
/// spaces, and drops backslash escapes.
fn normalize(raw: &[u8], form: bool) -> Vec<u8> {
    let mut text = raw.to_vec();
    for _ in 0..3 {
        if !(text.contains(&b'%') || form && text.contains(&b'+')) {
            break;
        }
        let next = percent_decode(&text, form);
        if next == text {
            break;
        }
        text = next;
    }
    if text.contains(&b'&') {
        text = entity_decode(&text);
    }
    if text.contains(&b'\\') {
        text = escape_decode(&text);
    }
    if text.iter().any(|b| *b >= 0x80) {
        text = fold(&text);
    }
    text.make_ascii_lowercase();
    // `UN/**/ION SEL/**/ECT` and `union/**/select`: an inline comment is
    // white space, or nothing inside a word. Both readings are kept.
    if text.windows(2).any(|w| w == b"/*") {
        let spaced = strip_comments(&text, b" ");
        let joined = strip_comments(&text, b"");
        text = spaced;
        text.push(b'\n');
        text.extend_from_slice(&joined);
    }
    for b in &mut text {
        if matches!(*b, b'\t' | b'\r' | 0x0b | 0x0c) {
            *b = b' ';
        }
    }
    text
}

/// JavaScript and C escapes (`\u003c`, `\x3c`) decoded.
fn escape_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' {
            let digits = match s.get(i + 1) {
                Some(b'u') => 4,
                Some(b'x') => 2,
                _ => 0,
            };
            if digits > 0 && i + 2 + digits <= s.len() {
                let code = s[i + 2..i + 2 + digits]
                    .iter()
                    .try_fold(0u32, |acc, &b| hex(b).map(|h| acc << 4 | u32::from(h)));
                if let Some(code) = code {
                    push_char(&mut out, code);
                    i += 2 + digits;
                    continue;
                }
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// What some back ends read as ASCII: over-long UTF-8 forms of `/`, `.` and
/// `\` (`%c0%af`), full-width forms (`／`), and the division slash and set minus.
fn fold(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let (ascii, len) = match rest {
            [0xc0, 0xaf, ..] | [0xe0, 0x80, 0xaf, ..] => (Some(b'/'), if rest[0] == 0xc0 { 2 } else { 3 }),
            [0xc0, 0xae, ..] => (Some(b'.'), 2),
            [0xc1, 0x9c, ..] => (Some(b'\\'), 2),
            [0xe2, 0x88, 0x95, ..] => (Some(b'/'), 3),
            [0xe2, 0x88, 0x96, ..] => (Some(b'\\'), 3),
            // U+FF01..U+FF5E: EF BC 81..BF and EF BD 80..9E.
            [0xef, 0xbc, b @ 0x81..=0xbf, ..] => (Some(b - 0x81 + 0x21), 3),
            [0xef, 0xbd, b @ 0x80..=0x9e, ..] => (Some(b - 0x80 + 0x60), 3),
            _ => (None, 1),
        };
        match ascii {
            Some(a) => out.push(a),
            None => out.push(s[i]),
        }
        i += len;
    }
    out
}

fn strip_comments(text: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(b"/*") {
            match text[i + 2..].windows(2).position(|w| w == b"*/") {
                Some(end) => {
                    // Keep MySQL's executable comments' contents: `/*!50000select*/`.
                    let inner = &text[i + 2..i + 2 + end];
                    if let Some(body) = inner.strip_prefix(b"!") {
                        let body: Vec<u8> = body.iter().skip_while(|b| b.is_ascii_digit()).copied().collect();
                        out.push(b' ');
                        out.extend_from_slice(&body);
                        out.push(b' ');
                    } else {
                        out.extend_from_slice(with);
                    }
                    i += 2 + end + 2;
                }
                None => {
                    out.extend_from_slice(&text[i..]);
                    break;
                }
            }
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waf() -> Waf {
        Waf::new(WafMode::Block, vec![], vec![]).unwrap()
    }

    #[test]
    fn decodes_what_attackers_hide_behind() {
        assert_eq!(normalize(b"%253Cscript%253E", false), b"<script>");
        assert_eq!(normalize(b"&#x3C;svg&gt;", false), b"<svg>");
        assert_eq!(normalize(b"a+b%20c", true), b"a b c");
        assert_eq!(normalize(b"%u003cimg", false), b"<img");
        assert_eq!(normalize(b"%ef%bc%9cx", false), b"<x");
        assert_eq!(normalize(b"..%c0%af", false), b"../");
        assert_eq!(normalize(br"\u003cscript\x3e", false), b"<script>");
        assert_eq!(percent_decode(b"100%", false), b"100%");
        assert_eq!(percent_decode(b"%4", false), b"%4");
    }

    #[test]
    fn signatures_fire_on_attacks_and_not_on_trading() {
        let w = waf();
        for attack in [
            "' OR '1'='1",
            "1 UNION/**/SELECT password FROM users",
            "x'; DROP TABLE orders;--",
            "admin'--",
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "javascript:alert(document.cookie)",
            "../../etc/passwd",
            "..%2f..%2fetc%2fpasswd",
            "; cat /etc/shadow",
            "${jndi:ldap://x/a}",
            "1 AND SLEEP(5)",
        ] {
            assert!(w.scan(attack.as_bytes(), false).is_some(), "{attack} passed");
        }
        for fine in [
            "BTC-USD",
            "100.25",
            "0.00000001",
            "c0ffee00-1234-4abc-8def-0123456789ab",
            "Acme Brokerage Ltd",
            "O'Brien & Sons",
            "Bitcoin / US Dollar",
            "limit",
            "good_till_cancelled",
            "My strategy #3 (slow)",
            "hedge(delta=58)#8",
            "sell or buy",
        ] {
            assert_eq!(w.scan(fine.as_bytes(), false), None, "{fine} blocked");
        }
    }

    /// The payload corpus the security suite sends through the binary.
    pub const ATTACKS: &str = include_str!("../waf-corpus/attacks.txt");

    #[test]
    fn every_payload_of_the_corpus_matches_a_rule() {
        let w = waf();
        let missed: Vec<&str> = ATTACKS
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("# "))
            .filter(|l| w.scan(l.as_bytes(), false).is_none() || w.scan(l.as_bytes(), true).is_none())
            .collect();
        assert!(missed.is_empty(), "not matched: {missed:#?}");
    }

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert_eq!(json_depth(br#"{"a":[1,{"b":"[[[["}]}"#), 3);
        assert_eq!(json_depth(br#""\"[""#), 0);
        let deep = "[".repeat(33) + &"]".repeat(33);
        assert!(waf().check_body(deep.as_bytes()).is_err());
    }

    #[test]
    fn ip_lists() {
        let net = |s: &str| parse_networks(s).unwrap();
        let w = Waf::new(WafMode::Block, net("127.0.0.0/8,::1"), net("127.0.0.9")).unwrap();
        assert_eq!(w.check_peer(Some("127.0.0.1".parse().unwrap())), None);
        assert_eq!(w.check_peer(Some("::ffff:127.0.0.1".parse().unwrap())), None);
        assert_eq!(w.check_peer(Some("127.0.0.9".parse().unwrap())).unwrap().rule, "ip-denied");
        assert_eq!(w.check_peer(Some("192.0.2.1".parse().unwrap())).unwrap().rule, "ip-not-allowed");
        assert!(parse_networks("10.0.0.0/33").is_err());
        assert!(parse_networks("nonsense").is_err());
    }
}
