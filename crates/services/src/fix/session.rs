//! One FIX 4.4 session: logon (API key, passphrase and an HMAC signature, as
//! Coinbase's FIX gateway), the session layer as the specification has it
//! (sequence numbers checked and persisted, resend requests answered with
//! possible-duplicate resends and gap fills, gaps asked for, heartbeats and test
//! requests, session-level rejects, logout), and the application messages
//! (NewOrderSingle, OrderCancelRequest, OrderCancelReplaceRequest,
//! OrderMassCancelRequest) through the same checks and sequencer as REST.
//!
//! Order entry is pipelined: a message is checked and submitted, and the
//! session goes on reading; the outcomes are taken in submission order as they
//! come, so a client may have thousands in flight. Execution reports come from
//! the committed batches on the market feed (`exec.rs`); only refusals come
//! from the outcomes.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, oneshot, watch};

use atlas_engine::{Amend, CommandKind, Event, NewOrder, OrderType, SelfTradePrevention, TimeInForce};
use atlas_journal::{Actor, Receipt, SubmitError, Ticket};
use atlas_store::{OrderFilter, ProductRow};
use atlas_types::{OrderId, ParticipantId, Qty, Side};
use atlas_wire::fix::{self, Frame, Message};

use super::exec::{self, Asked, Fields, Orders, Request, Terms};
use super::store::SessionStore;
use super::{Acceptor, COMP_ID};
use crate::auth::{Audience, Caller, Principal, Role};
use crate::error::ApiError;
use crate::model::{now_ns, parse_price};
use atlas_wire::fix_dictionary::{self as dictionary, reason};

/// The first message must arrive within this.
const LOGON_TIMEOUT: Duration = Duration::from_secs(10);
/// SendingTime may differ from the server's clock by this much.
const SENDING_TIME_TOLERANCE_NS: i64 = 120 * 1_000_000_000;
/// Heartbeat intervals accepted (seconds).
const HEARTBEAT_RANGE: std::ops::RangeInclusive<u64> = 1..=300;
/// Orders, cancels and replaces in flight per session, at most (then the
/// session stops reading until some are answered).
const IN_FLIGHT_MAX: usize = 16_384;
/// How long a cancel or replace waits, at most, for the commit of an order
/// this session entered just before it (a refusal ends the wait at once).
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);
/// Open orders loaded at logon to follow, at most.
const OPEN_ORDERS_LOADED_MAX: usize = 100_000;
/// Orders reported for one OrderMassStatusRequest, at most.
const MASS_STATUS_REPORTS_MAX: usize = 10_000;
/// Bytes read at once.
const READ_CHUNK: usize = 64 * 1024;
/// How long a second logon of a session waits for the first connection to end.
const PREVIOUS_CONNECTION_GRACE: Duration = Duration::from_secs(2);
/// Messages that arrived ahead of a gap, kept until it is filled, at most.
const EARLY_MESSAGES_MAX: usize = 1_000;

/// Message types of FIX 4.4 (anything else is an invalid MsgType).
const FIX44_TYPES: &[&str] = &[
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L",
    "M", "N", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z", "a", "b", "c", "d", "e", "f", "g", "h",
    "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z", "AA", "AB",
    "AC", "AD", "AE", "AF", "AG", "AH", "AI", "AJ", "AK", "AL", "AM", "AN", "AO", "AP", "AQ", "AR", "AS",
    "AT", "AU", "AV", "AW", "AX", "AY", "AZ", "BA", "BB", "BC", "BD", "BE", "BF", "BG", "BH",
];
/// The session-level (administrative) types.
const ADMIN_TYPES: &[&[u8]] = &[b"0", b"1", b"2", b"3", b"4", b"5", b"A"];

/// What the outcome of a submitted command is needed for (a new order's
/// `read`: when the read that completed its message returned).
enum Pending {
    New { cl_ord_id: String, order: NewOrder, symbol: String, read: Instant },
    Cancel { order: OrderId, cl_ord_id: String, orig: Option<String> },
    Replace { order: OrderId, cl_ord_id: String, orig: Option<String> },
    Mass { cl_ord_id: String, request_type: String },
}

/// The orders a session has in flight under one ClOrdID: one, unless the
/// client repeated the ClOrdID before the first was answered.
struct InFlight {
    /// When the read that completed the first of them returned.
    read: Instant,
    count: u32,
}

/// One of the orders in flight under `cl_ord_id` was answered: the entry goes
/// with the last of them. Returns the first one's read time, if there was one
/// (an accepted order's ack time is measured from it: exact, unless an earlier
/// order under the same ClOrdID was refused while this one was in flight,
/// when it errs long).
fn answered(
    entered: &mut HashMap<String, InFlight, foldhash::quality::RandomState>,
    cl_ord_id: &str,
) -> Option<Instant> {
    // One lookup in the usual case of one order per ClOrdID.
    let e = entered.remove(cl_ord_id)?;
    if e.count > 1 {
        entered.insert(cl_ord_id.to_owned(), InFlight { read: e.read, count: e.count - 1 });
    }
    Some(e.read)
}

/// Cancel-on-disconnect (tag 8013, as Coinbase): all the participant's orders,
/// or those entered in this session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CancelOnDisconnect {
    No,
    All,
    Session,
}

/// Whether to go on.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Close,
}

pub use atlas_wire::fix::parse_utc_timestamp;

/// The Coinbase-style logon signature over SendingTime, MsgType, MsgSeqNum,
/// SenderCompID, TargetCompID and Password joined by SOH.
pub fn logon_signature(secret_b64: &str, m: &Message) -> Option<Vec<u8>> {
    let secret = base64::engine::general_purpose::STANDARD.decode(secret_b64).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).ok()?;
    for (i, tag) in [52u32, 35, 34, 49, 56, 554].into_iter().enumerate() {
        if i > 0 {
            mac.update(&[fix::SOH]);
        }
        mac.update(m.get(tag).unwrap_or_default());
    }
    Some(mac.finalize().into_bytes().to_vec())
}

/// An authenticated logon.
struct Authenticated {
    key: String,
    caller: Caller,
    me: ParticipantId,
}

/// Checks a Logon's credentials. The error is the Logout text.
async fn authenticate(acc: &Acceptor, m: &Message) -> Result<Authenticated, &'static str> {
    const FAILED: &str = "logon refused: bad credentials";
    let key = m.text(49).ok_or(FAILED)?;
    if m.text(56) != Some(COMP_ID) {
        return Err("logon refused: TargetCompID must be ATLAS");
    }
    if m.text(553).is_some_and(|k| k != key) {
        return Err(FAILED);
    }
    if key.is_empty() || key.len() > 64 {
        return Err(FAILED);
    }
    let row = match acc.app.db.api_key(key).await {
        Ok(Some(row)) if !row.revoked => row,
        Ok(_) => return Err(FAILED),
        Err(_) => return Err("logon refused: the exchange is unavailable"),
    };
    let passphrase = m.get(554).ok_or(FAILED)?;
    let hex: String = Sha256::digest(passphrase).iter().map(|b| format!("{b:02x}")).collect();
    if hex != row.passphrase_sha256 {
        return Err(FAILED);
    }
    let given = m.text(96).and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
    let want = logon_signature(&row.secret, m);
    match (given, want) {
        // Constant-time comparison.
        (Some(g), Some(w))
            if g.len() == w.len() && g.iter().zip(&w).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0 => {}
        _ => return Err(FAILED),
    }
    let participant = match acc.app.db.participant(row.participant).await {
        Ok(Some(p)) if p.status == "ACTIVE" && !acc.app.is_disabled(p.id) => p.id,
        Ok(_) => return Err(FAILED),
        Err(_) => return Err("logon refused: the exchange is unavailable"),
    };
    Ok(Authenticated {
        key: key.to_owned(),
        caller: Caller {
            principal: Principal::Key(row.id),
            role: Role::Broker,
            participant: Some(participant),
            audience: Audience::External,
        },
        me: participant,
    })
}

