//! The Atlas exchange services: product, participant, order, order book and
//! trade, behind two TLS listeners (external for brokers, internal with mutual
//! TLS for operators). `up::run` starts them all in one process on top of one
//! shard's sequencer and database.

mod app;
pub mod auth;
mod coinbase;
mod error;
mod gateway;
pub mod limits;
mod metrics;
mod model;
mod orders;
mod participants;
pub mod pki;
mod products;
mod risk;
mod tls;
pub mod up;
mod users;

pub use up::{UpConfig, run};
