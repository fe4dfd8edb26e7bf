//! Market data over WebSocket: `/atlas/api/ws` (Atlas's camelCase messages) and
//! `/coinbase/ws` (Coinbase Exchange's feed), channels `level2` (a snapshot, then
//! `l2update`s), `matches`, `ticker` and `heartbeat`.
//!
//! One task, the hub, consumes the sequencer's market feed (published after
//! each commit), keeps every product's level-2 book and its per-product
//! sequence number, and fans messages out to the connections. Because the hub
//! alone orders what a connection receives, a snapshot and the updates after
//! it are always consistent. Each message is serialized once per flavor, not
//! once per subscriber. Publication never waits for a subscriber: a connection
//! whose queue is full is dropped from the hub and closed with an error
//! message; the hub itself, if it falls behind the feed, rebuilds its books
//! from the engine and sends fresh snapshots.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use atlas_journal::market::{MarketBatch, MarketEvent};
use atlas_types::{ProductId, Side};

use crate::app::{App, St};
use crate::error::ApiError;
use crate::model::{format_price, parse_rfc3339, rfc3339};

/// Messages waiting in one connection's outbox, at most, before it is flushed
/// to the connection early.
const OUTBOX_FLUSH_AT: usize = 256;
/// Flushed outboxes waiting for one connection to write them, at most; a
/// connection that lets more pile up (up to `OUTBOX_FLUSH_AT` × this, ~8,000
/// messages, all shared with other subscribers) is too slow and is closed.
const CONNECTION_BATCHES: usize = 32;
/// Messages queued for one connection, at most (see above).
pub const CONNECTION_QUEUE: usize = OUTBOX_FLUSH_AT * CONNECTION_BATCHES;
/// The hub hands each connection what accumulated for it at most this often:
/// one wake-up and one write per connection per flush instead of per message.
const FLUSH_EVERY_MIN: Duration = Duration::from_millis(5);
/// ... and at least this often, however many connections there are.
const FLUSH_EVERY_MAX: Duration = Duration::from_millis(20);
/// The flush interval grows by this much per connection between the two.
/// Each flush costs every busy connection a wake-up, a TLS record and a
/// write system call (~10 µs in all): with 1,000 subscribers on two cores,
/// flushing every 5 ms took more CPU than the machine had, and the queues
/// (so the lag) grew to half a second; flushed every 20 ms, the same load
/// shows a p99 publish lag of 38 ms when orders arrive in 1 ms bursts and
/// 50–90 ms when each is sent on its own (`atlas bench feed`).
const FLUSH_PER_CONNECTION: Duration = Duration::from_micros(20);

/// How long the hub lets messages gather before a flush, for `connections`.
fn flush_interval(connections: usize) -> Duration {
    FLUSH_PER_CONNECTION
        .saturating_mul(u32::try_from(connections).unwrap_or(u32::MAX))
        .clamp(FLUSH_EVERY_MIN, FLUSH_EVERY_MAX)
}
/// (channel, product) subscriptions per connection, at most.
pub const SUBSCRIPTIONS_MAX: usize = 100;
/// A client message (subscribe, unsubscribe) is at most this large.
pub const CLIENT_MESSAGE_BYTES_MAX: usize = 4_096;
/// A connection's WebSocket read buffer. Small on purpose: tungstenite zeroes
/// the free part of it (up to its whole size) before every read, and the
/// connection task reads each time it wakes to send, so tungstenite's default
/// 128 KiB cost a 128 KiB memset per wake-up per subscriber — a sixth of the
/// server's CPU with 1,000 subscribers; at 8 KiB it was still 4% of the io
/// threads. Client messages are at most `CLIENT_MESSAGE_BYTES_MAX` (a
/// subscription is a few hundred bytes) and a larger one reads in pieces.
const READ_BUFFER_BYTES: usize = 512;
/// WebSocket connections from one IP address, at most, by default.
pub const CONNECTIONS_PER_IP_DEFAULT: u32 = 32;
/// Heartbeats go out this often.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// A feed channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Snapshot, then level updates.
    Level2,
    /// Trades.
    Matches,
    /// Last price, best bid and offer, 24 h volume, after each batch of trades.
    Ticker,
    /// Once a second: the product's sequence and last trade.
    Heartbeat,
    /// The caller's own orders and fills (authenticated connections only).
    User,
}

impl Channel {
    fn parse(s: &str) -> Option<Channel> {
        match s {
            "level2" | "level2_batch" => Some(Channel::Level2),
            "matches" => Some(Channel::Matches),
            "ticker" | "ticker_batch" => Some(Channel::Ticker),
            "heartbeat" => Some(Channel::Heartbeat),
            "user" => Some(Channel::User),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Channel::Level2 => "level2",
            Channel::Matches => "matches",
            Channel::Ticker => "ticker",
            Channel::Heartbeat => "heartbeat",
            Channel::User => "user",
        }
    }
}

/// Message naming: Atlas's or Coinbase's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `/atlas/api/ws`.
    Atlas,
    /// `/coinbase/ws`.
    Coinbase,
}

/// What a connection asks of the hub.
enum Cmd {
    Subscribe {
        conn: u64,
        flavor: Flavor,
        participant: Option<atlas_types::ParticipantId>,
        tx: Option<mpsc::Sender<Vec<Bytes>>>,
        wanted: Vec<(Channel, ProductId)>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Unsubscribe {
        conn: u64,
        wanted: Vec<(Channel, ProductId)>,
    },
    Gone {
        conn: u64,
    },
}

/// The hub's handle, shared by the listeners.
pub struct MarketData {
    cmds: mpsc::Sender<Cmd>,
    next_conn: AtomicU64,
    per_ip: std::sync::Mutex<HashMap<IpAddr, usize>>,
    /// Feed connections per IP, at most (0: no cap).
    per_ip_max: usize,
}

impl MarketData {
    /// Starts the hub on the current runtime.
    pub fn start(
        app: std::sync::Weak<App>,
        seq: atlas_journal::SequencerHandle,
        per_ip_max: u32,
    ) -> MarketData {
        let (cmds, rx) = mpsc::channel(1_024);
        // Subscribed before the first snapshot is read, so nothing falls between.
        let feed = seq.market_feed();
        tokio::spawn(hub(app, seq, feed, rx));
        MarketData {
            cmds,
            next_conn: AtomicU64::new(1),
            per_ip: Default::default(),
            per_ip_max: usize::try_from(per_ip_max).unwrap_or(usize::MAX),
        }
    }

