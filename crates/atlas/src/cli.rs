//! The client commands for people at a terminal: operators' tasks on the
//! internal listener (products, participants, users, API keys, halts, limits,
//! the kill switch) and brokers' trading on the external one (place, amend,
//! cancel, list orders, the book, trades). Each command logs in with the given
//! user (password from `ATLAS_PASSWORD` or `--password-file`, never a flag, so it
//! stays out of shell history and `ps`), calls the REST API, and prints a table
//! or, with `--json`, the API's JSON.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// How to reach Atlas and as whom.
#[derive(Args, Debug)]
pub struct Connection {
    /// The external (broker) listener.
    #[arg(long, global = true, default_value = "https://127.0.0.1:8443", env = "ATLAS_URL")]
    url: String,
    /// The internal (operator) listener.
    #[arg(long, global = true, default_value = "https://127.0.0.1:9443", env = "ATLAS_INTERNAL_URL")]
    internal_url: String,
    /// The PKI directory of a local `atlas up` (its CA and admin certificate).
    #[arg(long, global = true, default_value = "./data/pki", env = "ATLAS_PKI_DIR")]
    pki_dir: PathBuf,
    /// The CA certificate to trust (default: PKI_DIR/ca.crt).
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// Client certificate and key (PEM, concatenated or cert then key) for the
    /// internal listener (default: PKI_DIR/admin.crt and admin.key).
    #[arg(long, global = true)]
    cert: Option<PathBuf>,
    /// Private key for --cert.
    #[arg(long, global = true)]
    key: Option<PathBuf>,
    /// The identity (URI name) the internal listener's certificate must carry:
    /// a certificate of the same CA for another service is refused.
    #[arg(long, global = true, default_value = "spiffe://atlas/internal", env = "ATLAS_INTERNAL_IDENTITY")]
    internal_identity: String,
    /// The user to log in as.
    #[arg(long, global = true, default_value = "admin", env = "ATLAS_USER")]
    user: String,
    /// A file holding the password (else the ATLAS_PASSWORD variable).
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// Client commands.
#[derive(Subcommand, Debug)]
pub enum Client {
    /// Products (operators).
    #[command(subcommand)]
    Product(ProductCmd),
    /// Participants, their users, API keys, limits and kill switch (operators).
    #[command(subcommand)]
    Participant(ParticipantCmd),
    /// Operator and admin users (admins).
    #[command(subcommand)]
    User(UserCmd),
    /// End the trading day: expire DAY orders (operators).
    EndOfDay {
        /// Only this product's.
        #[arg(long)]
        product: Option<u32>,
    },
    /// Orders (brokers).
    #[command(subcommand)]
    Order(OrderCmd),
    /// The aggregated order book of a product.
    Book {
        /// Product id.
        product: u32,
        /// Levels per side.
        #[arg(long, default_value_t = 10)]
        depth: u32,
    },
    /// The public trade tape of a product.
    Trades {
        /// Product id.
        product: u32,
        /// Trades, at most.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Bust a trade (operators): it stays on record, marked busted, and leaves the tape.
    Bust {
        /// Trade id.
        trade: u64,
    },
}

/// Product commands.
#[derive(Subcommand, Debug)]
pub enum ProductCmd {
    /// List products.
    List,
    /// List a new equity.
    Create {
        /// Symbol, e.g. ACME.
        symbol: String,
        /// Tick size.
        #[arg(long, default_value = "0.01")]
        tick_size: String,
        /// Lot size.
        #[arg(long, default_value_t = 1)]
        lot_size: i64,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// Currency.
        #[arg(long, default_value = "USD")]
        currency: String,
    },
    /// Halt trading.
    Halt {
        /// Product id.
        id: u32,
    },
    /// Resume trading.
    Resume {
        /// Product id.
        id: u32,
    },
    /// Delist (cancels its open orders).
    Delete {
        /// Product id.
        id: u32,
    },
}

/// User commands.
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create an operator or admin user (its password from ATLAS_NEW_PASSWORD).
    Create {
        /// The new user's name.
        username: String,
        /// operator or admin.
        #[arg(long, default_value = "operator")]
        role: String,
    },
}

/// Participant commands.
#[derive(Subcommand, Debug)]
pub enum ParticipantCmd {
    /// List participants.
    List,
    /// Admit a broker.
    Create {
        /// Its name.
        name: String,
    },
    /// Create a broker user (its password from ATLAS_NEW_PASSWORD).
    AddUser {
        /// Participant id.
        id: u32,
        /// The new user's name.
        username: String,
    },
    /// Create an API key (the secret and passphrase are shown once).
    AddKey {
        /// Participant id.
        id: u32,
    },
    /// Revoke an API key.
    RevokeKey {
        /// Participant id.
        id: u32,
        /// The key.
        #[arg(value_name = "KEY")]
        api_key: String,
    },
    /// Rename a participant.
    Rename {
        /// Participant id.
        id: u32,
        /// The new name.
        name: String,
    },
    /// Disable a participant: its users and keys stop working, its orders are cancelled.
    Disable {
        /// Participant id.
        id: u32,
    },
    /// Set risk limits (absent: no limit).
    Limits {
        /// Participant id.
        id: u32,
        /// Order quantity, at most.
        #[arg(long)]
        max_order_quantity: Option<i64>,
        /// Order notional, at most (decimal).
        #[arg(long)]
        max_order_notional: Option<String>,
        /// Open orders, at most.
        #[arg(long)]
        max_open_orders: Option<i64>,
        /// Price collar around the last trade, percent.
        #[arg(long)]
        price_collar_percent: Option<String>,
    },
    /// Turn the kill switch on (block and cancel everything) or off.
    Kill {
        /// Participant id.
        id: u32,
        /// Turn it off instead.
        #[arg(long)]
        off: bool,
    },
}

/// Order commands.
#[derive(Subcommand, Debug)]
pub enum OrderCmd {
    /// Place an order.
    Place {
        /// Product id.
        #[arg(long)]
        product: u32,
        /// BUY or SELL.
        #[arg(long)]
        side: String,
        /// Quantity.
        #[arg(long)]
        quantity: i64,
        /// Limit price.
        #[arg(long)]
        price: Option<String>,
        /// Stop price.
        #[arg(long)]
        stop_price: Option<String>,
        /// LIMIT, MARKET, STOP or STOP_LIMIT.
        #[arg(long = "type", default_value = "LIMIT")]
        order_type: String,
        /// GTC, DAY, IOC or FOK.
        #[arg(long, default_value = "GTC")]
        time_in_force: String,
        /// Post-only.
        #[arg(long)]
        post_only: bool,
        /// Client order id (makes a retry safe).
        #[arg(long)]
        client_order_id: Option<String>,
    },
    /// Amend an open order.
    Amend {
        /// Order id.
        id: u64,
        /// New quantity.
        #[arg(long)]
        quantity: Option<i64>,
        /// New price.
        #[arg(long)]
        price: Option<String>,
        /// New stop price (a stop waiting for its trigger).
        #[arg(long)]
        stop_price: Option<String>,
    },
    /// Cancel an order.
    Cancel {
        /// Order id.
        id: u64,
    },
    /// Cancel all open orders.
    CancelAll,
    /// Show one order with its fills.
    Show {
        /// Order id.
        id: u64,
    },
    /// List orders.
    List {
        /// OPEN, DONE or ALL.
        #[arg(long, default_value = "OPEN")]
        status: String,
    },
}

struct Session {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
}

impl Session {
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut r = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().with_context(|| format!("calling {}{path}", self.base))?;
        let status = resp.status();
        let text = resp.text()?;
        let v: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            bail!("{status}: {} ({})", v["detail"].as_str().unwrap_or(""), v["code"].as_str().unwrap_or(""));
        }
        Ok(v)
    }
}