/// Reads a connection's first message. Anything garbled before it (a wrong
/// BodyLength, CheckSum or BeginString, or bytes that are not FIX) ends the
/// connection at once: the specification's answer to a garbled Logon, which
/// QuickFIX's acceptance scripts 1d expect. (Dropping it and waiting for a
/// Logon that cannot come only ended the connection at the logon timeout.)
async fn read_message<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut Vec<u8>) -> Option<Message> {
    loop {
        match fix::frame(buf) {
            Frame::Message(n, m) => {
                buf.drain(..n);
                return Some(m);
            }
            Frame::Garbled(..) => return None,
            Frame::Incomplete => {}
        }
        buf.reserve(READ_CHUNK);
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Runs one connection until it ends.
pub async fn run<S>(acc: Arc<Acceptor>, stream: S, ip: IpAddr, shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut inbuf = Vec::with_capacity(READ_CHUNK);
    let Ok(Some(logon)) = tokio::time::timeout(LOGON_TIMEOUT, read_message(&mut rd, &mut inbuf)).await else {
        return;
    };
    // Anything but a Logon first: disconnect without a word (as the
    // specification says).
    if logon.msg_type() != b"A" {
        return;
    }
    // Failed logons back off like failed password logins (per key and per IP),
    // before any database or signature work.
    let throttle_name = format!("fix-key:{}", logon.text(49).unwrap_or_default());
    let outcome = match acc.app.logins.check(&throttle_name, Some(ip)) {
        Err(_) => Err("logon refused: too many failed logons; retry later"),
        Ok(()) => {
            let outcome = authenticate(&acc, &logon).await;
            match &outcome {
                Ok(_) => acc.app.logins.succeeded(&throttle_name),
                Err(_) => acc.app.logins.failed(&throttle_name, Some(ip)),
            }
            outcome
        }
    };
    let auth = match outcome {
        Ok(a) => a,
        Err(text) => {
            tracing::info!(%ip, "FIX logon refused");
            let sender = logon.text(49).filter(|s| s.len() <= 64).unwrap_or("UNKNOWN");
            let msg = fix::encode(&[
                (35, b"5"),
                (34, b"1"),
                (49, COMP_ID.as_bytes()),
                (52, exec::utc_timestamp(now_ns()).as_bytes()),
                (56, sender.as_bytes()),
                (58, text.as_bytes()),
            ]);
            let _ = wr.write_all(&msg).await;
            let _ = wr.flush().await;
            return;
        }
    };
    // One connection per session. A client reconnecting at once may arrive
    // while its previous connection is still winding down (final Logout,
    // cancel-on-disconnect): give that a moment before refusing.
    let mut waited = Duration::ZERO;
    loop {
        let inserted =
            acc.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(auth.key.clone());
        if inserted {
            break;
        }
        if waited >= PREVIOUS_CONNECTION_GRACE {
            // Logged on elsewhere: the established session goes on.
            tracing::info!(%ip, participant = auth.me.0, "FIX logon refused: the session is already logged on");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    let key = auth.key.clone();
    let acc2 = acc.clone();
    let _live = scopeguard(move || {
        acc2.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
    });
    let root = acc.root.clone();
    let key = auth.key.clone();
    let store = match tokio::task::spawn_blocking(move || SessionStore::open(&root, &key)).await {
        Ok(Ok(s)) => s,
        _ => {
            tracing::error!("FIX session store could not be opened");
            return;
        }
    };
    let mut s = Session {
        app: acc.app.clone(),
        ip,
        key: auth.key,
        caller: auth.caller,
        me: auth.me,
        store,
        out: Vec::with_capacity(READ_CHUNK),
        heartbeat: Duration::from_secs(30),
        last_in: Instant::now(),
        last_out: Instant::now(),
        test_request: None,
        resend_until: None,
        early: Default::default(),
        cod: CancelOnDisconnect::No,
        orders: Orders::default(),
        entered: HashMap::default(),
        ack_latency: crate::metrics::fix_order_ack(),
        in_flight: VecDeque::new(),
        feed_seen: 0,
        feed_due: 0,
        feed: acc.app.seq.market_feed(),
        feed_lost: None,
        logout_sent: false,
        reject_counter: 0,
        products: Default::default(),
        symbols: Default::default(),
    };
    if s.logon(&logon).await == Flow::Go {
        tracing::info!(%ip, participant = s.me.0, "FIX session logged on");
        s.load_open_orders().await;
        s.main_loop(&mut rd, &mut wr, inbuf, shutdown).await;
        tracing::info!(%ip, participant = s.me.0, "FIX session ended");
    } else {
        let _ = s.write_out(&mut wr).await;
    }
    // The next expected number, which is written with what is sent only.
    if let Err(e) = s.store.save() {
        tracing::error!(error = %e, "FIX session store write failed");
    }
    s.cancel_on_disconnect().await;
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// The outcome of the oldest command in flight, once it is there (never, while
/// none is in flight). The caller then takes that command off the queue.
fn oldest_outcome(
    in_flight: &mut VecDeque<(Ticket, Pending)>,
) -> impl Future<Output = Result<Receipt, SubmitError>> + '_ {
    std::future::poll_fn(move |cx| match in_flight.front_mut() {
        Some((ticket, _)) => {
            std::pin::Pin::new(ticket).poll(cx).map(|r| r.unwrap_or(Err(SubmitError::Stopped)))
        }
        None => std::task::Poll::Pending,
    })
}

struct Session {
    app: Arc<crate::app::App>,
    ip: IpAddr,
    key: String,
    caller: Caller,
    me: ParticipantId,
    store: SessionStore,
    out: Vec<u8>,
    heartbeat: Duration,
    last_in: Instant,
    last_out: Instant,
    /// Our TestRequest's id and when it was sent.
    test_request: Option<(String, Instant)>,
    /// A ResendRequest of ours is outstanding up to this sequence number.
    resend_until: Option<u64>,
    /// Messages received ahead of a gap, by sequence number.
    early: std::collections::BTreeMap<u64, Message>,
    cod: CancelOnDisconnect,
    orders: Orders,
    /// ClOrdIDs entered here whose orders are in flight: neither shown by the
    /// feed nor refused yet.
    entered: HashMap<String, InFlight, foldhash::quality::RandomState>,
    /// Order-to-ack latency: from that read to the order's first report
    /// (new or rejected) queued for writing, which the same loop turn writes.
    ack_latency: metrics::Histogram,
    /// What was submitted and not answered yet, in submission order (at most
    /// `IN_FLIGHT_MAX`). Refusals are reported from here; accepted new orders
    /// from the feed. Awaited in the session's own task: the commit that
    /// answers them also publishes the batch that reports them, so one wake
    /// serves both.
    in_flight: VecDeque<(Ticket, Pending)>,
    /// The last command of the newest committed batch the feed brought.
    feed_seen: u64,
    /// The newest command answered here whose changes the feed is still to
    /// report (0: none).
    feed_due: u64,
    /// The committed batches: this session's orders' reports come from them.
    feed: atlas_journal::market::MarketFeed,
    /// Why the feed ended, if it did (the session then ends too).
    feed_lost: Option<broadcast::error::RecvError>,
    logout_sent: bool,
    reject_counter: u64,
    /// Products by id and by symbol, re-read every tick (a product's rows
    /// change rarely; the engine has the final word on its status anyway).
    products: std::collections::HashMap<atlas_types::ProductId, Arc<ProductRow>>,
    symbols: std::collections::HashMap<String, Arc<ProductRow>>,
}

fn text_of(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl Session {
    fn actor(&self) -> Actor {
        Actor { user: self.caller.actor_user(), participant: Some(self.me) }
    }

    /// Queues a message with the next sequence number, and keeps it.
    fn send(&mut self, msg_type: &str, body: &[(u32, String)]) {
        let mut written = fix::Body::with_capacity(body.iter().map(|(_, v)| v.len() + 8).sum());
        for (tag, value) in body {
            written.push_str(*tag, value);
        }
        self.send_body(msg_type, &written);
    }

    /// [`Session::send`] for a body already written (execution reports).
    fn send_body(&mut self, msg_type: &str, body: &fix::Body) {
        // MsgSeqNum and SendingTime, side by side in one buffer.
        let mut scratch = Vec::with_capacity(48);
        fix::write_decimal(&mut scratch, self.store.next_out);
        let seq_len = scratch.len();
        exec::write_utc_timestamp(&mut scratch, now_ns());
        let (seq, time) = scratch.split_at(seq_len);
        let header: [(u32, &[u8]); 5] = [
            (35, msg_type.as_bytes()),
            (34, seq),
            (49, COMP_ID.as_bytes()),
            (52, time),
            (56, self.key.as_bytes()),
        ];
        let start = self.out.len();
        fix::encode_body_into(&mut self.out, &header, body);
        self.store.next_out += 1;
        self.store.keep(&self.out[start..]);
        self.last_out = Instant::now();
    }

    fn logout(&mut self, text: &str) {
        let body = if text.is_empty() { vec![] } else { vec![(58, text.to_owned())] };
        self.send("5", &body);
        self.logout_sent = true;
    }

    fn reject(&mut self, m: &Message, reason: u32, tag: Option<u32>, text: &str) {
        self.reject_naming(m, reason, tag.map(|t| t.to_string()), text);
    }

    /// A session-level Reject naming the tag as given (an invalid tag number
    /// is named as the client wrote it), routed back the way the message came.
    fn reject_naming(&mut self, m: &Message, reason: u32, tag: Option<String>, text: &str) {
        let mut body: Fields = reverse_route(m);
        body.push((45, m.uint(34).unwrap_or(0).to_string()));
        if let Some(t) = tag {
            body.push((371, t));
        }
        body.push((372, text_of(m.msg_type())));
        body.push((373, reason.to_string()));
        body.push((58, text.to_owned()));
        self.send("3", &body);
    }

    fn business_reject(&mut self, m: &Message, reason: u32, text: &str) {
        let mut body: Fields = reverse_route(m);
        body.push((45, m.uint(34).unwrap_or(0).to_string()));
        body.push((372, text_of(m.msg_type())));
        if let Some(id) = m.text(11) {
            body.push((379, id.to_owned()));
        }
        body.push((380, reason.to_string()));
        body.push((58, text.to_owned()));
        self.send("j", &body);
    }

    async fn write_out<W: AsyncWrite + Unpin>(&mut self, wr: &mut W) -> std::io::Result<()> {
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "FIX session store write failed");
            return Err(e);
        }
        if !self.out.is_empty() {
            wr.write_all(&self.out).await?;
            wr.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Answers the Logon. Close: refused (a Logout is queued).
    async fn logon(&mut self, m: &Message) -> Flow {
        if let Err(p) = dictionary::validate(m) {
            let tag = p.tag.map(|t| format!(" (tag {t})")).unwrap_or_default();
            self.logout(&format!("logon refused: {}{tag}", p.text));
            return Flow::Close;
        }
        if m.text(98).is_some_and(|v| v != "0") {
            self.logout("logon refused: EncryptMethod (98) must be 0");
            return Flow::Close;
        }
        match m.uint(108) {
            Some(h) if HEARTBEAT_RANGE.contains(&h) => self.heartbeat = Duration::from_secs(h),
            _ => {
                self.logout("logon refused: HeartBtInt (108) must be 1 to 300 seconds");
                return Flow::Close;
            }
        }
        self.cod = match m.text(8013) {
            None | Some("N") => CancelOnDisconnect::No,
            Some("Y") => CancelOnDisconnect::All,
            Some("S") => CancelOnDisconnect::Session,
            Some(_) => {
                self.logout("logon refused: CancelOrdersOnDisconnect (8013) must be Y, S or N");
                return Flow::Close;
            }
        };
        let Some(seq) = m.uint(34) else {
            self.logout("logon refused: MsgSeqNum (34) missing");
            return Flow::Close;
        };
        if !self.sending_time_ok(m) {
            self.logout("logon refused: SendingTime (52) is not within 2 minutes of the exchange's clock");
            return Flow::Close;
        }
        let reset = m.text(141) == Some("Y");
        if reset {
            if seq != 1 {
                self.logout("logon refused: a reset logon must have MsgSeqNum 1");
                return Flow::Close;
            }
            if let Err(e) = self.store.reset() {
                tracing::error!(error = %e, "FIX session store reset failed");
                return Flow::Close;
            }
        }
        let expected = self.store.next_in;
        if seq < expected {
            self.logout(&format!("MsgSeqNum too low, expecting {expected} but received {seq}"));
            return Flow::Close;
        }
        let mut body: Fields = vec![(98, "0".into()), (108, self.heartbeat.as_secs().to_string())];
        if reset {
            body.push((141, "Y".into()));
        }
        self.send("A", &body);
        if seq > expected {
            self.ask_resend(expected, seq);
        } else {
            self.store.next_in = seq + 1;
        }
        Flow::Go
    }

    fn ask_resend(&mut self, from: u64, seen: u64) {
        // Requests are open-ended (16=0): while one is outstanding, a later
        // gap is covered by it (asking again would only double the resends,
        // as QuickFIX also reasons). Once it is filled, a gap asks anew.
        if self.resend_until.is_some() {
            return;
        }
        self.send("2", &[(7, from.to_string()), (16, "0".into())]);
        self.resend_until = Some(seen);
    }

    fn sending_time_ok(&self, m: &Message) -> bool {
        m.text(52)
            .and_then(parse_utc_timestamp)
            .is_some_and(|t| (t - now_ns()).abs() <= SENDING_TIME_TOLERANCE_NS)
    }

    async fn load_open_orders(&mut self) {
        let mut before = None;
        let mut loaded = 0usize;
        while loaded < OPEN_ORDERS_LOADED_MAX {
            let page = match self
                .app
                .db
                .orders(self.me, OrderFilter::Open, None, before, atlas_store::PAGE_ROWS_MAX)
                .await
            {
                Ok(p) => p,
                Err(_) => return,
            };
            let Some(last) = page.last() else { return };
            before = Some(last.id);
            loaded += page.len();
            for row in &page {
                // A row the feed already reported is newer than this one.
                if !self.orders.open.contains_key(&row.id) {
                    self.orders.track_existing(row);
                }
            }
        }
    }

    async fn main_loop<R, W>(
        &mut self,
        rd: &mut R,
        wr: &mut W,
        mut inbuf: Vec<u8>,
        mut shutdown: watch::Receiver<bool>,
    ) where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reading = true;
        loop {
            // Whatever arrived with the logon (or before a pause) first.
            if reading && self.process_input(&mut inbuf).await == Flow::Close {
                let _ = self.write_out(wr).await;
                return;
            }
            if self.write_out(wr).await.is_err() {
                return;
            }
            inbuf.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    self.settle().await;
                    self.logout("the exchange is shutting down");
                    let _ = self.write_out(wr).await;
                    return;
                }
                result = oldest_outcome(&mut self.in_flight) => {
                    self.take_outcomes(result);
                    reading = false;
                }
                b = self.feed.recv() => {
                    match b {
                        Ok(batch) => self.on_batch(&batch),
                        Err(e) => self.feed_lost = Some(e),
                    }
                    if self.feed_lost.is_some() {
                        self.end_for_lost_feed();
                        let _ = self.write_out(wr).await;
                        return;
                    }
                    reading = false;
                }
                r = rd.read_buf(&mut inbuf) => {
                    match r {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            self.last_in = Instant::now();
                            reading = true;
                        }
                    }
                }
                _ = tick.tick() => {
                    if self.on_tick() == Flow::Close {
                        let _ = self.write_out(wr).await;
                        return;
                    }
                    reading = false;
                }
            }
        }
    }

    /// The session ends when its reports stop: after a lag (some are lost:
    /// the client logs on again and learns its orders' states), or at shutdown.
    fn end_for_lost_feed(&mut self) {
        if matches!(self.feed_lost, Some(broadcast::error::RecvError::Lagged(_))) && !self.logout_sent {
            self.logout("the session fell behind the exchange's reports; log on again");
        }
    }

    /// Whether the feed ended while a message was handled (then says so).
    fn lost_feed(&mut self) -> bool {
        if self.feed_lost.is_none() {
            return false;
        }
        self.end_for_lost_feed();
        true
    }

    fn on_tick(&mut self) -> Flow {
        self.products.clear();
        self.symbols.clear();
        let now = Instant::now();
        if now.duration_since(self.last_out) >= self.heartbeat {
            self.send("0", &[]);
        }
        match &self.test_request {
            Some((_, sent)) if now.duration_since(*sent) >= self.heartbeat => {
                self.logout("no answer to the test request");
                return Flow::Close;
            }
            Some(_) => {}
            None => {
                // The heartbeat interval plus a fifth for transmission.
                if now.duration_since(self.last_in) >= self.heartbeat + self.heartbeat / 5 {
                    // QuickFIX's convention, which its acceptance scripts expect.
                    let id = "TEST".to_owned();
                    self.send("1", &[(112, id.clone())]);
                    self.test_request = Some((id, now));
                }
            }
        }
        Flow::Go
    }

    async fn process_input(&mut self, inbuf: &mut Vec<u8>) -> Flow {
        let mut at = 0;
        let mut flow = Flow::Go;
        while at < inbuf.len() {
            match fix::frame(&inbuf[at..]) {
                Frame::Incomplete => break,
                Frame::Garbled(n, _) => {
                    // Another FIX version than the session's: Logout (the
                    // specification's answer); anything else garbled is dropped.
                    let rest = &inbuf[at..];
                    if rest.starts_with(b"8=FIX") && !rest.starts_with(b"8=FIX.4.4\x01") {
                        self.logout("incorrect BeginString");
                        flow = Flow::Close;
                        break;
                    }
                    at += n;
                }
                Frame::Message(n, m) => {
                    at += n;
                    if self.on_message(&m).await == Flow::Close || self.lost_feed() {
                        flow = Flow::Close;
                        break;
                    }
                    // Messages that arrived early, now in sequence.
                    while let Some(next) = self.early.remove(&self.store.next_in) {
                        if self.on_message(&next).await == Flow::Close || self.lost_feed() {
                            flow = Flow::Close;
                            break;
                        }
                    }
                    if flow == Flow::Close {
                        break;
                    }
                }
            }
        }
        inbuf.drain(..at);
        flow
    }

    /// The session layer's checks, then the message itself.
    async fn on_message(&mut self, m: &Message) -> Flow {
        let msg_type = m.msg_type().to_vec();
        for tag in [49, 56, 34, 52] {
            let value = m.get(tag);
            if value.is_none_or(<[u8]>::is_empty) {
                if tag == 34 {
                    self.logout("MsgSeqNum (34) missing");
                    return Flow::Close;
                }
                if m.uint(34) == Some(self.store.next_in) {
                    self.store.next_in += 1;
                }
                match value {
                    None => self.reject(m, reason::REQUIRED_TAG_MISSING, Some(tag), "Required tag missing"),
                    Some(_) => {
                        self.reject(m, reason::TAG_WITHOUT_VALUE, Some(tag), "Tag specified without a value")
                    }
                }
                return Flow::Go;
            }
        }
        if m.text(49) != Some(self.key.as_str()) || m.text(56) != Some(COMP_ID) {
            self.reject(m, reason::COMP_ID_PROBLEM, None, "CompID problem");
            self.logout("CompID problem");
            return Flow::Close;
        }
        let Some(seq) = m.uint(34) else {
            self.logout("MsgSeqNum (34) missing");
            return Flow::Close;
        };
        if !self.sending_time_ok(m) {
            self.reject(m, reason::SENDING_TIME_ACCURACY, Some(52), "SendingTime accuracy problem");
            self.logout("SendingTime accuracy problem");
            return Flow::Close;
        }
        let poss_dup = m.text(43) == Some("Y");
        // SequenceReset-Reset ignores sequence numbers.
        if msg_type == b"4" && m.text(123) != Some("Y") {
            let Some(new) = m.uint(36) else {
                self.reject(m, reason::REQUIRED_TAG_MISSING, Some(36), "NewSeqNo (36) missing");
                return Flow::Go;
            };
            let expected = self.store.next_in;
            if new < expected {
                self.reject(
                    m,
                    reason::VALUE_INCORRECT,
                    Some(36),
                    &format!("NewSeqNo {new} is below the expected {expected}"),
                );
            } else {
                self.store.next_in = new;
            }
            return Flow::Go;
        }
        let expected = self.store.next_in;
        // A Logon asking for a reset during the session starts both sides over.
        if msg_type == b"A" && m.text(141) == Some("Y") && seq == 1 {
            if let Err(e) = self.store.reset() {
                tracing::error!(error = %e, "FIX session store reset failed");
                return Flow::Close;
            }
            self.early.clear();
            self.resend_until = None;
            self.store.next_in = 2;
            self.send(
                "A",
                &[(98, "0".into()), (108, self.heartbeat.as_secs().to_string()), (141, "Y".into())],
            );
            return Flow::Go;
        }
        // A ResendRequest or a Logout is acted on whatever its number (as
        // QuickFIX does): the counterparty may be recovering from a gap itself.
        if (msg_type == b"2" || msg_type == b"5") && seq != expected {
            if msg_type == b"2" {
                self.on_resend_request(m);
            } else if !self.logout_sent {
                self.settle().await;
                self.logout("");
            }
            if seq > expected && msg_type == b"2" {
                self.ask_resend(expected, seq);
            }
            return if msg_type == b"5" { Flow::Close } else { Flow::Go };
        }
        if seq > expected {
            // A gap: ask for what is missing (once), and keep this message
            // until the gap is filled.
            self.ask_resend(expected, seq);
            if self.early.len() < EARLY_MESSAGES_MAX {
                self.early.insert(seq, m.clone());
            }
            return Flow::Go;
        }
        if seq < expected {
            if poss_dup {
                // Already processed (its OrigSendingTime is checked all the same).
                return self.check_orig_sending_time(m).unwrap_or(Flow::Go);
            }
            self.logout(&format!("MsgSeqNum too low, expecting {expected} but received {seq}"));
            return Flow::Close;
        }
        // The expected message: it is consumed whatever happens to it next.
        self.store.next_in = seq + 1;
        if self.resend_until.is_some_and(|u| u < self.store.next_in) {
            self.resend_until = None;
        }
        if poss_dup && let Some(flow) = self.check_orig_sending_time(m) {
            return flow;
        }
        if let Some(flow) = self.check_fields(m) {
            return flow;
        }
        match msg_type.as_slice() {
            b"0" => {
                if let (Some(id), Some((ours, _))) = (m.text(112), &self.test_request)
                    && id == ours
                {
                    self.test_request = None;
                }
                Flow::Go
            }
            b"1" => {
                let Some(id) = m.get(112) else {
                    self.reject(m, reason::REQUIRED_TAG_MISSING, Some(112), "TestReqID (112) missing");
                    return Flow::Go;
                };
                let id = text_of(id);
                self.send("0", &[(112, id)]);
                Flow::Go
            }
            b"2" => {
                self.on_resend_request(m);
                Flow::Go
            }
            b"3" => {
                tracing::info!(participant = self.me.0, "FIX session reject received");
                Flow::Go
            }
            b"4" => {
                // Gap fill (the reset mode was handled above).
                match m.uint(36) {
                    Some(new) if new > seq => {
                        self.store.next_in = new;
                        if self.resend_until.is_some_and(|u| u < new) {
                            self.resend_until = None;
                        }
                    }
                    Some(new) => self.reject(
                        m,
                        reason::VALUE_INCORRECT,
                        Some(36),
                        &format!("NewSeqNo {new} must be above MsgSeqNum {seq}"),
                    ),
                    None => self.reject(m, reason::REQUIRED_TAG_MISSING, Some(36), "NewSeqNo (36) missing"),
                }
                Flow::Go
            }
            b"5" => {
                if !self.logout_sent {
                    self.settle().await;
                    self.logout("");
                }
                Flow::Close
            }
            b"A" => {
                self.reject(m, reason::VALUE_INCORRECT, Some(35), "already logged on");
                Flow::Go
            }
            b"D" => self.on_new_order(m).await,
            b"F" => self.on_cancel(m).await,
            b"G" => self.on_replace(m).await,
            b"q" => self.on_mass_cancel(m).await,
            b"H" => self.on_status_request(m).await,
            b"AF" => self.on_mass_status_request(m).await,
            _ => {
                self.business_reject(m, 3, "unsupported message type");
                Flow::Go
            }
        }
    }

    /// A possible duplicate's OrigSendingTime (122): required, and not after
    /// its SendingTime. Some: rejected (and what to do next).
    fn check_orig_sending_time(&mut self, m: &Message) -> Option<Flow> {
        let orig = m.text(122).and_then(parse_utc_timestamp);
        let sending = m.text(52).and_then(parse_utc_timestamp);
        match (orig, sending) {
            (None, _) => {
                self.reject(m, reason::REQUIRED_TAG_MISSING, Some(122), "OrigSendingTime (122) missing");
                Some(Flow::Go)
            }
            (Some(o), Some(s)) if o > s => {
                self.reject(
                    m,
                    reason::SENDING_TIME_ACCURACY,
                    Some(122),
                    "OrigSendingTime is after SendingTime",
                );
                self.logout("SendingTime accuracy problem");
                Some(Flow::Close)
            }
            _ => None,
        }
    }

    /// The dictionary's checks (see [`dictionary`]); Some: rejected.
    fn check_fields(&mut self, m: &Message) -> Option<Flow> {
        let msg_type = std::str::from_utf8(m.msg_type()).unwrap_or("");
        if !FIX44_TYPES.contains(&msg_type) {
            self.reject(m, reason::INVALID_MSG_TYPE, Some(35), "Invalid MsgType");
            return Some(Flow::Go);
        }
        match dictionary::validate(m) {
            Ok(()) => None,
            Err(p) => {
                self.reject_naming(m, p.reason, p.tag, p.text);
                Some(Flow::Go)
            }
        }
    }

    fn on_resend_request(&mut self, m: &Message) {
        // A resend reads the kept messages (up to two files of
        // MESSAGES_FILE_BYTES_MAX): counted like any query against the rate limit.
        if self.app.rate_limits.check(crate::limits::Kind::Queries, self.ip, self.caller.principal).is_err() {
            self.reject(m, reason::OTHER, None, "too many resend requests; retry later");
            return;
        }
        let (Some(begin), Some(end)) = (m.uint(7), m.uint(16)) else {
            self.reject(
                m,
                reason::REQUIRED_TAG_MISSING,
                Some(7),
                "BeginSeqNo (7) and EndSeqNo (16) are required",
            );
            return;
        };
        let last = self.store.next_out - 1;
        let end = if end == 0 || end > last { last } else { end };
        if begin == 0 || begin > end {
            return;
        }
        let kept = match self.store.sent(begin, end) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "FIX session store read failed");
                Vec::new()
            }
        };
        let now = exec::utc_timestamp(now_ns());
        let mut gap_from: Option<u64> = None;
        let mut kept = kept.into_iter().peekable();
        let mut resent = Vec::new();
        for seq in begin..=end {
            let msg = match kept.peek() {
                Some(k) if k.uint(34) == Some(seq) => kept.next(),
                _ => None,
            };
            match msg {
                Some(k) if !ADMIN_TYPES.contains(&k.msg_type()) => {
                    if let Some(from) = gap_from.take() {
                        resent.push(gap_fill(from, seq, &self.key, &now));
                    }
                    resent.push(possible_duplicate(&k, &now));
                }
                _ => {
                    gap_from.get_or_insert(seq);
                }
            }
        }
        if let Some(from) = gap_from {
            resent.push(gap_fill(from, end + 1, &self.key, &now));
        }
        for r in resent {
            // Resends keep their old numbers: they are not kept again.
            self.out.extend_from_slice(&r);
        }
        self.last_out = Instant::now();
    }

    fn on_batch(&mut self, batch: &atlas_journal::market::MarketBatch) {
        // The outcomes of the batch's commands were sent before it was
        // published, but a select that found the oldest outcome not there yet
        // may have found the batch there a moment later: take them first, so
        // that the cancels and replaces the batch reports are known.
        self.take_ready_outcomes(None);
        self.feed_seen = self.feed_seen.max(batch.commands.1);
        let app = self.app.clone();
        let entered = &mut self.entered;
        let acked = &self.ack_latency;
        let cache = std::cell::RefCell::new(std::mem::take(&mut self.products));
        let product = |id| {
            let mut c = cache.borrow_mut();
            if let Some(p) = c.get(&id) {
                return Some(Arc::clone(p));
            }
            let p = Arc::new(app.product_any(id)?);
            c.insert(id, p.clone());
            Some(p)
        };
        let reports = self.orders.on_batch(self.me, batch, &product, &mut |c| {
            answered(entered, c).inspect(|read| acked.record(read.elapsed())).is_some()
        });
        self.products = cache.into_inner();
        for r in reports {
            self.send_body("8", &r);
        }
    }

    fn next_exec_id(&mut self) -> String {
        self.reject_counter += 1;
        format!("X{}-{}", now_ns(), self.reject_counter)
    }

    /// An ExecutionReport refusing a new order.
    fn reject_order(&mut self, m: &Message, reason: u32, text: &str) {
        let mut body: Fields = vec![(37, "NONE".into())];
        if let Some(c) = m.text(11) {
            body.push((11, c.to_owned()));
        }
        body.push((17, self.next_exec_id()));
        body.push((150, "8".into()));
        body.push((39, "8".into()));
        for tag in [55u32, 54, 38, 40, 44, 99, 59] {
            if let Some(v) = m.get(tag) {
                body.push((tag, text_of(v)));
            }
        }
        body.push((151, "0".into()));
        body.push((14, "0".into()));
        body.push((6, "0".into()));
        body.push((103, reason.to_string()));
        body.push((58, text.to_owned()));
        body.push((60, exec::utc_timestamp(now_ns())));
        self.send("8", &body);
        self.ack_latency.record(self.last_in.elapsed());
    }

    fn cancel_reject(
        &mut self,
        order: Option<OrderId>,
        cl_ord_id: &str,
        orig: Option<&str>,
        response_to: &str,
        reason: u32,
        text: &str,
    ) {
        let mut body: Fields = vec![
            (37, order.map_or_else(|| "NONE".to_owned(), |o| o.0.to_string())),
            (11, cl_ord_id.to_owned()),
        ];
        if let Some(o) = orig {
            body.push((41, o.to_owned()));
        }
        let status = match order.and_then(|o| self.orders.open.get(&o)) {
            Some(_) => "0",
            None => "8",
        };
        body.push((39, status.into()));
        body.push((434, response_to.to_owned()));
        body.push((102, reason.to_string()));
        body.push((58, text.to_owned()));
        self.send("9", &body);
    }

    fn required<'m>(&mut self, m: &'m Message, tags: &[u32]) -> Option<Vec<&'m str>> {
        let mut out = Vec::with_capacity(tags.len());
        for &t in tags {
            match m.text(t) {
                Some(v) => out.push(v),
                None => {
                    self.reject(m, reason::REQUIRED_TAG_MISSING, Some(t), "Required tag missing");
                    return None;
                }
            }
        }
        Some(out)
    }

    fn product(&mut self, symbol: &str) -> Option<Arc<ProductRow>> {
        if let Some(p) = self.symbols.get(symbol) {
            return Some(p.clone());
        }
        let p = Arc::new(self.app.product_by_symbol(symbol).or_else(|| {
            // Coinbase's product ids (`ACME-USD`) name the same product.
            let (sym, cur) = symbol.rsplit_once('-')?;
            self.app.product_by_symbol(sym).filter(|p| p.currency == cur)
        })?);
        if self.symbols.len() < 10_000 {
            self.symbols.insert(symbol.to_owned(), p.clone());
        }
        Some(p)
    }

    fn rate_limited(&self) -> bool {
        self.app.rate_limits.check(crate::limits::Kind::Orders, self.ip, self.caller.principal).is_err()
    }

    /// Status requests count as queries, like REST reads: a refused one gets
    /// a BusinessMessageReject.
    fn status_rate_limited(&mut self, m: &Message) -> bool {
        let limited =
            self.app.rate_limits.check(crate::limits::Kind::Queries, self.ip, self.caller.principal).is_err();
        if limited {
            self.business_reject(m, 0, "rate limit: too many status requests per second");
        }
        limited
    }

    /// Submits, waiting out a full queue (the session stops reading meanwhile).
    async fn submit(
        &mut self,
        cl_ord_id: Option<String>,
        command: CommandKind,
    ) -> Result<Ticket, SubmitError> {
        let mut waited = 0;
        loop {
            match self.app.seq.submit(self.actor(), cl_ord_id.clone(), command.clone()) {
                Err(SubmitError::Overloaded) if waited < 5_000 => {
                    waited += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                other => return other,
            }
        }
    }

    async fn on_new_order(&mut self, m: &Message) -> Flow {
        let Some(v) = self.required(m, &[11, 55, 54, 40]) else { return Flow::Go };
        let (cl_ord_id, symbol, side, ord_type) = (v[0].to_owned(), v[1], v[2], v[3]);
        // The dictionary let only FIX 4.4's values through: what Atlas does
        // not do is the business's refusal, not a session error.
        let Some(side) = side_of(side) else {
            self.reject_order(m, UNSUPPORTED, "Side not supported: use 1 (buy) or 2 (sell)");
            return Flow::Go;
        };
        let Some(order_type) = order_type_of(ord_type) else {
            self.reject_order(m, UNSUPPORTED, "OrdType not supported: use 1, 2, 3 or 4");
            return Flow::Go;
        };
        if let Some(text) = unsupported(m) {
            self.reject_order(m, UNSUPPORTED, &text);
            return Flow::Go;
        }
        // OrderQty is conditionally required in FIX 4.4 (one of it and
        // CashOrderQty), so its absence is the business's to refuse.
        let Some(qty) = m.text(38) else {
            self.reject_order(m, INCORRECT_QUANTITY, "OrderQty (38) is required");
            return Flow::Go;
        };
        let Some(quantity) = parse_qty(qty) else {
            self.reject_order(m, INCORRECT_QUANTITY, "OrderQty must be a whole number of units");
            return Flow::Go;
        };
        let Some(time_in_force) = time_in_force_of(m.text(59)) else {
            self.reject_order(m, UNSUPPORTED, "TimeInForce not supported: use 0, 1, 3 or 4");
            return Flow::Go;
        };
        let post_only = m.text(18).is_some_and(|e| e.split(' ').any(|i| POST_ONLY.contains(&i)));
        let self_trade_prevention = match m.text(7928) {
            None => SelfTradePrevention::None,
            Some("D") => SelfTradePrevention::Decrement,
            Some("O") => SelfTradePrevention::CancelOldest,
            Some("N") => SelfTradePrevention::CancelNewest,
            Some("B") => SelfTradePrevention::CancelBoth,
            // The dictionary admits no other value; should it ever, the
            // order is refused, not entered without the prevention asked for.
            Some(_) => {
                self.reject_order(m, UNSUPPORTED, "SelfTradePrevention (7928) must be D, O, N or B");
                return Flow::Go;
            }
        };
        if self.app.is_disabled(self.me) {
            self.reject_order(m, 0, "the participant is disabled");
            return Flow::Go;
        }
        let Some(product) = self.product(symbol) else {
            self.reject_order(m, 1, "unknown symbol");
            return Flow::Go;
        };
        let price = match m.text(44).map(|p| parse_price(p, &product, "Price")).transpose() {
            Ok(p) => p,
            Err(e) => {
                self.reject_order(m, 99, &e.detail);
                return Flow::Go;
            }
        };
        let stop_price = match m.text(99).map(|p| parse_price(p, &product, "StopPx")).transpose() {
            Ok(p) => p,
            Err(e) => {
                self.reject_order(m, 99, &e.detail);
                return Flow::Go;
            }
        };
        if self.rate_limited() {
            self.reject_order(m, 99, "rate limit: too many orders per second");
            return Flow::Go;
        }
        let order = NewOrder {
            order_id: OrderId(0),
            participant: self.me,
            product: product.id,
            side,
            order_type,
            time_in_force,
            quantity: Qty(quantity),
            price,
            stop_price,
            post_only,
            self_trade_prevention,
        };
        if let Err(e) = crate::risk::check_order(&self.app, &order, &product).await {
            self.reject_order(m, 3, &e.detail);
            return Flow::Go;
        }
        match self.submit(Some(cl_ord_id.clone()), CommandKind::NewOrder(order)).await {
            Ok(ticket) => {
                // A ClOrdID repeated while its first order is in flight is
                // counted, not entered again: the repeat's refusal must not
                // take the first's place (the first is still this session's
                // own, to acknowledge and to cancel on disconnect).
                self.entered
                    .entry(cl_ord_id.clone())
                    .or_insert(InFlight { read: self.last_in, count: 0 })
                    .count += 1;
                let pending =
                    Pending::New { cl_ord_id, order, symbol: product.symbol.clone(), read: self.last_in };
                self.follow(ticket, pending).await;
            }
            Err(e) => self.reject_order(m, 99, &ApiError::from(e).detail),
        }
        Flow::Go
    }

    /// The order a cancel or replace refers to (37, else 41), if it is ours.
    async fn resolve(&mut self, m: &Message) -> Option<OrderId> {
        if let Some(id) = m.uint(37) {
            let id = OrderId(id);
            if self.orders.open.contains_key(&id) {
                return Some(id);
            }
            return match self.app.db.order(id).await {
                Ok(Some(row)) if row.participant == self.me => Some(id),
                _ => None,
            };
        }
        let orig = m.text(41)?;
        if let Some(id) = self.orders.by_cl_ord_id.get(orig) {
            return Some(*id);
        }
        // Entered here and not committed yet: the client cancels or replaces
        // before the acknowledgement, which it may. The session takes in the
        // committed batches (reporting them: the New goes out before the
        // answer to the cancel) and the refusals until the order shows up or
        // is refused; it reads no other message meanwhile, so its messages
        // keep their order.
        self.take_in_until(|s| !s.entered.contains_key(orig)).await;
        if let Some(id) = self.orders.by_cl_ord_id.get(orig) {
            return Some(*id);
        }
        // Finished while this session followed it: the cancel is too late.
        if let Some(id) = self.orders.finished.get(orig) {
            return Some(id);
        }
        // Not open here under that ClOrdID. The journal knows the day's
        // ClOrdIDs, a replace's included (one in flight from this session,
        // answered once committed, or an earlier session's); the tables an
        // earlier day's.
        crate::orders::by_client_order_id(&self.app, self.me, orig).await.ok().flatten()
    }

    async fn on_cancel(&mut self, m: &Message) -> Flow {
        let Some(v) = self.required(m, &[11, 55, 54]) else { return Flow::Go };
        let cl_ord_id = v[0].to_owned();
        let orig = m.text(41).map(str::to_owned);
        if m.get(37).is_none() && orig.is_none() {
            self.reject(
                m,
                reason::REQUIRED_TAG_MISSING,
                Some(41),
                "OrigClOrdID (41) or OrderID (37) is required",
            );
            return Flow::Go;
        }
        if self.rate_limited() {
            self.cancel_reject(
                None,
                &cl_ord_id,
                orig.as_deref(),
                "1",
                99,
                "rate limit: too many requests per second",
            );
            return Flow::Go;
        }
        let Some(order) = self.resolve(m).await else {
            self.cancel_reject(None, &cl_ord_id, orig.as_deref(), "1", 1, "unknown order");
            return Flow::Go;
        };
        let command = CommandKind::Cancel { order_id: order, participant: Some(self.me) };
        // The cancel's ClOrdID is used up like an order's (the journal
        // refuses one already used today).
        match self.submit(Some(cl_ord_id.clone()), command).await {
            Ok(ticket) => self.follow(ticket, Pending::Cancel { order, cl_ord_id, orig }).await,
            Err(e) => self.cancel_reject(
                Some(order),
                &cl_ord_id,
                orig.as_deref(),
                "1",
                99,
                &ApiError::from(e).detail,
            ),
        }
        Flow::Go
    }

    async fn on_replace(&mut self, m: &Message) -> Flow {
        let Some(v) = self.required(m, &[11, 55, 54, 40]) else { return Flow::Go };
        let cl_ord_id = v[0].to_owned();
        let symbol = v[1];
        let orig = m.text(41).map(str::to_owned);
        if m.get(37).is_none() && orig.is_none() {
            self.reject(
                m,
                reason::REQUIRED_TAG_MISSING,
                Some(41),
                "OrigClOrdID (41) or OrderID (37) is required",
            );
            return Flow::Go;
        }
        let reply = |s: &mut Session, order: Option<OrderId>, reason: u32, text: &str| {
            s.cancel_reject(order, &cl_ord_id, orig.as_deref(), "2", reason, text);
        };
        let Some(quantity) = m.text(38).and_then(parse_qty) else {
            reply(self, None, 99, "OrderQty (38) is required, a whole number of units");
            return Flow::Go;
        };
        if let Some(text) = unsupported(m) {
            reply(self, None, 99, &text);
            return Flow::Go;
        }
        if self.rate_limited() {
            reply(self, None, 99, "rate limit: too many requests per second");
            return Flow::Go;
        }
        let Some(order) = self.resolve(m).await else {
            reply(self, None, 1, "unknown order");
            return Flow::Go;
        };
        let Ok(Some(row)) = self.app.db.order(order).await else {
            reply(self, Some(order), 1, "unknown order");
            return Flow::Go;
        };
        let Some(product) =
            self.app.product_any(row.product).filter(|p| self.product(symbol).is_some_and(|q| q.id == p.id))
        else {
            reply(self, Some(order), 99, "Symbol does not match the order's");
            return Flow::Go;
        };
        // A replace changes quantity and prices; the rest stays the order's.
        let post_only = m.text(18).map(|e| e.split(' ').any(|i| POST_ONLY.contains(&i)));
        let tif = m.text(59).map(|t| time_in_force_of(Some(t)));
        let unchanged = [
            (side_of(v[2]) == Some(row.side), "Side"),
            (order_type_of(v[3]) == Some(row.order_type), "OrdType"),
            (tif.is_none_or(|t| t == Some(row.time_in_force)), "TimeInForce"),
            (post_only.is_none_or(|p| p == row.post_only), "ExecInst"),
        ];
        if let Some((_, name)) = unchanged.iter().find(|(same, _)| !same) {
            reply(self, Some(order), 99, &format!("{name} cannot be changed by a replace"));
            return Flow::Go;
        }
        let parse = |tag: u32, name: &str| m.text(tag).map(|p| parse_price(p, &product, name)).transpose();
        let (price, stop) = match (parse(44, "Price"), parse(99, "StopPx")) {
            (Ok(p), Ok(s)) => (p, s),
            (Err(e), _) | (_, Err(e)) => {
                reply(self, Some(order), 99, &e.detail);
                return Flow::Go;
            }
        };
        let amend = Amend {
            order_id: order,
            participant: Some(self.me),
            // The terms in full, not as changes from `row`: a replace in
            // flight ahead of this one may have changed them since. Once a
            // stop has triggered its StopPx is history, which a client
            // repeating the order's fields may send unchanged.
            quantity: Some(Qty(quantity)),
            price,
            stop_price: stop.filter(|p| !row.triggered || Some(*p) != row.stop_price),
        };
        let after = crate::orders::after_amend(&row, &amend);
        if let Err(e) = crate::risk::check_order(&self.app, &after, &product).await {
            reply(self, Some(order), 3, &e.detail);
            return Flow::Go;
        }
        // The ClOrdID goes with the amend: the journal refuses one already in
        // use (by a new order or a replace) and keeps this one as used.
        match self.submit(Some(cl_ord_id.clone()), CommandKind::Amend(amend)).await {
            Ok(ticket) => {
                let pending = Pending::Replace { order, cl_ord_id: cl_ord_id.clone(), orig: orig.clone() };
                self.follow(ticket, pending).await;
            }
            Err(e) => reply(self, Some(order), 99, &ApiError::from(e).detail),
        }
        Flow::Go
    }

    async fn on_mass_cancel(&mut self, m: &Message) -> Flow {
        let Some(v) = self.required(m, &[11, 530]) else { return Flow::Go };
        let (cl_ord_id, request_type) = (v[0].to_owned(), v[1].to_owned());
        let refuse = |s: &mut Session, reason: u32, text: &str| {
            s.send(
                "r",
                &[
                    (11, cl_ord_id.clone()),
                    (37, "NONE".into()),
                    (530, request_type.clone()),
                    (531, "0".into()),
                    (532, reason.to_string()),
                    (58, text.to_owned()),
                ],
            );
        };
        let product = match request_type.as_str() {
            "7" => None,
            "1" => match m.text(55).and_then(|s| self.product(s)) {
                Some(p) => Some(p.id),
                None => {
                    refuse(self, 1, "unknown or missing Symbol");
                    return Flow::Go;
                }
            },
            _ => {
                refuse(self, 99, "MassCancelRequestType must be 1 (by symbol) or 7 (all)");
                return Flow::Go;
            }
        };
        if self.rate_limited() {
            refuse(self, 99, "rate limit: too many requests per second");
            return Flow::Go;
        }
        match self.submit(None, CommandKind::MassCancel { participant: self.me, product }).await {
            Ok(ticket) => {
                self.follow(ticket, Pending::Mass { cl_ord_id, request_type }).await;
            }
            Err(e) => refuse(self, 99, &ApiError::from(e).detail),
        }
        Flow::Go
    }

    /// Whether the client has heard of everything it sent: no command is
    /// waiting for its outcome, and every order, cancel and replace answered
    /// has been reported.
    fn settled(&self) -> bool {
        self.in_flight.is_empty()
            && self.entered.is_empty()
            && self.orders.requests.is_empty()
            && self.feed_seen >= self.feed_due
    }

    /// Before a Logout: reports what the client sent and has not heard of yet
    /// (refusals, acknowledgements, fills), waiting at most `IN_FLIGHT_WAIT`
    /// for the commits. A client that logs out right behind its orders thus
    /// learns their fate in this session, not from a later query.
    async fn settle(&mut self) {
        self.take_in_until(Self::settled).await;
    }

    /// Takes in the outcomes and the committed batches (reporting them), and
    /// reads no message meanwhile, until `done`, the loss of the feed, or
    /// `IN_FLIGHT_WAIT`.
    async fn take_in_until(&mut self, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
        while !done(self) && self.feed_lost.is_none() {
            tokio::select! {
                biased;
                result = oldest_outcome(&mut self.in_flight) => self.take_outcomes(result),
                b = self.feed.recv() => match b {
                    Ok(batch) => self.on_batch(&batch),
                    Err(e) => self.feed_lost = Some(e),
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }

    /// Follows a submitted command to its outcome. With `IN_FLIGHT_MAX` in
    /// flight, the oldest is awaited first (the session reads nothing
    /// meanwhile, which is the back-pressure a pipelining client feels).
    async fn follow(&mut self, ticket: Ticket, pending: Pending) {
        while self.in_flight.len() >= IN_FLIGHT_MAX {
            let result = oldest_outcome(&mut self.in_flight).await;
            self.take_outcomes(result);
        }
        self.in_flight.push_back((ticket, pending));
    }

    /// Takes the oldest command's outcome, `result`, and every later one
    /// already there, in submission order.
    fn take_outcomes(&mut self, result: Result<Receipt, SubmitError>) {
        self.take_ready_outcomes(Some(result));
    }

    /// Takes `result` (the oldest command's outcome, if given) and every
    /// outcome already there after it, in submission order.
    fn take_ready_outcomes(&mut self, result: Option<Result<Receipt, SubmitError>>) {
        let mut result = result;
        loop {
            let result = match result.take() {
                Some(r) => r,
                None => match self.in_flight.front_mut().map(|(t, _)| t.try_recv()) {
                    Some(Ok(r)) => r,
                    Some(Err(oneshot::error::TryRecvError::Closed)) => Err(SubmitError::Stopped),
                    Some(Err(oneshot::error::TryRecvError::Empty)) | None => return,
                },
            };
            let Some((_, pending)) = self.in_flight.pop_front() else { return };
            // Its changes (fills, cancels) come on the feed, in a batch
            // published after this answer.
            if let Ok(r) = &result
                && r.events.iter().any(|e| !matches!(e, Event::Accepted | Event::Rejected { .. }))
            {
                self.feed_due = self.feed_due.max(r.seq.0);
            }
            // Accepted new orders are reported from the feed: only refusals
            // matter here.
            let accepted_new = matches!(
                (&result, &pending),
                (Ok(r), Pending::New { .. }) if !r.duplicate && !matches!(r.events.first(), Some(Event::Rejected { .. }))
            );
            if !accepted_new {
                self.on_outcome(result, pending);
            }
        }
    }

    /// OrderStatusRequest (H): the order named by OrderID (37), else by
    /// ClOrdID (11, any of the day's, or an earlier day's first), as
    /// committed, in an ExecutionReport 150=I; an unknown order (or another
    /// participant's) gets 150=I, 39=8, OrdRejReason 5.
    async fn on_status_request(&mut self, m: &Message) -> Flow {
        let Some(v) = self.required(m, &[11, 55, 54]) else { return Flow::Go };
        let (cl_ord_id, symbol, side) = (v[0].to_owned(), v[1].to_owned(), v[2].to_owned());
        if self.status_rate_limited(m) {
            return Flow::Go;
        }
        let id = match m.uint(37) {
            Some(id) => Some(OrderId(id)),
            None => match self.orders.by_cl_ord_id.get(&cl_ord_id).copied() {
                Some(id) => Some(id),
                None => {
                    crate::orders::by_client_order_id(&self.app, self.me, &cl_ord_id).await.ok().flatten()
                }
            },
        };
        let row = match id {
            Some(id) => self.app.db.order(id).await.ok().flatten().filter(|r| r.participant == self.me),
            None => None,
        };
        let product = row.as_ref().and_then(|r| self.app.product_any(r.product));
        let mut body = match (&row, &product) {
            (Some(row), Some(product)) => exec::status_report(row, product, Some(&cl_ord_id), now_ns()),
            _ => {
                let mut b = fix::Body::with_capacity(200);
                b.push_str(37, m.text(37).unwrap_or("NONE")).push_str(11, &cl_ord_id).push_str(17, "0");
                b.push_str(150, "I").push_str(39, "8").push_str(55, &symbol).push_str(54, &side);
                b.push_str(151, "0").push_str(14, "0").push_str(6, "0").push_str(103, "5");
                b.push_str(58, "unknown order").push_str(60, &exec::utc_timestamp(now_ns()));
                b
            }
        };
        if let Some(req) = m.text(790) {
            body.push_str(790, req);
        }
        self.send_body("8", &body);
        Flow::Go
    }

    /// OrderMassStatusRequest (AF): the participant's open orders (585=7), or
    /// those of one product (585=1, by Symbol), optionally of one side, each
    /// in an ExecutionReport 150=I carrying the request's id (584), their
    /// count (911) and, on the last, 912=Y. With none, one report says so
    /// (37=NONE, 39=8, 911=0). At most `MASS_STATUS_REPORTS_MAX`.
    async fn on_mass_status_request(&mut self, m: &Message) -> Flow {
        let Some(v) = self.required(m, &[584, 585]) else { return Flow::Go };
        let (req_id, kind) = (v[0].to_owned(), v[1]);
        if self.status_rate_limited(m) {
            return Flow::Go;
        }
        let product = match kind {
            "7" => None,
            "1" => {
                let Some(symbol) = m.text(55) else {
                    self.business_reject(m, 5, "Symbol (55) is required with MassStatusReqType 1");
                    return Flow::Go;
                };
                let Some(p) = self.product(symbol) else {
                    self.business_reject(m, 2, "unknown symbol");
                    return Flow::Go;
                };
                Some(p.id)
            }
            _ => {
                self.business_reject(m, 0, "MassStatusReqType not supported: use 1 (a symbol) or 7 (all)");
                return Flow::Go;
            }
        };
        let side = match m.text(54) {
            None => None,
            Some(s) => match side_of(s) {
                Some(side) => Some(side),
                None => {
                    self.business_reject(m, 0, "Side not supported: use 1 (buy) or 2 (sell)");
                    return Flow::Go;
                }
            },
        };
        let mut rows = Vec::new();
        let mut before = None;
        let mut more = false;
        let mut read = 0usize;
        'pages: loop {
            let page = match self
                .app
                .db
                .orders(self.me, OrderFilter::Open, product, before, atlas_store::PAGE_ROWS_MAX)
                .await
            {
                Ok(p) => p,
                Err(_) => {
                    self.business_reject(m, 4, "order status is unavailable; retry later");
                    return Flow::Go;
                }
            };
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            read += page.len();
            for row in page {
                if side.is_some_and(|s| s != row.side) {
                    continue;
                }
                if rows.len() == MASS_STATUS_REPORTS_MAX {
                    more = true;
                    break 'pages;
                }
                rows.push(row);
            }
            // The other side's orders are read too: bounded all the same.
            if read >= OPEN_ORDERS_LOADED_MAX {
                more = true;
                break;
            }
        }
        let now = now_ns();
        let total = rows.len().to_string();
        if rows.is_empty() {
            let mut b = fix::Body::with_capacity(200);
            b.push_str(37, "NONE").push_str(17, "0").push_str(150, "I").push_str(39, "8");
            b.push_str(55, m.text(55).unwrap_or("NONE")).push_str(54, m.text(54).unwrap_or("1"));
            b.push_str(151, "0").push_str(14, "0").push_str(6, "0").push_str(58, "no open orders match");
            b.push_str(60, &exec::utc_timestamp(now)).push_str(584, &req_id).push_str(911, "0");
            b.push_str(912, "Y");
            self.send_body("8", &b);
            return Flow::Go;
        }
        let count = rows.len();
        for (i, row) in rows.iter().enumerate() {
            let Some(p) = self.app.product_any(row.product) else { continue };
            let mut b = exec::status_report(row, &p, None, now);
            b.push_str(584, &req_id).push_str(911, &total);
            if i + 1 == count {
                b.push_str(912, "Y");
                if more {
                    b.push_str(
                        58,
                        &format!(
                            "possibly not every open order is reported (at most {MASS_STATUS_REPORTS_MAX} of the first {OPEN_ORDERS_LOADED_MAX} read): ask by symbol"
                        ),
                    );
                }
            }
            self.send_body("8", &b);
        }
        Flow::Go
    }

    fn on_outcome(&mut self, result: Result<Receipt, SubmitError>, pending: Pending) {
        let refusal = |r: &Result<Receipt, SubmitError>| -> Option<(u32, String)> {
            match r {
                Err(e) => Some((99, ApiError::from(*e).detail)),
                Ok(r) => match r.events.first() {
                    Some(Event::Rejected { reason }) => Some((99, crate::model::reject(*reason).detail)),
                    _ => None,
                },
            }
        };
        match pending {
            Pending::New { cl_ord_id, order, symbol, read } => {
                answered(&mut self.entered, &cl_ord_id);
                let (code, text) = match &result {
                    Ok(r) if r.duplicate => (6, "duplicate ClOrdID".to_owned()),
                    other => refusal(other).unwrap_or((99, "refused".into())),
                };
                let mut body: Fields = vec![
                    (37, "NONE".into()),
                    (11, cl_ord_id),
                    (17, self.next_exec_id()),
                    (150, "8".into()),
                    (39, "8".into()),
                    (55, symbol),
                    (54, exec::side_code(order.side).into()),
                    (38, order.quantity.0.to_string()),
                    (40, exec::ord_type_code(order.order_type).into()),
                    (59, exec::tif_code(order.time_in_force).into()),
                    (151, "0".into()),
                    (14, "0".into()),
                    (6, "0".into()),
                    (103, code.to_string()),
                    (58, text),
                    (60, exec::utc_timestamp(now_ns())),
                ];
                if let Ok(r) = &result
                    && r.duplicate
                    && let Some(id) = r.order_id
                {
                    body[0].1 = id.0.to_string();
                }
                self.send("8", &body);
                self.ack_latency.record(read.elapsed());
            }
            Pending::Cancel { order, cl_ord_id, orig } => {
                if let Ok(r) = &result
                    && r.duplicate
                {
                    // CxlRejReason 6: nothing was cancelled.
                    self.cancel_reject(Some(order), &cl_ord_id, orig.as_deref(), "1", 6, &duplicate_text(r));
                } else if let Some((_, text)) = refusal(&result) {
                    let reason = if self.orders.too_late(order) { 0 } else { 99 };
                    self.cancel_reject(Some(order), &cl_ord_id, orig.as_deref(), "1", reason, &text);
                } else if let Ok(r) = &result {
                    // Reported from the batch that holds it.
                    let request = Request {
                        order,
                        cl_ord_id,
                        orig_cl_ord_id: orig,
                        asked: Asked::Cancel,
                        time_ns: r.time.0,
                    };
                    self.orders.requests.insert(r.seq.0, request);
                }
            }
            Pending::Replace { order, cl_ord_id, orig } => {
                if let Ok(r) = &result
                    && r.duplicate
                {
                    // CxlRejReason 6: the ClOrdID names an order already
                    // (possibly this one, by an earlier replace); nothing changed.
                    self.cancel_reject(Some(order), &cl_ord_id, orig.as_deref(), "2", 6, &duplicate_text(r));
                } else if let Some((_, text)) = refusal(&result) {
                    let reason = if self.orders.too_late(order) { 0 } else { 99 };
                    self.cancel_reject(Some(order), &cl_ord_id, orig.as_deref(), "2", reason, &text);
                } else if let Ok(r) = &result {
                    let terms = r.events.iter().find_map(|e| match e {
                        Event::Amended { order_id, quantity, price, stop_price, .. }
                            if *order_id == order =>
                        {
                            Some(Terms {
                                quantity: quantity.0,
                                price: price.map(|p| p.0),
                                stop: stop_price.map(|p| p.0),
                            })
                        }
                        _ => None,
                    });
                    let request = Request {
                        order,
                        cl_ord_id,
                        orig_cl_ord_id: orig,
                        asked: Asked::Replace(terms),
                        time_ns: r.time.0,
                    };
                    self.orders.requests.insert(r.seq.0, request);
                }
            }
            Pending::Mass { cl_ord_id, request_type } => {
                let body: Fields = match (&result, refusal(&result)) {
                    (Ok(r), None) => {
                        let n = r.events.iter().filter(|e| matches!(e, Event::Cancelled { .. })).count();
                        vec![
                            (11, cl_ord_id),
                            (37, format!("MC{}", r.seq.0)),
                            (530, request_type.clone()),
                            (531, request_type),
                            (533, n.to_string()),
                        ]
                    }
                    (_, refusal) => vec![
                        (11, cl_ord_id),
                        (37, "NONE".into()),
                        (530, request_type),
                        (531, "0".into()),
                        (532, "99".into()),
                        (58, refusal.map_or_else(|| "refused".into(), |r| r.1)),
                    ],
                };
                self.send("r", &body);
            }
        }
    }

    /// Cancels what the session asked to be cancelled when it ends.
    async fn cancel_on_disconnect(&mut self) {
        let mut commands: Vec<CommandKind> = match self.cod {
            CancelOnDisconnect::No => return,
            // Submitted behind everything this session entered, so the
            // orders in flight are cancelled too.
            CancelOnDisconnect::All => vec![CommandKind::MassCancel { participant: self.me, product: None }],
            CancelOnDisconnect::Session => {
                // The orders entered here and not reported yet are the
                // session's too: their commits (the next few) are taken in
                // first, so they are among the open ones.
                self.settle().await;
                self.orders
                    .open
                    .iter()
                    .filter(|(_, t)| t.mine)
                    .map(|(id, _)| CommandKind::Cancel { order_id: *id, participant: Some(self.me) })
                    .collect()
            }
        };
        if self.cod == CancelOnDisconnect::Session && !self.settled() {
            // The feed was lost or the wait ran out: the answers still in
            // flight name the rest (answered orders the feed has not
            // reported yet stay unknown here).
            tracing::error!(
                participant = self.me.0,
                unreported = self.entered.len(),
                "cancel on disconnect: not every order in flight was reported in time"
            );
            let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
            while let Some((ticket, pending)) = self.in_flight.pop_front() {
                if !matches!(pending, Pending::New { .. }) {
                    continue;
                }
                match tokio::time::timeout_at(deadline, ticket).await {
                    Ok(Ok(Ok(r))) => {
                        let id = r.order_id.filter(|id| {
                            // One already reported is among the open ones above.
                            !r.duplicate && !finished(*id, &r.events) && !self.orders.open.contains_key(id)
                        });
                        if let Some(id) = id {
                            commands.push(CommandKind::Cancel { order_id: id, participant: Some(self.me) });
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        for c in commands {
            // Journaled like any cancel; nobody waits for the answer.
            if self.app.seq.submit(self.actor(), None, c).is_err() {
                tracing::error!(participant = self.me.0, "cancel on disconnect could not be submitted");
            }
        }
    }
}

/// Whether a new order's own events leave it done (refused, or its
/// remainder cancelled), so there is nothing left to cancel. A filled
/// order is not told apart here: its cancel is refused as too late.
fn finished(id: OrderId, events: &[Event]) -> bool {
    events.iter().any(|e| match e {
        Event::Rejected { .. } => true,
        Event::Cancelled { order_id, open, .. } => *order_id == id && open.0 == 0,
        _ => false,
    })
}

/// A whole number of units: `10`, or `10.000`.
fn parse_qty(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || int.len() > 18
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b == b'0')
    {
        return None;
    }
    int.parse().ok().filter(|q: &i64| *q > 0)
}

/// OrdRejReason (103) 11: unsupported order characteristic.
const UNSUPPORTED: u32 = 11;
/// OrdRejReason (103) 13: incorrect quantity.
const INCORRECT_QUANTITY: u32 = 13;

/// ExecInst (18) values meaning post-only: 6 (participate, don't initiate)
/// and A (add liquidity only, as Coinbase's gateway has it).
const POST_ONLY: &[&str] = &["6", "A"];

fn side_of(v: &str) -> Option<Side> {
    match v {
        "1" => Some(Side::Buy),
        "2" => Some(Side::Sell),
        _ => None,
    }
}

fn order_type_of(v: &str) -> Option<OrderType> {
    match v {
        "1" => Some(OrderType::Market),
        "2" => Some(OrderType::Limit),
        "3" => Some(OrderType::Stop),
        "4" => Some(OrderType::StopLimit),
        _ => None,
    }
}

/// TimeInForce (59), absent meaning GTC; None: a value Atlas does not do.
fn time_in_force_of(v: Option<&str>) -> Option<TimeInForce> {
    match v {
        None | Some("1") => Some(TimeInForce::Gtc),
        Some("0") => Some(TimeInForce::Day),
        Some("3") => Some(TimeInForce::Ioc),
        Some("4") => Some(TimeInForce::Fok),
        Some(_) => None,
    }
}

/// Fields an order or replace may carry in FIX 4.4 that change what it means
/// but that Atlas does not do: refused, never ignored. The text says which.
fn unsupported(m: &Message) -> Option<String> {
    const FIELDS: [(u32, &str); 5] =
        [(110, "MinQty"), (111, "MaxFloor"), (152, "CashOrderQty"), (126, "ExpireTime"), (432, "ExpireDate")];
    if let Some((tag, name)) = FIELDS.iter().find(|(t, _)| m.get(*t).is_some()) {
        return Some(format!("{name} ({tag}) is not supported"));
    }
    let inst = m.text(18)?;
    let other = inst.split(' ').find(|i| !POST_ONLY.contains(i))?;
    Some(format!("ExecInst {other} is not supported: only 6 or A (post-only)"))
}

/// The routing fields of an answer to `m`: who it was sent on behalf of is
/// who the answer is delivered to, and the other way round (the
/// specification's reverse routing: 115↔128, 116↔129, 144↔145).
fn reverse_route(m: &Message) -> Fields {
    const PAIRS: [(u32, u32); 6] = [(115, 128), (128, 115), (116, 129), (129, 116), (144, 145), (145, 144)];
    PAIRS
        .iter()
        .filter_map(|&(from, to)| m.text(from).filter(|v| !v.is_empty()).map(|v| (to, v.to_owned())))
        .collect()
}

/// SequenceReset-GapFill standing in for `from..to` (sent with MsgSeqNum `from`).
fn gap_fill(from: u64, to: u64, key: &str, now: &str) -> Vec<u8> {
    let (from, to) = (from.to_string(), to.to_string());
    fix::encode(&[
        (35, b"4"),
        (34, from.as_bytes()),
        (49, COMP_ID.as_bytes()),
        (52, now.as_bytes()),
        (56, key.as_bytes()),
        (43, b"Y"),
        (123, b"Y"),
        (36, to.as_bytes()),
    ])
}

/// The text of a refusal for a ClOrdID already used today.
fn duplicate_text(r: &Receipt) -> String {
    match r.order_id {
        Some(holder) => format!("duplicate ClOrdID (in use by order {})", holder.0),
        None => "duplicate ClOrdID".to_owned(),
    }
}

/// A kept message sent again: PossDupFlag, OrigSendingTime, a new SendingTime.
fn possible_duplicate(m: &Message, now: &str) -> Vec<u8> {
    let orig = m.get(52).unwrap_or_default().to_vec();
    let mut fields: Vec<(u32, &[u8])> = Vec::new();
    for (tag, value) in m.fields() {
        match tag {
            8 | 9 | 10 | 43 | 97 | 122 => {}
            52 => {
                fields.push((52, now.as_bytes()));
                fields.push((43, b"Y"));
                fields.push((122, &orig));
            }
            _ => fields.push((tag, value)),
        }
    }
    fix::encode(&fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps_round_trip() {
        let now = now_ns();
        let back = parse_utc_timestamp(&exec::utc_timestamp(now)).unwrap();
        assert!((now - back).abs() < 1_000_000);
    }

    #[test]
    fn a_clordid_stays_in_flight_until_its_last_order_is_answered() {
        let mut entered = HashMap::default();
        let first = Instant::now();
        entered.insert("x".to_owned(), InFlight { read: first, count: 2 });
        assert_eq!(answered(&mut entered, "x"), Some(first));
        assert!(entered.contains_key("x"), "one order is still in flight");
        assert_eq!(answered(&mut entered, "x"), Some(first));
        assert!(entered.is_empty());
        assert_eq!(answered(&mut entered, "x"), None);
    }

    #[test]
    fn quantities_are_whole_units() {
        assert_eq!(parse_qty("10"), Some(10));
        assert_eq!(parse_qty("10.000"), Some(10));
        for bad in ["", "0", "-1", "1.5", "1e3", ".5", "1."] {
            let ok = bad == "1.";
            assert_eq!(parse_qty(bad).is_some(), ok, "{bad}");
        }
    }

    #[test]
    fn resends_carry_poss_dup_and_the_original_time() {
        let sent = fix::encode(&[
            (35, b"8"),
            (34, b"7"),
            (49, b"ATLAS"),
            (52, b"20261122-10:00:00.000"),
            (56, b"K"),
            (37, b"1"),
        ]);
        let Frame::Message(_, m) = fix::frame(&sent) else { panic!() };
        let again = possible_duplicate(&m, "20261122-10:05:00.000");
        let Frame::Message(_, r) = fix::frame(&again) else { panic!() };
        assert_eq!(r.text(34), Some("7"));
        assert_eq!(r.text(43), Some("Y"));
        assert_eq!(r.text(122), Some("20261122-10:00:00.000"));
        assert_eq!(r.text(52), Some("20261122-10:05:00.000"));
        assert_eq!(r.text(37), Some("1"));
        let Frame::Message(_, g) = fix::frame(&gap_fill(3, 7, "K", "20261122-10:05:00.000")) else {
            panic!()
        };
        assert_eq!(
            (g.text(35), g.text(34), g.text(123), g.text(36)),
            (Some("4"), Some("3"), Some("Y"), Some("7"))
        );
    }
}