    /// Feed connections open now (upgrades under way included).
    pub fn connections(&self) -> usize {
        self.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().sum()
    }
}

/// One product's book as the feed has built it.
#[derive(Default)]
struct ProductBook {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    sequence: u64,
    last_trade_id: u64,
    last_price: Option<i64>,
    last_size: i64,
    last_side: Option<Side>,
    /// Traded quantity per minute, the last 24 h.
    volume: VecDeque<(i64, i64)>,
}

impl ProductBook {
    fn volume_24h(&mut self, now_min: i64) -> i64 {
        while self.volume.front().is_some_and(|(m, _)| *m <= now_min - 1_440) {
            self.volume.pop_front();
        }
        self.volume.iter().map(|(_, q)| q).sum()
    }
    fn add_volume(&mut self, minute: i64, qty: i64) {
        match self.volume.back_mut() {
            Some((m, q)) if *m == minute => *q += qty,
            _ => self.volume.push_back((minute, qty)),
        }
    }
}

struct Sub {
    flavor: Flavor,
    /// The broker's participant, on an authenticated connection.
    participant: Option<atlas_types::ParticipantId>,
    tx: mpsc::Sender<Vec<Bytes>>,
    wanted: HashSet<(Channel, ProductId)>,
    /// Messages for it since the last flush (as WebSocket frames).
    outbox: Vec<Bytes>,
}

struct Hub {
    app: std::sync::Weak<App>,
    seq: atlas_journal::SequencerHandle,
    books: HashMap<ProductId, ProductBook>,
    /// By connection id. The ids come from the server's own counter, not a client's
    /// choice, so a fast hash (looked up per message and subscriber) is safe.
    subs: HashMap<u64, Sub, foldhash::fast::RandomState>,
    /// Who wants what: (channel, product) → connections.
    index: HashMap<(Channel, ProductId), Vec<u64>>,
    /// Connections with something in their outbox.
    dirty: Vec<u64>,
    /// User-channel subscribers by (product, their participant), so a
    /// private message looks only at its owner's connections.
    users: HashMap<(ProductId, atlas_types::ParticipantId), Vec<u64>>,
}

/// One message in both flavors, serialized and framed when first needed.
struct Out {
    atlas: Option<Bytes>,
    coinbase: Option<Bytes>,
}

/// A server-to-client WebSocket text frame holding `text` (RFC 6455 §5.2:
/// FIN, opcode 1, unmasked, the shortest length encoding). Frames from a
/// server are the same for every client, so each feed message is framed once
/// and the bytes shared by all its subscribers' queues; a connection writes
/// them to its stream as they are, where a WebSocket library would frame and
/// copy each message again for every subscriber.
fn text_frame(text: &str) -> Bytes {
    let n = text.len();
    let mut f = Vec::with_capacity(n + 10);
    f.push(0x81);
    match (u8::try_from(n), u16::try_from(n)) {
        (Ok(short), _) if short < 126 => f.push(short),
        (_, Ok(medium)) => {
            f.push(126);
            f.extend_from_slice(&medium.to_be_bytes());
        }
        _ => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(text.as_bytes());
    Bytes::from(f)
}

fn now_ns() -> i64 {
    crate::model::now_ns()
}

impl Hub {
    fn product(&self, id: ProductId) -> Option<atlas_store::ProductRow> {
        self.app.upgrade()?.product_any(id)
    }

    fn cb_id(p: &atlas_store::ProductRow) -> String {
        format!("{}-{}", p.symbol, p.currency)
    }

    /// Reads books from the engine (all products when `only` is None).
    async fn resync(&mut self, only: Option<ProductId>) {
        let read = self.seq.query_market(move |e, m| {
            let ids: Vec<ProductId> = match only {
                Some(p) => vec![p],
                None => e.products().collect(),
            };
            ids.into_iter()
                .filter_map(|p| {
                    let d = e.depth(p, usize::MAX)?;
                    let last = e.product(p).and_then(|v| v.last_trade).map(|x| x.0);
                    let side = |ls: &[atlas_engine::LevelView]| {
                        ls.iter().map(|l| (l.price.0, l.quantity.0)).collect::<BTreeMap<_, _>>()
                    };
                    Some((p, m.get(p), side(&d.bids), side(&d.asks), last))
                })
                .collect::<Vec<_>>()
        });
        let Ok(rx) = read else { return };
        let Ok(books) = rx.await else { return };
        for (p, sequence, bids, asks, last) in books {
            let b = self.books.entry(p).or_default();
            b.bids = bids;
            b.asks = asks;
            b.sequence = sequence;
            if b.last_price.is_none() {
                b.last_price = last;
            }
            // Everyone on level2 starts over from a snapshot.
            let conns = self.index.get(&(Channel::Level2, p)).cloned().unwrap_or_default();
            for c in conns {
                self.send_snapshot(c, p);
            }
        }
    }

    fn snapshot_json(&self, p: ProductId, flavor: Flavor) -> Option<String> {
        let book = self.books.get(&p)?;
        let row = self.product(p)?;
        let side = |m: &BTreeMap<i64, i64>, best_first_desc: bool| {
            let it: Box<dyn Iterator<Item = (&i64, &i64)>> =
                if best_first_desc { Box::new(m.iter().rev()) } else { Box::new(m.iter()) };
            it.map(|(px, q)| json!([format_price(atlas_types::Price(*px), &row), q.to_string()]))
                .collect::<Vec<_>>()
        };
        let v = match flavor {
            Flavor::Atlas => json!({"type": "snapshot", "productId": p.0, "sequence": book.sequence,
                "bids": side(&book.bids, true), "asks": side(&book.asks, false)}),
            Flavor::Coinbase => {
                json!({"type": "snapshot", "product_id": Self::cb_id(&row), "sequence": book.sequence,
                "bids": side(&book.bids, true), "asks": side(&book.asks, false)})
            }
        };
        Some(v.to_string())
    }

    fn send_snapshot(&mut self, conn: u64, p: ProductId) {
        let Some(flavor) = self.subs.get(&conn).map(|s| s.flavor) else { return };
        let Some(text) = self.snapshot_json(p, flavor) else { return };
        self.enqueue(conn, text_frame(&text));
        self.flush_one(conn);
    }

    /// Puts a message in a connection's outbox.
    fn enqueue(&mut self, conn: u64, frame: Bytes) {
        let Some(sub) = self.subs.get_mut(&conn) else { return };
        if sub.outbox.is_empty() {
            self.dirty.push(conn);
        }
        sub.outbox.push(frame);
        if sub.outbox.len() >= OUTBOX_FLUSH_AT {
            self.flush_one(conn);
        }
    }

    /// Hands a connection its outbox; a connection whose queue is full is
    /// too slow and is dropped.
    fn flush_one(&mut self, conn: u64) {
        let Some(sub) = self.subs.get_mut(&conn) else { return };
        if sub.outbox.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut sub.outbox);
        match sub.tx.try_send(batch) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!(crate::metrics::FEED_SLOW_CONSUMERS).increment(1);
                self.kick(conn);
            }
            // The connection ended; its goodbye is on the way.
            Err(mpsc::error::TrySendError::Closed(_)) => self.kick(conn),
        }
    }

    fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for conn in dirty {
            self.flush_one(conn);
        }
    }

    /// Drops a connection from the hub: its queue closes and the connection
    /// tells the client why.
    fn kick(&mut self, conn: u64) {
        if let Some(sub) = self.subs.remove(&conn) {
            for key in sub.wanted {
                if let Some(v) = self.index.get_mut(&key) {
                    v.retain(|c| *c != conn);
                }
                if key.0 == Channel::User
                    && let Some(p) = sub.participant
                {
                    self.forget_user(key.1, p, conn);
                }
            }
        }
    }

    fn forget_user(&mut self, product: ProductId, participant: atlas_types::ParticipantId, conn: u64) {
        if let Some(v) = self.users.get_mut(&(product, participant)) {
            v.retain(|c| *c != conn);
            if v.is_empty() {
                self.users.remove(&(product, participant));
            }
        }
    }

    /// Queues a message for every connection subscribed to `key`; `make`
    /// builds it at most once per flavor. This runs for every message and
    /// every subscriber (1.4 million times a second with 1,000 subscribers),
    /// so each connection costs one map lookup and one push here; outboxes
    /// that filled up are handed over after the loop.
    fn publish(&mut self, key: (Channel, ProductId), mut make: impl FnMut(Flavor) -> Option<Value>) {
        let Some(conns) = self.index.get(&key) else { return };
        let mut out = Out { atlas: None, coinbase: None };
        let mut full = Vec::new();
        for &c in conns {
            let Some(sub) = self.subs.get_mut(&c) else { continue };
            let slot = match sub.flavor {
                Flavor::Atlas => &mut out.atlas,
                Flavor::Coinbase => &mut out.coinbase,
            };
            if slot.is_none() {
                match make(sub.flavor) {
                    Some(v) => *slot = Some(text_frame(&v.to_string())),
                    None => continue,
                }
            }
            let Some(frame) = slot.clone() else { continue };
            if sub.outbox.is_empty() {
                self.dirty.push(c);
            }
            sub.outbox.push(frame);
            if sub.outbox.len() >= OUTBOX_FLUSH_AT {
                full.push(c);
            }
        }
        for c in full {
            self.flush_one(c);
        }
    }

    async fn apply(&mut self, batch: &MarketBatch) {
        let mut traded: Vec<ProductId> = Vec::new();
        for ev in &batch.events {
            match ev {
                MarketEvent::Reset => {
                    self.resync(None).await;
                    return;
                }
                MarketEvent::Levels(u) => {
                    let known = self.books.get(&u.product).map(|b| b.sequence);
                    match known {
                        Some(s) if u.sequence <= s => continue, // in the snapshot already
                        Some(s) if u.sequence == s + 1 => {}
                        _ => {
                            // A gap, or a product not seen yet: read it from the engine.
                            self.resync(Some(u.product)).await;
                            continue;
                        }
                    }
                    let Some(b) = self.books.get_mut(&u.product) else { continue };
                    for (side, price, qty) in &u.changes {
                        let m = if *side == Side::Buy { &mut b.bids } else { &mut b.asks };
                        if qty.0 == 0 {
                            m.remove(&price.0);
                        } else {
                            m.insert(price.0, qty.0);
                        }
                    }
                    b.sequence = u.sequence;
                    let Some(row) = self.product(u.product) else { continue };
                    let changes: Vec<Value> = u
                        .changes
                        .iter()
                        .map(|(s, px, q)| json!([side_name(*s), format_price(*px, &row), q.0.to_string()]))
                        .collect();
                    let (p, seq, time) = (u.product, u.sequence, rfc3339(u.time.0));
                    self.publish((Channel::Level2, p), |f| {
                        Some(match f {
                            Flavor::Atlas => json!({"type": "l2update", "productId": p.0, "sequence": seq,
                                "time": time, "changes": changes}),
                            Flavor::Coinbase => json!({"type": "l2update", "product_id": Hub::cb_id(&row),
                                "sequence": seq, "time": time, "changes": changes}),
                        })
                    });
                }
                MarketEvent::Match(m) => {
                    let b = self.books.entry(m.product).or_default();
                    b.last_trade_id = m.trade_id.0;
                    b.last_price = Some(m.price.0);
                    b.last_size = m.quantity.0;
                    b.last_side = Some(m.maker_side);
                    b.add_volume(m.time.0.div_euclid(60_000_000_000), m.quantity.0);
                    if !traded.contains(&m.product) {
                        traded.push(m.product);
                    }
                    let seq = b.sequence;
                    let Some(row) = self.product(m.product) else { continue };
                    let (price, size, time) =
                        (format_price(m.price, &row), m.quantity.0.to_string(), rfc3339(m.time.0));
                    self.publish((Channel::Matches, m.product), |f| {
                        Some(match f {
                            Flavor::Atlas => json!({"type": "match", "productId": m.product.0, "tradeId": m.trade_id.0,
                                "price": price, "size": size, "side": side_name(m.maker_side), "time": time}),
                            Flavor::Coinbase => json!({"type": "match", "trade_id": m.trade_id.0,
                                "maker_order_id": m.maker_order.0.to_string(), "taker_order_id": m.taker_order.0.to_string(),
                                "side": side_name(m.maker_side), "size": size, "price": price,
                                "product_id": Hub::cb_id(&row), "sequence": seq, "time": time}),
                        })
                    });
                }
            }
        }
        for p in traded {
            self.publish_ticker(p);
        }
        self.private(batch);
    }

    /// The user channel: each order the batch changed goes to its owner's
    /// connections, each trade to both parties'. Atlas's shape: an `order`
    /// message per changed order, then a `fill` per trade side. Coinbase's:
    /// `received` for each order entered in the batch, then the `match`es,
    /// then `open` (on the book) or `done` (with its reason) for each changed
    /// order; each carries a `sequence` that grows with every message of the
    /// product's user channel (clients such as ccxt order updates by it).
    fn private(&mut self, batch: &MarketBatch) {
        if batch.orders.is_empty() && batch.trades.is_empty() {
            return;
        }
        // Orders entered by a command of this batch (not by one of a batch
        // this hub never saw, nor before it started).
        let (first, last) = batch.commands;
        let entered_here = |row: &&atlas_journal::projection::OrderRow| {
            (first..=last).contains(&row.entry_seq.0) && last > 0
        };
        if self.users.is_empty() {
            // Nobody listens: nothing is looked up or built.
            return;
        }
        let listens =
            |users: &HashMap<_, Vec<u64>>, product, participant| users.contains_key(&(product, participant));
        // The Coinbase sequence: the batch's last journal number, then a
        // counter, so it only grows from batch to batch and within one.
        let mut counter = 0u64;
        let mut sequence = move || {
            counter += 1;
            last.saturating_mul(1 << 16).saturating_add(counter.min((1 << 16) - 1))
        };
        for row in batch.orders.iter().filter(|r| entered_here(r)) {
            if !listens(&self.users, row.product, row.participant) {
                continue;
            }
            let Some(product) = self.product(row.product) else { continue };
            let order_type = match row.order_type {
                atlas_engine::OrderType::Limit | atlas_engine::OrderType::StopLimit => "limit",
                atlas_engine::OrderType::Market | atlas_engine::OrderType::Stop => "market",
            };
            self.deliver(row.product, row.participant, Flavor::Coinbase, || {
                json!({"type": "received", "order_id": row.id.0.to_string(), "client_oid": row.client_order_id,
                    "product_id": Hub::cb_id(&product), "side": side_name(row.side), "order_type": order_type,
                    "size": row.original.0.to_string(), "price": row.price.map(|p| format_price(p, &product)),
                    "time": rfc3339(row.entry_time.0), "sequence": sequence()})
            });
        }
        for row in &batch.orders {
            if !listens(&self.users, row.product, row.participant) {
                continue;
            }
            let Some(product) = self.product(row.product) else { continue };
            let px = |p: Option<atlas_types::Price>| p.map(|p| format_price(p, &product));
            let avg = || {
                (row.traded.0 > 0).then(|| {
                    let scaled = row.notional / i128::from(row.traded.0);
                    format_price(atlas_types::Price(i64::try_from(scaled).unwrap_or(i64::MAX)), &product)
                })
            };
            self.deliver(row.product, row.participant, Flavor::Atlas, || {
                json!({"type": "order", "productId": row.product.0, "orderId": row.id.0,
                    "clientOrderId": row.client_order_id, "side": side_name(row.side).to_uppercase(),
                    "status": row.status.as_str(), "price": px(row.price), "stopPrice": px(row.stop_price),
                    "quantity": row.original.0, "tradedQuantity": row.traded.0,
                    "openQuantity": row.open.0, "cancelledQuantity": row.cancelled.0,
                    "averagePrice": avg(), "time": rfc3339(row.update_time.0)})
            });
        }
        for t in &batch.trades {
            if !listens(&self.users, t.product, t.maker_participant)
                && !listens(&self.users, t.product, t.taker_participant)
            {
                continue;
            }
            let Some(product) = self.product(t.product) else { continue };
            let (price, time) = (format_price(t.price, &product), rfc3339(t.time.0));
            for (me, order, liquidity, side) in [
                (t.maker_participant, t.maker_order, "maker", t.aggressor.opposite()),
                (t.taker_participant, t.taker_order, "taker", t.aggressor),
            ] {
                self.deliver(t.product, me, Flavor::Atlas, || {
                    json!({"type": "fill", "productId": t.product.0, "tradeId": t.id.0,
                        "orderId": order.0, "side": side_name(side).to_uppercase(), "price": price,
                        "quantity": t.quantity.0, "liquidity": liquidity, "time": time})
                });
                self.deliver(t.product, me, Flavor::Coinbase, || {
                    let mut v = json!({"type": "match", "trade_id": t.id.0,
                        "maker_order_id": t.maker_order.0.to_string(), "taker_order_id": t.taker_order.0.to_string(),
                        "side": side_name(t.aggressor.opposite()), "size": t.quantity.0.to_string(), "price": price,
                        "product_id": Hub::cb_id(&product), "time": time, "sequence": sequence(),
                        "liquidity": if liquidity == "maker" { "M" } else { "T" }});
                    // As Coinbase's user channel: the recipient's own fee rate
                    // (Atlas charges none) tells its side of the trade; clients
                    // such as ccxt take the order id and side from it.
                    v[if liquidity == "maker" { "maker_fee_rate" } else { "taker_fee_rate" }] = json!("0");
                    v
                });
            }
        }
        for row in &batch.orders {
            if !listens(&self.users, row.product, row.participant) {
                continue;
            }
            let Some(product) = self.product(row.product) else { continue };
            let done =
                matches!(row.status.as_str(), "FILLED" | "CANCELLED" | "PARTIALLY_CANCELLED" | "EXPIRED");
            self.deliver(row.product, row.participant, Flavor::Coinbase, || {
                let mut v = json!({"type": if done { "done" } else { "open" }, "order_id": row.id.0.to_string(),
                    "client_oid": row.client_order_id, "product_id": Hub::cb_id(&product),
                    "side": side_name(row.side), "price": row.price.map(|p| format_price(p, &product)),
                    "remaining_size": row.open.0.to_string(), "time": rfc3339(row.update_time.0),
                    "sequence": sequence()});
                if done {
                    v["reason"] = json!(if row.status.as_str() == "FILLED" { "filled" } else { "canceled" });
                }
                v
            });
        }
    }

    /// Queues a user-channel message for `owner`'s connections of `flavor`
    /// subscribed to the product's user channel; `make` runs only if there
    /// is one.
    fn deliver(
        &mut self,
        product: ProductId,
        owner: atlas_types::ParticipantId,
        flavor: Flavor,
        make: impl FnOnce() -> Value,
    ) {
        let Some(conns) = self.users.get(&(product, owner)) else { return };
        let to: Vec<u64> =
            conns.iter().copied().filter(|c| self.subs.get(c).is_some_and(|s| s.flavor == flavor)).collect();
        if to.is_empty() {
            return;
        }
        let frame = text_frame(&make().to_string());
        for c in to {
            self.enqueue(c, frame.clone());
        }
    }

    fn publish_ticker(&mut self, p: ProductId) {
        let Some(row) = self.product(p) else { return };
        let now_min = now_ns().div_euclid(60_000_000_000);
        let Some(b) = self.books.get_mut(&p) else { return };
        let volume = b.volume_24h(now_min).to_string();
        let fmt = |x: Option<i64>| x.map(|v| format_price(atlas_types::Price(v), &row));
        let (price, bid, ask) =
            (fmt(b.last_price), fmt(b.bids.keys().next_back().copied()), fmt(b.asks.keys().next().copied()));
        let (seq, trade_id, size, side) = (b.sequence, b.last_trade_id, b.last_size.to_string(), b.last_side);
        let time = rfc3339(now_ns());
        self.publish((Channel::Ticker, p), |f| {
            Some(match f {
                Flavor::Atlas => json!({"type": "ticker", "productId": p.0, "price": price, "bestBid": bid,
                    "bestAsk": ask, "volume24h": volume, "time": time}),
                Flavor::Coinbase => json!({"type": "ticker", "sequence": seq, "product_id": Hub::cb_id(&row),
                    "price": price, "best_bid": bid, "best_ask": ask, "volume_24h": volume, "trade_id": trade_id,
                    "last_size": size, "side": side.map(|s| side_name(s.opposite())), "time": time}),
            })
        });
    }

    fn heartbeats(&mut self) {
        let keys: Vec<(Channel, ProductId)> = self
            .index
            .iter()
            .filter(|(k, v)| k.0 == Channel::Heartbeat && !v.is_empty())
            .map(|(k, _)| *k)
            .collect();
        let time = rfc3339(now_ns());
        for key in keys {
            let p = key.1;
            let Some(row) = self.product(p) else { continue };
            let (seq, last) = self.books.get(&p).map_or((0, 0), |b| (b.sequence, b.last_trade_id));
            let time = time.clone();
            self.publish(key, |f| {
                Some(match f {
                    Flavor::Atlas => json!({"type": "heartbeat", "productId": p.0, "sequence": seq,
                        "lastTradeId": last, "time": time}),
                    Flavor::Coinbase => {
                        json!({"type": "heartbeat", "product_id": Hub::cb_id(&row), "sequence": seq,
                        "last_trade_id": last, "time": time})
                    }
                })
            });
        }
    }

    async fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Subscribe { conn, flavor, participant, tx, wanted, reply } => {
                if let Some(tx) = tx {
                    self.subs.insert(
                        conn,
                        Sub { flavor, participant, tx, wanted: HashSet::new(), outbox: Vec::new() },
                    );
                } else if let Some(p) = participant
                    && let Some(sub) = self.subs.get_mut(&conn)
                {
                    // Authenticated by this subscribe message (the connection
                    // checked that it is not another participant's).
                    sub.participant = Some(p);
                }
                if wanted.iter().any(|(c, _)| *c == Channel::User) && participant.is_none() {
                    let _ = reply.send(Err("the user channel needs authentication: a broker's token or API key signature on the upgrade request, or key, passphrase, timestamp and signature in the subscribe message".into()));
                    return;
                }
                let Some(sub) = self.subs.get(&conn) else {
                    let _ = reply.send(Err("the connection is closed".into()));
                    return;
                };
                let total = sub.wanted.len() + wanted.iter().filter(|w| !sub.wanted.contains(w)).count();
                if total > SUBSCRIPTIONS_MAX {
                    let _ =
                        reply.send(Err(format!("at most {SUBSCRIPTIONS_MAX} channel-product subscriptions")));
                    return;
                }
                for (_, p) in &wanted {
                    if !self.books.contains_key(p) {
                        self.resync(Some(*p)).await;
                    }
                }
                for w in wanted {
                    let Some(sub) = self.subs.get_mut(&conn) else { break };
                    if sub.wanted.insert(w) {
                        if w.0 == Channel::User
                            && let Some(p) = sub.participant
                        {
                            self.users.entry((w.1, p)).or_default().push(conn);
                        }
                        self.index.entry(w).or_default().push(conn);
                        if w.0 == Channel::Level2 {
                            self.send_snapshot(conn, w.1);
                        }
                    }
                }
                let _ = reply.send(Ok(()));
            }
            Cmd::Unsubscribe { conn, wanted } => {
                let Some(sub) = self.subs.get_mut(&conn) else { return };
                let participant = sub.participant;
                let mut gone = Vec::new();
                for w in wanted {
                    if sub.wanted.remove(&w) {
                        gone.push(w);
                    }
                }
                for w in gone {
                    if let Some(v) = self.index.get_mut(&w) {
                        v.retain(|c| *c != conn);
                    }
                    if w.0 == Channel::User
                        && let Some(p) = participant
                    {
                        self.forget_user(w.1, p, conn);
                    }
                }
            }
            Cmd::Gone { conn } => self.kick(conn),
        }
    }
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