fn password(c: &Connection) -> anyhow::Result<String> {
    match &c.password_file {
        Some(f) => Ok(std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?
            .trim()
            .to_owned()),
        None => std::env::var("ATLAS_PASSWORD").context("set ATLAS_PASSWORD or --password-file"),
    }
}

/// TLS for the internal listener: the CA's chain checks, then the server's
/// URI identity must be `identity`; the client presents its certificate.
fn pinned_tls(ca: &[u8], client_pem: &[u8], identity: &str) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.context("the CA file")?)?;
    }
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let verifier = std::sync::Arc::new(PinnedServer { inner, identity: identity.to_owned() });
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(client_pem)
        .collect::<Result<_, _>>()
        .context("the client certificate")?;
    let key = PrivateKeyDer::from_pem_slice(client_pem).context("the client key")?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(certs, key)?)
}

/// The server's certificate must chain to the CA (the inner verifier) and name
/// the expected identity.
#[derive(Debug)]
struct PinnedServer {
    inner: std::sync::Arc<rustls::client::WebPkiServerVerifier>,
    identity: String,
}

impl rustls::client::danger::ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let ok = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        if atlas_services::uri_names(end_entity).contains(&self.identity) {
            Ok(ok)
        } else {
            Err(rustls::Error::General(format!(
                "the server is not {} (its certificate names another identity)",
                self.identity
            )))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn connect(c: &Connection, internal: bool) -> anyhow::Result<Session> {
    let ca_path = c.ca.clone().unwrap_or_else(|| c.pki_dir.join("ca.crt"));
    let ca = std::fs::read(&ca_path).with_context(|| format!("reading {}", ca_path.display()))?;
    let b = reqwest::blocking::Client::builder().use_rustls_tls().tls_built_in_root_certs(false);
    let http = if internal {
        let cert = c.cert.clone().unwrap_or_else(|| c.pki_dir.join("admin.crt"));
        let key = c.key.clone().unwrap_or_else(|| c.pki_dir.join("admin.key"));
        let mut pem = std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?;
        pem.extend(std::fs::read(&key).with_context(|| format!("reading {}", key.display()))?);
        b.use_preconfigured_tls(pinned_tls(&ca, &pem, &c.internal_identity)?).build()?
    } else {
        b.add_root_certificate(reqwest::Certificate::from_pem(&ca)?).build()?
    };
    let (base, path) = if internal {
        (c.internal_url.trim_end_matches('/').to_owned(), "/atlas/internal/api/auth/token")
    } else {
        (c.url.trim_end_matches('/').to_owned(), "/atlas/api/auth/token")
    };
    let resp = http
        .post(format!("{base}{path}"))
        .json(&json!({"username": c.user, "password": password(c)?}))
        .send()
        .with_context(|| format!("logging in at {base}"))?;
    if !resp.status().is_success() {
        bail!("login as {} failed: {}", c.user, resp.status());
    }
    let v: Value = resp.json()?;
    let token = v["accessToken"].as_str().context("no token in the login answer")?.to_owned();
    Ok(Session { http, base, token })
}

/// Prints rows as an aligned table of `columns` (JSON keys).
fn table(rows: &[Value], columns: &[&str]) {
    let cell = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut widths: Vec<usize> = columns.iter().map(|c| c.len()).collect();
    let cells: Vec<Vec<String>> =
        rows.iter().map(|r| columns.iter().map(|c| cell(&r[*c])).collect()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |items: Vec<String>| {
        items
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(columns.iter().map(|c| c.to_owned().to_owned()).collect()));
    for row in cells {
        println!("{}", line(row));
    }
}

fn show(json: bool, v: &Value, columns: &[&str]) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    match v {
        Value::Array(rows) => table(rows, columns),
        obj => table(std::slice::from_ref(obj), columns),
    }
}

const PRODUCT_COLUMNS: &[&str] =
    &["id", "symbol", "tickSize", "lotSize", "currency", "status", "description"];
const ORDER_COLUMNS: &[&str] = &[
    "id",
    "side",
    "type",
    "price",
    "originalQuantity",
    "tradedQuantity",
    "bookedQuantity",
    "averagePrice",
    "status",
    "clientOrderId",
];

/// Runs a client command.
pub fn run(c: Connection, cmd: Client) -> anyhow::Result<()> {
    use reqwest::Method;
    match cmd {
        Client::Product(p) => {
            let s = connect(&c, true)?;
            let base = "/atlas/internal/api/product/equity";
            let v = match p {
                ProductCmd::List => s.call(Method::GET, base, None)?,
                ProductCmd::Create { symbol, tick_size, lot_size, description, currency } => s.call(
                    Method::POST,
                    base,
                    Some(json!({"symbol": symbol, "tickSize": tick_size, "lotSize": lot_size,
                        "description": description, "currency": currency, "productType": "EQUITY"})),
                )?,
                ProductCmd::Halt { id } => s.call(Method::POST, &format!("{base}/{id}/halt"), None)?,
                ProductCmd::Resume { id } => s.call(Method::POST, &format!("{base}/{id}/resume"), None)?,
                ProductCmd::Delete { id } => {
                    s.call(Method::DELETE, &format!("{base}/{id}"), None)?;
                    json!({"id": id, "status": "DELETED"})
                }
            };
            show(c.json, &v, PRODUCT_COLUMNS);
        }
        Client::Participant(p) => {
            let s = connect(&c, true)?;
            let base = "/atlas/internal/api/participant/broker";
            match p {
                ParticipantCmd::List => {
                    show(c.json, &s.call(Method::GET, base, None)?, &["id", "name", "status"])
                }
                ParticipantCmd::Create { name } => show(
                    c.json,
                    &s.call(Method::POST, base, Some(json!({"name": name, "participantType": "BROKER"})))?,
                    &["id", "name", "status"],
                ),
                ParticipantCmd::AddUser { id, username } => {
                    let password = std::env::var("ATLAS_NEW_PASSWORD").context("set ATLAS_NEW_PASSWORD")?;
                    let body = json!({"username": username, "password": password, "role": "broker"});
                    show(
                        c.json,
                        &s.call(Method::POST, &format!("{base}/{id}/user"), Some(body))?,
                        &["id", "username", "role", "participantId"],
                    );
                }
                ParticipantCmd::AddKey { id } => {
                    show(
                        c.json,
                        &s.call(Method::POST, &format!("{base}/{id}/apikey"), None)?,
                        &["key", "secret", "passphrase"],
                    );
                }
                ParticipantCmd::RevokeKey { id, api_key } => {
                    // It goes into the request path: only what a key can be.
                    if api_key.is_empty()
                        || api_key.len() > 64
                        || !api_key.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        bail!(
                            "{api_key:?} is not an API key (hex digits, as `participant add-key` prints it)"
                        );
                    }
                    s.call(Method::DELETE, &format!("{base}/{id}/apikey/{api_key}"), None)?;
                    show(c.json, &json!({"key": api_key, "revoked": true}), &["key", "revoked"]);
                }
                ParticipantCmd::Rename { id, name } => show(
                    c.json,
                    &s.call(Method::PUT, &format!("{base}/{id}"), Some(json!({"name": name})))?,
                    &["id", "name", "status"],
                ),
                ParticipantCmd::Disable { id } => {
                    s.call(Method::DELETE, &format!("{base}/{id}"), None)?;
                    show(
                        c.json,
                        &s.call(Method::GET, &format!("{base}/{id}"), None)?,
                        &["id", "name", "status"],
                    );
                }
                ParticipantCmd::Limits {
                    id,
                    max_order_quantity,
                    max_order_notional,
                    max_open_orders,
                    price_collar_percent,
                } => {
                    let mut body = serde_json::Map::new();
                    let mut put = |k: &str, v: Value| {
                        if !v.is_null() {
                            body.insert(k.to_owned(), v);
                        }
                    };
                    put("maxOrderQuantity", json!(max_order_quantity));
                    put("maxOrderNotional", json!(max_order_notional));
                    put("maxOpenOrders", json!(max_open_orders));
                    put("priceCollarPercent", json!(price_collar_percent));
                    let v = s.call(Method::PUT, &format!("{base}/{id}/limits"), Some(Value::Object(body)))?;
                    show(
                        c.json,
                        &v,
                        &[
                            "maxOrderQuantity",
                            "maxOrderNotional",
                            "maxOpenOrders",
                            "priceCollarPercent",
                            "killSwitch",
                        ],
                    );
                }
                ParticipantCmd::Kill { id, off } => {
                    let v = s.call(
                        Method::POST,
                        &format!("{base}/{id}/killSwitch"),
                        Some(json!({"active": !off})),
                    )?;
                    show(c.json, &v, &["active", "cancelled"]);
                }
            }
        }
        Client::Order(o) => {
            let s = connect(&c, false)?;
            let v = match o {
                OrderCmd::Place {
                    product,
                    side,
                    quantity,
                    price,
                    stop_price,
                    order_type,
                    time_in_force,
                    post_only,
                    client_order_id,
                } => {
                    let mut body = json!({"productId": product, "side": side.to_uppercase(), "type": order_type.to_uppercase(),
                        "quantity": quantity, "timeInForce": time_in_force.to_uppercase(), "postOnly": post_only});
                    if let Some(p) = price {
                        body["price"] = json!(p);
                    }
                    if let Some(p) = stop_price {
                        body["stopPrice"] = json!(p);
                    }
                    if let Some(id) = client_order_id {
                        body["clientOrderId"] = json!(id);
                    }
                    s.call(Method::POST, "/atlas/api/order", Some(body))?
                }
                OrderCmd::Amend { id, quantity, price, stop_price } => {
                    let mut body = json!({});
                    if let Some(q) = quantity {
                        body["quantity"] = json!(q);
                    }
                    if let Some(p) = price {
                        body["price"] = json!(p);
                    }
                    if let Some(p) = stop_price {
                        body["stopPrice"] = json!(p);
                    }
                    s.call(Method::PUT, &format!("/atlas/api/order/{id}"), Some(body))?
                }
                OrderCmd::Cancel { id } => s.call(Method::DELETE, &format!("/atlas/api/order/{id}"), None)?,
                OrderCmd::CancelAll => {
                    let v = s.call(Method::DELETE, "/atlas/api/order", None)?;
                    show(c.json, &v, &["cancelled"]);
                    return Ok(());
                }
                OrderCmd::Show { id } => s.call(Method::GET, &format!("/atlas/api/order/{id}"), None)?,
                OrderCmd::List { status } => {
                    let v = s.call(
                        Method::GET,
                        &format!("/atlas/api/order?status={}", status.to_uppercase()),
                        None,
                    )?;
                    if c.json {
                        show(true, &v, ORDER_COLUMNS);
                    } else {
                        table(v["orders"].as_array().map_or(&[][..], Vec::as_slice), ORDER_COLUMNS);
                    }
                    return Ok(());
                }
            };
            show(c.json, &v, ORDER_COLUMNS);
            if !c.json && v["trades"].as_array().is_some_and(|t| !t.is_empty()) {
                println!();
                table(
                    v["trades"].as_array().map_or(&[][..], Vec::as_slice),
                    &["id", "price", "quantity", "liquidity", "time"],
                );
            }
        }
        Client::Book { product, depth } => {
            let s = connect(&c, false)?;
            let v =
                s.call(reqwest::Method::GET, &format!("/atlas/api/orderBook/{product}?depth={depth}"), None)?;
            if c.json {
                show(true, &v, &[]);
            } else {
                println!("{} (sequence {})", v["symbol"].as_str().unwrap_or("?"), v["sequence"]);
                let rows: Vec<Value> = v["offers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .rev()
                    .map(|l| json!({"side": "offer", "price": l["price"], "quantity": l["quantity"], "orders": l["orders"]}))
                    .chain(v["bids"].as_array().into_iter().flatten().map(|l| {
                        json!({"side": "bid", "price": l["price"], "quantity": l["quantity"], "orders": l["orders"]})
                    }))
                    .collect();
                table(&rows, &["side", "price", "quantity", "orders"]);
            }
        }
        Client::Trades { product, limit } => {
            let s = connect(&c, false)?;
            let v = s.call(
                reqwest::Method::GET,
                &format!("/atlas/api/trade?productId={product}&limit={limit}"),
                None,
            )?;
            show(c.json, &v, &["id", "price", "quantity", "aggressorSide", "time"]);
        }
        Client::User(UserCmd::Create { username, role }) => {
            let s = connect(&c, true)?;
            let password = std::env::var("ATLAS_NEW_PASSWORD").context("set ATLAS_NEW_PASSWORD")?;
            let body = json!({"username": username, "password": password, "role": role.to_lowercase()});
            show(
                c.json,
                &s.call(Method::POST, "/atlas/internal/api/user", Some(body))?,
                &["id", "username", "role"],
            );
        }
        Client::EndOfDay { product } => {
            let s = connect(&c, true)?;
            let path = match product {
                Some(p) => format!("/atlas/internal/api/orderBook/endOfDay?productId={p}"),
                None => "/atlas/internal/api/orderBook/endOfDay".to_owned(),
            };
            show(c.json, &s.call(Method::POST, &path, None)?, &["expired", "sequence"]);
        }
        Client::Bust { trade } => {
            let s = connect(&c, true)?;
            let v = s.call(reqwest::Method::DELETE, &format!("/atlas/internal/api/trade/{trade}"), None)?;
            let row = if c.json {
                v
            } else {
                json!({
                    "id": v["trade"]["id"], "price": v["trade"]["price"], "quantity": v["trade"]["quantity"],
                    "makerParticipantId": v["makerParticipantId"], "takerParticipantId": v["takerParticipantId"],
                    "busted": v["busted"],
                })
            };
            show(
                c.json,
                &row,
                &["id", "price", "quantity", "makerParticipantId", "takerParticipantId", "busted"],
            );
        }
    }
    Ok(())
}
