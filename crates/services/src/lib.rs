//! The Atlas exchange services: product, participant, order, order book and
//! trade, behind two TLS listeners (external for brokers, internal with mutual
//! TLS for operators). `up::run` starts them all in one process on top of one
//! shard's sequencer and database.

mod app;
mod audit;
pub mod auth;
pub mod ca;
mod coinbase;
mod error;
pub mod fix;
mod gateway;
pub mod limits;
pub mod marketdata;
mod metrics;
mod model;
mod openapi;
mod orders;
mod participants;
pub mod pki;
mod products;
mod risk;
pub mod secrets;
mod tls;
pub mod up;
mod users;
pub mod waf;

pub use tls::{CONNECTIONS_PER_IP_DEFAULT, IDLE_TIMEOUT_DEFAULT, INTERNAL_CLIENT_IDS_DEFAULT, uri_names};
pub use up::{UpConfig, run};

/// The process's metrics as `GET /metrics` serves them, and the name of the
/// FIX order-to-ack histogram among them (for `atlas bench`).
pub use metrics::{FIX_ORDER_ACK, text as metrics_text};

/// The OpenAPI description of the external (`false`) or internal (`true`)
/// listener, as pretty JSON: what `/atlas/api/openapi.json` and
/// `/atlas/internal/api/openapi.json` serve.
pub fn openapi_json(internal: bool) -> String {
    let (_, doc) = if internal { app::internal_api() } else { app::external_api() };
    doc.to_pretty_json().unwrap_or_default()
}