async fn hub(
    app: std::sync::Weak<App>,
    seq: atlas_journal::SequencerHandle,
    mut feed: atlas_journal::market::MarketFeed,
    mut cmds: mpsc::Receiver<Cmd>,
) {
    let mut hub = Hub {
        app,
        seq,
        books: HashMap::new(),
        subs: HashMap::default(),
        index: HashMap::new(),
        dirty: Vec::new(),
        users: HashMap::new(),
    };
    hub.resync(None).await;
    let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
    // The next flush is due this long after the last; with nothing waiting
    // when it falls due, the next message goes out as soon as it comes.
    let flush = tokio::time::sleep(FLUSH_EVERY_MIN);
    tokio::pin!(flush);
    loop {
        tokio::select! {
            batch = feed.recv() => match batch {
                Ok(b) => hub.apply(&b).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(batches = n, "market data hub fell behind the feed; reading the books again");
                    hub.resync(None).await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            cmd = cmds.recv() => match cmd {
                Some(c) => hub.command(c).await,
                None => return,
            },
            _ = beat.tick() => hub.heartbeats(),
            () = &mut flush, if !hub.dirty.is_empty() => {
                hub.flush();
                flush.as_mut().reset(tokio::time::Instant::now() + flush_interval(hub.subs.len()));
            }
        }
        if hub.app.strong_count() == 0 {
            return;
        }
    }
}

/// Resolves a parsed feed request against the listed products.
fn resolve(
    app: &App,
    flavor: Flavor,
    req: &atlas_wire::feed::FeedRequest,
) -> Result<Vec<(Channel, ProductId)>, String> {
    use atlas_wire::feed::ProductRef;
    let mut wanted = Vec::new();
    for (name, products) in &req.channels {
        let channel = Channel::parse(name).ok_or_else(|| format!("unknown channel {name:?}"))?;
        for p in products {
            let found = match (flavor, p) {
                (_, ProductRef::Id(n)) => app.product(ProductId(*n)),
                (Flavor::Atlas, ProductRef::Name(s)) => s
                    .parse::<u32>()
                    .ok()
                    .and_then(|n| app.product(ProductId(n)))
                    .or_else(|| app.product_by_symbol(s)),
                (Flavor::Coinbase, ProductRef::Name(s)) => s
                    .rsplit_once('-')
                    .and_then(|(sym, cur)| app.product_by_symbol(sym).filter(|p| p.currency == cur)),
            };
            let id = found.ok_or_else(|| format!("unknown product {p:?}"))?.id;
            if !wanted.contains(&(channel, id)) {
                wanted.push((channel, id));
            }
        }
    }
    Ok(wanted)
}

/// `GET /atlas/api/ws`: the market data feed (WebSocket).
pub async fn ws_atlas(
    State(ctx): St,
    origin: crate::audit::Origin,
    failure: Option<axum::Extension<crate::auth::AuthFailure>>,
    caller: Result<crate::auth::Caller, ApiError>,
    upgrade: FeedUpgrade,
) -> Result<Response, ApiError> {
    ws(ctx, origin, participant(failure, caller)?, upgrade, Flavor::Atlas)
}

/// The broker's participant when the upgrade request carried a credential (a
/// bad one is refused like on any other endpoint).
fn participant(
    failure: Option<axum::Extension<crate::auth::AuthFailure>>,
    caller: Result<crate::auth::Caller, ApiError>,
) -> Result<Option<atlas_types::ParticipantId>, ApiError> {
    match (failure, caller) {
        // A credential was sent but refused: refused here too.
        (Some(_), Err(e)) => Err(e),
        (_, Ok(c)) => c.broker().map(Some),
        // No credential at all: the public channels only.
        (None, Err(_)) => Ok(None),
    }
}

/// `GET /coinbase/ws`: the same feed in Coinbase Exchange's shape.
pub async fn ws_coinbase(
    State(ctx): St,
    origin: crate::audit::Origin,
    failure: Option<axum::Extension<crate::auth::AuthFailure>>,
    caller: Result<crate::auth::Caller, ApiError>,
    upgrade: FeedUpgrade,
) -> Result<Response, ApiError> {
    ws(ctx, origin, participant(failure, caller)?, upgrade, Flavor::Coinbase)
}

/// A WebSocket upgrade request (RFC 6455 §4.2.1). Taken apart here rather
/// than by axum's `WebSocketUpgrade`, whose socket keeps its stream to itself:
/// the fan-out writes frames built once for all subscribers (`text_frame`)
/// straight to each connection's stream.
pub struct FeedUpgrade {
    key: HeaderValue,
    on_upgrade: hyper::upgrade::OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for FeedUpgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let has_token =
            |name: header::HeaderName, token: &str| {
                parts.headers.get_all(name).iter().any(|v| {
                    v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                })
            };
        let refuse = |detail: &str| ApiError::validation(detail).into_response();
        // The route also answers HEAD, which must not switch protocols.
        if parts.method != axum::http::Method::GET {
            return Err(refuse("a WebSocket upgrade is a GET request"));
        }
        if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
            return Err(refuse(
                "this is a WebSocket endpoint: the request needs Connection: Upgrade and Upgrade: websocket",
            ));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
            let mut r = ApiError::new(
                StatusCode::UPGRADE_REQUIRED,
                "UNSUPPORTED_WEBSOCKET_VERSION",
                "Sec-WebSocket-Version must be 13",
            )
            .into_response();
            r.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return Err(r);
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(refuse("Sec-WebSocket-Key is missing"));
        };
        // RFC 6455 4.2.1: the key is a 16-byte nonce in base64; anything else is
        // a malformed handshake, answered 400 rather than upgraded.
        use base64::Engine as _;
        let nonce = base64::engine::general_purpose::STANDARD.decode(key.as_bytes());
        if !nonce.is_ok_and(|n| n.len() == 16) {
            return Err(refuse("Sec-WebSocket-Key must be 16 bytes in base64"));
        }
        let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(refuse("this connection cannot be upgraded to a WebSocket"));
        };
        Ok(FeedUpgrade { key, on_upgrade })
    }
}

/// A feed connection's WebSocket.
type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

fn ws(
    ctx: Arc<crate::app::Ctx>,
    origin: crate::audit::Origin,
    participant: Option<atlas_types::ParticipantId>,
    upgrade: FeedUpgrade,
    flavor: Flavor,
) -> Result<Response, ApiError> {
    let md = ctx.app.market.get().ok_or_else(ApiError::storage_unavailable)?;
    let ip = origin.0.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    {
        let mut per_ip = md.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = per_ip.entry(ip).or_insert(0);
        if md.per_ip_max > 0 && *n >= md.per_ip_max {
            return Err(ApiError {
                retry_after_s: Some(1),
                ..ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "RATE_LIMITED",
                    format!("at most {} feed connections per address", md.per_ip_max),
                )
            });
        }
        *n += 1;
    }
    // Counted until the connection ends — or, if the upgrade never completes
    // (the client went away), until the task holding the slot ends.
    let slot = FeedSlot { app: ctx.app.clone(), ip };
    let FeedUpgrade { key, on_upgrade } = upgrade;
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(Some(CLIENT_MESSAGE_BYTES_MAX))
            .max_frame_size(Some(CLIENT_MESSAGE_BYTES_MAX));
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        connection(&slot.app, socket, flavor, participant, slot.ip).await;
        drop(slot);
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).map_err(|_| ApiError::internal())?);
    Ok(r)
}

/// One counted feed connection of an address; uncounted when dropped.
struct FeedSlot {
    app: Arc<App>,
    ip: IpAddr,
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        if let Some(md) = self.app.market.get() {
            let mut per_ip = md.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(n) = per_ip.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_ip.remove(&self.ip);
                }
            }
        }
    }
}

fn error_message(message: &str, reason: &str) -> Message {
    Message::Text(Utf8Bytes::from(json!({"type": "error", "message": message, "reason": reason}).to_string()))
}

async fn connection(
    app: &Arc<App>,
    mut socket: Socket,
    flavor: Flavor,
    mut participant: Option<atlas_types::ParticipantId>,
    ip: IpAddr,
) {
    let Some(md) = app.market.get() else { return };
    let conn = md.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(CONNECTION_BATCHES);
    let mut write_buf: Vec<Bytes> = Vec::new();
    let mut tx = Some(tx);
    let mut subscribed_once = false;
    loop {
        tokio::select! {
            incoming = socket.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                        // Said plainly before the connection ends, with the
                        // WebSocket code for it (1009, message too big).
                        let _ = socket.send(error_message(
                            &format!("a client message is at most {CLIENT_MESSAGE_BYTES_MAX} bytes"),
                            "message too big",
                        )).await;
                        let _ = socket.send(Message::Close(Some(CloseFrame {
                            code: CloseCode::Size,
                            reason: Utf8Bytes::from_static("message too big"),
                        }))).await;
                        break;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue, // pings are answered by the library; binary is ignored
                };
                let msg = match atlas_wire::feed::parse(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = socket.send(error_message(&e, "bad request")).await;
                        continue;
                    }
                };
                if let Some(a) = msg.auth.as_ref().filter(|_| msg.kind == atlas_wire::feed::Kind::Subscribe) {
                    // Coinbase's message-level authentication: a signature over
                    // timestamp + "GET" + "/users/self/verify". A failure ends
                    // the connection, and failures back off per key and per
                    // address like failed logins (FIX logons too).
                    let throttle = format!("feed-key:{}", a.key);
                    let who = if app.logins.check(&throttle, Some(ip)).is_err() {
                        let _ = socket.send(error_message("too many failed authentications; retry later", "authentication failed")).await;
                        let _ = socket.send(Message::Close(None)).await;
                        break;
                    } else {
                        let signed = crate::gateway::Signed {
                            key: &a.key,
                            timestamp: &a.timestamp,
                            signature: &a.signature,
                            passphrase: Some(&a.passphrase),
                        };
                        let who = crate::gateway::verify_signed(app, &signed, "GET", "/users/self/verify", b"")
                            .await
                            .ok()
                            .and_then(|c| c.broker().ok());
                        match who {
                            Some(_) => app.logins.succeeded(&throttle),
                            None => app.logins.failed(&throttle, Some(ip)),
                        }
                        who
                    };
                    match who {
                        Some(p) if participant.is_none_or(|q| q == p) => participant = Some(p),
                        Some(_) => {
                            let _ = socket.send(error_message("this connection is already authenticated as another participant", "authentication failed")).await;
                            let _ = socket.send(Message::Close(None)).await;
                            break;
                        }
                        None => {
                            tracing::info!("feed subscription with a bad signature");
                            let _ = socket.send(error_message("Authentication Failed: a bad or expired signature, key or passphrase", "authentication failed")).await;
                            let _ = socket.send(Message::Close(None)).await;
                            break;
                        }
                    }
                }
                let wanted = match resolve(app, flavor, &msg) {
                    Ok(w) => w,
                    Err(e) => {
                        let _ = socket.send(error_message(&e, "bad request")).await;
                        continue;
                    }
                };
                if msg.kind == atlas_wire::feed::Kind::Unsubscribe {
                    let _ = md.cmds.send(Cmd::Unsubscribe { conn, wanted }).await;
                    continue;
                }
                let (reply, answer) = oneshot::channel();
                let cmd = Cmd::Subscribe {
                    conn,
                    flavor,
                    participant,
                    tx: if subscribed_once { None } else { tx.take() },
                    wanted: wanted.clone(),
                    reply,
                };
                if md.cmds.send(cmd).await.is_err() {
                    break;
                }
                subscribed_once = true;
                match answer.await {
                    Ok(Ok(())) => {
                        let channels: Vec<&str> = {
                            let mut c: Vec<&str> = wanted.iter().map(|(ch, _)| ch.name()).collect();
                            c.dedup();
                            c
                        };
                        let ack = match flavor {
                            Flavor::Atlas => json!({"type": "subscriptions", "channels": channels,
                                "productIds": wanted.iter().map(|(_, p)| p.0).collect::<std::collections::BTreeSet<_>>()}),
                            Flavor::Coinbase => json!({"type": "subscriptions", "channels": channels.iter().map(|c| json!({"name": c})).collect::<Vec<_>>()}),
                        };
                        if socket.send(Message::Text(Utf8Bytes::from(ack.to_string()))).await.is_err() {
                            break;
                        }
                    }
                    Ok(Err(e)) => {
                        let _ = socket.send(error_message(&e, "bad request")).await;
                    }
                    Err(_) => break,
                }
            }
            out = rx.recv(), if subscribed_once => match out {
                Some(batch) => {
                    if write_frames(&mut socket, batch, &mut rx, &mut write_buf).await.is_err() {
                        break;
                    }
                }
                None => {
                    // The hub dropped us: we could not keep up.
                    let _ = socket.send(error_message(
                        &format!("this connection fell more than {CONNECTION_QUEUE} messages behind the feed; reconnect and resubscribe"),
                        "slow consumer",
                    )).await;
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            },
        }
    }
    let _ = md.cmds.send(Cmd::Gone { conn }).await;
}

/// Bytes of frames gathered before they are written, at most.
const WRITE_CHUNK_BYTES: usize = 64 * 1024;

/// Writes frames from the hub, and whatever else the hub has queued for the
/// connection by now, in writes of up to `WRITE_CHUNK_BYTES` (so TLS records
/// come out full, not one per message). What tungstenite has queued itself
/// (a pong, say) goes first, so frames never interleave.
async fn write_frames(
    socket: &mut Socket,
    first: Vec<Bytes>,
    rx: &mut mpsc::Receiver<Vec<Bytes>>,
    frames: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    socket.flush().await.map_err(std::io::Error::other)?;
    let io = socket.get_mut();
    frames.clear();
    let mut gathered = 0;
    let mut next = Some(first);
    while let Some(batch) = next.take() {
        for frame in batch {
            gathered += frame.len();
            frames.push(frame);
            if gathered >= WRITE_CHUNK_BYTES {
                write_all_vectored(io, frames).await?;
                frames.clear();
                gathered = 0;
            }
        }
        next = rx.try_recv().ok();
    }
    write_all_vectored(io, frames).await?;
    frames.clear();
    io.flush().await?;
    // An idle connection keeps a small list, not its largest burst's.
    if frames.capacity() > WRITE_CHUNK_BYTES / 64 {
        *frames = Vec::new();
    }
    Ok(())
}

/// Writes `frames` whole, handing them to the stream as they are (TLS
/// copies them into its records anyway, so gathering them into one buffer
/// first would copy every byte twice).
async fn write_all_vectored<W: tokio::io::AsyncWrite + Unpin>(
    io: &mut W,
    frames: &[Bytes],
) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        frames.iter().filter(|f| !f.is_empty()).map(|f| std::io::IoSlice::new(f)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = io.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// A product's ticker.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ticker {
    product_id: u32,
    symbol: String,
    /// The last trade's price (null before the first trade).
    price: Option<String>,
    /// The last trade's quantity.
    size: Option<i64>,
    trade_id: Option<u64>,
    /// The last trade's time.
    time: Option<String>,
    best_bid: Option<String>,
    best_ask: Option<String>,
    /// Quantity traded in the last 24 hours (busted trades excluded).
    volume24h: i64,
    /// The level2 feed sequence the best bid and offer reflect.
    sequence: u64,
}

/// The ticker
///
/// Last trade, best bid and offer, and the 24-hour volume.
#[utoipa::path(get, path = "/atlas/api/ticker/{product}", tag = "marketdata",
    params(("product" = u32, Path, description = "Product id")), security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "The ticker", body = Ticker),
              (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn ticker(
    State(ctx): St,
    _caller: crate::auth::Caller,
    crate::error::Id(id): crate::error::Id<u32>,
) -> Result<axum::Json<Ticker>, ApiError> {
    let app = &ctx.app;
    let product = app
        .product(ProductId(id))
        .ok_or_else(|| ApiError::not_found("PRODUCT_NOT_FOUND", "no such product"))?;
    let pid = product.id;
    let (seq, best) = app
        .seq
        .query_market(move |e, m| (m.get(pid), e.best(pid)))?
        .await
        .map_err(|_| ApiError::storage_unavailable())?;
    let (bid, ask) = best.unwrap_or((None, None));
    let (last, volume) = last_trade_and_volume(app, pid).await?;
    let last = last.as_ref();
    Ok(axum::Json(Ticker {
        product_id: pid.0,
        symbol: product.symbol.clone(),
        price: last.map(|t| format_price(t.price, &product)),
        size: last.map(|t| t.quantity.0),
        trade_id: last.map(|t| t.id.0),
        time: last.map(|t| rfc3339(t.time.0)),
        best_bid: bid.map(|l| format_price(l.price, &product)),
        best_ask: ask.map(|l| format_price(l.price, &product)),
        volume24h: volume,
        sequence: seq,
    }))
}

/// Candle query parameters.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CandleParams {
    /// `1m`, `5m`, `1h` or `1d` (default `1m`).
    interval: Option<String>,
    /// Start (RFC 3339, inclusive; default: 300 intervals before `to`).
    from: Option<String>,
    /// End (RFC 3339, exclusive; default now).
    to: Option<String>,
}

/// One interval's prices and volume.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Candle {
    /// The interval's start (RFC 3339).
    start: String,
    open: String,
    high: String,
    low: String,
    close: String,
    /// Quantity traded.
    volume: i64,
    /// Trades in the interval.
    trades: u32,
}

/// Candles of a product.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Candles {
    product_id: u32,
    interval: String,
    /// Oldest first; intervals without trades are left out.
    candles: Vec<Candle>,
}

/// Candles per request, at most.
pub const CANDLES_MAX: i64 = 1_000;
/// Trades read for one candle request, at most.
const CANDLE_TRADES_MAX: u32 = 500_000;

/// One interval of trades: open, high, low and close prices (ticks), the
/// quantity traded and the number of trades.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ohlcv {
    pub(crate) open: i64,
    pub(crate) high: i64,
    pub(crate) low: i64,
    pub(crate) close: i64,
    pub(crate) volume: i64,
    pub(crate) trades: u32,
}

/// The candles of `rows` (trades in trade order) by interval start, each
/// interval `step` ns long from the epoch; intervals without trades are absent.
/// Both the native and the Coinbase-shaped candles are built here.
pub(crate) fn candle_buckets(
    rows: &[atlas_journal::projection::TradeRow],
    step: i64,
) -> BTreeMap<i64, Ohlcv> {
    let mut buckets: BTreeMap<i64, Ohlcv> = BTreeMap::new();
    for t in rows {
        let (price, start) = (t.price.0, t.time.0 - t.time.0.rem_euclid(step));
        let c = buckets.entry(start).or_insert(Ohlcv {
            open: price,
            high: price,
            low: price,
            close: price,
            volume: 0,
            trades: 0,
        });
        c.high = c.high.max(price);
        c.low = c.low.min(price);
        c.close = price;
        c.volume += t.quantity.0;
        c.trades += 1;
    }
    buckets
}

/// A product's last trade and the quantity traded in the last 24 hours, for
/// both tickers.
pub(crate) async fn last_trade_and_volume(
    app: &App,
    product: ProductId,
) -> Result<(Option<atlas_journal::projection::TradeRow>, i64), atlas_store::DbError> {
    let last = app.db.latest_trades(product, 1).await?.into_iter().next();
    let volume = app.db.volume_since(product, now_ns() - 86_400 * 1_000_000_000).await?;
    Ok((last, volume))
}

/// Candles
///
/// Open, high, low, close and volume per interval, built from the trades table
/// (so they survive restarts; busted trades are left out).
#[utoipa::path(get, path = "/atlas/api/candles/{product}", tag = "marketdata",
    params(("product" = u32, Path, description = "Product id"), CandleParams), security(("bearer" = []), ("apiKey" = [])),
    responses((status = 200, description = "The candles", body = Candles),
              (status = 404, description = "`PRODUCT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn candles(
    State(ctx): St,
    _caller: crate::auth::Caller,
    crate::error::Id(id): crate::error::Id<u32>,
    crate::error::Params(p): crate::error::Params<CandleParams>,
) -> Result<axum::Json<Candles>, ApiError> {
    let app = &ctx.app;
    let product = app
        .product(ProductId(id))
        .ok_or_else(|| ApiError::not_found("PRODUCT_NOT_FOUND", "no such product"))?;
    let interval = p.interval.unwrap_or_else(|| "1m".to_owned());
    let step_s: i64 = match interval.as_str() {
        "1m" => 60,
        "5m" => 300,
        "1h" => 3_600,
        "1d" => 86_400,
        _ => return Err(ApiError::validation("interval must be 1m, 5m, 1h or 1d")),
    };
    let step = step_s * 1_000_000_000;
    let to = match &p.to {
        Some(t) => parse_rfc3339(t).ok_or_else(|| ApiError::validation("to must be an RFC 3339 time"))?,
        None => now_ns(),
    };
    let from = match &p.from {
        Some(f) => parse_rfc3339(f).ok_or_else(|| ApiError::validation("from must be an RFC 3339 time"))?,
        None => to - 300 * step,
    };
    if from >= to || (to - from) / step > CANDLES_MAX {
        return Err(ApiError::validation(format!(
            "from must be before to, at most {CANDLES_MAX} intervals apart"
        )));
    }
    let start = from - from.rem_euclid(step);
    let rows = app.db.trades_between(product.id, start, to, CANDLE_TRADES_MAX).await?;
    let fmt = |x: i64| format_price(atlas_types::Price(x), &product);
    Ok(axum::Json(Candles {
        product_id: product.id.0,
        interval,
        candles: candle_buckets(&rows, step)
            .into_iter()
            .map(|(b, c)| Candle {
                start: rfc3339(b),
                open: fmt(c.open),
                high: fmt(c.high),
                low: fmt(c.low),
                close: fmt(c.close),
                volume: c.volume,
                trades: c.trades,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that takes at most `step` bytes per call, split anywhere
    /// (across and inside the slices), and is not ready every other call.
    struct Trickle {
        taken: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl tokio::io::AsyncWrite for Trickle {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.calls += 1;
            if self.calls.is_multiple_of(2) {
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(self.step - n);
                self.taken.extend_from_slice(&b[..k]);
                n += k;
                if n == self.step {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn frames_are_written_whole_and_in_order_through_partial_writes() {
        let frames: Vec<Bytes> = (0..300u32)
            .map(|i| Bytes::from(format!("frame {i}:{}", "x".repeat((i as usize * 37) % 500))))
            .chain([Bytes::new(), Bytes::from_static(b"last")])
            .collect();
        let whole: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for step in [1, 7, 100, 4096, 1 << 20] {
            let mut w = Trickle { taken: Vec::new(), step, calls: 0 };
            rt.block_on(write_all_vectored(&mut w, &frames)).unwrap();
            assert!(w.taken == whole, "step {step}: {} of {} bytes", w.taken.len(), whole.len());
        }
    }

    #[test]
    fn candles_take_open_high_low_close_and_volume_per_interval() {
        use atlas_journal::projection::TradeRow;
        use atlas_types::{OrderId, ParticipantId, Price, Qty, Seq, Timestamp, TradeId};
        const MIN: i64 = 60_000_000_000;
        let trade = |id: u64, at: i64, price: i64, qty: i64| TradeRow {
            id: TradeId(id),
            product: ProductId(1),
            price: Price(price),
            quantity: Qty(qty),
            maker_order: OrderId(1),
            maker_participant: ParticipantId(1),
            taker_order: OrderId(2),
            taker_participant: ParticipantId(2),
            aggressor: Side::Buy,
            seq: Seq(id),
            time: Timestamp(at),
        };
        // Two trades in the minute before the epoch (starts are floored, not
        // truncated toward zero), four in minute 0 with the high and low in the
        // middle, none in minute 1, one on minute 2's first nanosecond.
        let rows = [
            trade(1, -MIN, 50, 1),
            trade(2, -1, 60, 2),
            trade(3, 0, 100, 1),
            trade(4, 10, 120, 2),
            trade(5, 20, 90, 3),
            trade(6, MIN - 1, 110, 4),
            trade(7, 2 * MIN, 70, 5),
        ];
        let got: Vec<(i64, Ohlcv)> = candle_buckets(&rows, MIN).into_iter().collect();
        let c = |open, high, low, close, volume, trades| Ohlcv { open, high, low, close, volume, trades };
        assert_eq!(
            got,
            vec![
                (-MIN, c(50, 60, 50, 60, 3, 2)),
                (0, c(100, 120, 90, 110, 10, 4)),
                (2 * MIN, c(70, 70, 70, 70, 5, 1)),
            ]
        );
        assert!(candle_buckets(&[], MIN).is_empty());
    }

    #[test]
    fn frames_read_back_as_the_texts_they_hold() {
        // Every length encoding and both of its edges, back to back as a
        // connection writes them.
        let lengths = [0usize, 1, 125, 126, 127, 65_535, 65_536, 70_000];
        let texts: Vec<String> =
            lengths.iter().map(|n| (0..*n).map(|i| char::from(b'a' + (i % 26) as u8)).collect()).collect();
        let mut wire = Vec::new();
        for t in &texts {
            wire.extend_from_slice(&text_frame(t));
        }
        let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
        let mut client = tokio_tungstenite::tungstenite::protocol::WebSocket::from_raw_socket(
            std::io::Cursor::new(wire),
            Role::Client,
            Some(config),
        );
        for t in &texts {
            match client.read() {
                Ok(Message::Text(got)) => assert_eq!(got.as_str(), t.as_str(), "a {}-byte text", t.len()),
                other => panic!("a {}-byte text read as {other:?}", t.len()),
            }
        }
        assert!(client.read().is_err(), "nothing follows the last frame");
    }
}
