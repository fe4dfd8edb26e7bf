//! Execution reports from what the sequencer commits: a session follows its
//! participant's orders on the market feed (every committed batch's order rows
//! and trades) and reports each change — new, replaced, each fill, cancelled,
//! expired — whoever caused it (this session, REST, another session, the
//! matching of someone else's order, the end of the day).

/// Maps keyed by what clients choose (ClOrdIDs): a fast hash, randomly seeded.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;

use std::collections::BTreeMap;

use atlas_engine::{OrderType, TimeInForce};
use atlas_journal::market::MarketBatch;
use atlas_journal::projection::{OrderRow, OrderStatus};
use atlas_store::ProductRow;
use atlas_types::{OrderId, ParticipantId, Side};

use atlas_wire::fix::{Body, write_decimal};

use crate::model::format_price;

/// A body of a message to send: (tag, value), in order.
pub type Fields = Vec<(u32, String)>;

/// What a session knows of one of its participant's open orders.
#[derive(Clone, Debug)]
pub struct Tracked {
    /// The ClOrdID it currently answers to (a replace gives it a new one).
    pub cl_ord_id: Option<String>,
    /// Entered through this session (for cancel-on-disconnect `S`).
    pub mine: bool,
    traded: i64,
    notional: i128,
    original: i64,
    price: Option<i64>,
    stop: Option<i64>,
    /// The journal entry the totals are as of: a fill printed by it or an
    /// earlier one is in them already (a row read from the tables at logon
    /// may be newer than batches still queued on the feed).
    as_of: u64,
}

/// A cancel or replace this session asked for and the journal accepted, kept
/// by its sequence number until the committed batch that holds it is
/// reported: its report carries its own ClOrdID (and, for a replace, its own
/// terms) even when another request for the same order is in flight behind
/// it, or lands in the same batch.
#[derive(Clone, Debug)]
pub struct Request {
    /// The order it names.
    pub order: OrderId,
    /// The request's ClOrdID.
    pub cl_ord_id: String,
    /// The ClOrdID it referred to.
    pub orig_cl_ord_id: Option<String>,
    /// What it asked for.
    pub asked: Asked,
    /// When it was committed (Unix nanoseconds).
    pub time_ns: i64,
}

/// What a [`Request`] asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// Cancel what is open.
    Cancel,
    /// New terms: the engine's `Amended` event (`None` if it had none).
    Replace(Option<Terms>),
}

/// An order's terms after a replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    /// Total quantity.
    pub quantity: i64,
    /// Limit price.
    pub price: Option<i64>,
    /// Stop price.
    pub stop: Option<i64>,
}

/// The orders a session follows.
#[derive(Default)]
pub struct Orders {
    /// Open orders, by id.
    pub open: HashMap<OrderId, Tracked>,
    /// ClOrdID → order, for cancels and replaces that name the ClOrdID.
    pub by_cl_ord_id: HashMap<String, OrderId>,
    /// Cancels and replaces accepted and not yet reported, by sequence number.
    pub requests: BTreeMap<u64, Request>,
    /// The ClOrdIDs of orders followed here until they finished.
    pub finished: Finished,
}

/// The most finished orders a session remembers by ClOrdID. Each costs
/// 140–210 bytes (measured with 8- and 36-character ClOrdIDs): 2.2–3.3 MiB
/// for a session that has finished this many, and so up to ~3.4 GB with all
/// of `fix::CONNECTIONS_MAX` sessions full. 16,384 covers about a second of
/// `bench fix` at 20k orders/s, where cancels name orders placed a second
/// earlier; a journal query that need not wait for the commit would make
/// this cache unnecessary.
pub const FINISHED_MAX: usize = 16_384;

/// ClOrdID → order for orders that finished while the session followed them,
/// the newest [`FINISHED_MAX`]. A cancel that names one of them (a fill beat
/// it, which is common) is answered "too late" without a round trip to the
/// journal, which would hold up the session's next orders. Older ones are
/// still found through the journal and the tables.
#[derive(Default)]
pub struct Finished {
    ids: HashMap<String, OrderId>,
    /// Oldest first, to forget in that order.
    age: std::collections::VecDeque<(String, OrderId)>,
}

impl Finished {
    /// Remembers that the order answering to `cl_ord_id` finished.
    pub fn insert(&mut self, cl_ord_id: String, id: OrderId) {
        if self.age.len() == FINISHED_MAX
            && let Some((old, old_id)) = self.age.pop_front()
            && self.ids.get(&old) == Some(&old_id)
        {
            self.ids.remove(&old);
        }
        self.ids.insert(cl_ord_id.clone(), id);
        self.age.push_back((cl_ord_id, id));
    }

    /// The finished order that answered to `cl_ord_id`, if remembered.
    pub fn get(&self, cl_ord_id: &str) -> Option<OrderId> {
        self.ids.get(cl_ord_id).copied()
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// FIX OrdStatus (39) of a row.
fn ord_status(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::New | OrderStatus::Booked => "0",
        OrderStatus::PartiallyFilled => "1",
        OrderStatus::Filled => "2",
        OrderStatus::Cancelled | OrderStatus::PartiallyCancelled => "4",
        OrderStatus::Expired => "C",
    }
}

fn done(s: OrderStatus) -> bool {
    matches!(
        s,
        OrderStatus::Filled | OrderStatus::Cancelled | OrderStatus::PartiallyCancelled | OrderStatus::Expired
    )
}

/// Side (54).
pub fn side_code(s: Side) -> &'static str {
    match s {
        Side::Buy => "1",
        Side::Sell => "2",
    }
}

/// OrdType (40).
pub fn ord_type_code(t: OrderType) -> &'static str {
    match t {
        OrderType::Market => "1",
        OrderType::Limit => "2",
        OrderType::Stop => "3",
        OrderType::StopLimit => "4",
    }
}

/// TimeInForce (59).
pub fn tif_code(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::Day => "0",
        TimeInForce::Gtc => "1",
        TimeInForce::Ioc => "3",
        TimeInForce::Fok => "4",
    }
}

/// FIX UTCTimestamp with milliseconds from nanoseconds since the epoch. The
/// date and time of day are formatted once per second (per thread): every
/// message carries one or two of these.
pub fn utc_timestamp(ns: i64) -> String {
    let mut out = Vec::with_capacity(21);
    write_utc_timestamp(&mut out, ns);
    // ASCII digits and separators only.
    String::from_utf8(out).unwrap_or_default()
}

/// [`utc_timestamp`], appended to `out`.
pub fn write_utc_timestamp(out: &mut Vec<u8>, ns: i64) {
    thread_local! {
        static SECOND: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let (second, ms) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) / 1_000_000);
    SECOND.with(|cell| {
        let mut c = cell.borrow_mut();
        if c.0 != second {
            let t =
                time::OffsetDateTime::from_unix_timestamp(second).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            c.1 = format!(
                "{:04}{:02}{:02}-{:02}:{:02}:{:02}.",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            c.0 = second;
        }
        out.extend_from_slice(c.1.as_bytes());
        let ms = ms as u32;
        for d in [ms / 100, ms / 10 % 10, ms % 10] {
            out.push(b'0' + d as u8);
        }
    })
}

/// The average price of `traded` units worth `notional` (price units × units),
/// with the product's decimal places, and up to four more when it is between
/// ticks (truncated).
pub fn avg_px(notional: i128, traded: i64, product: &ProductRow) -> String {
    if traded <= 0 {
        return "0".into();
    }
    let scale = product.price_scale;
    let scaled = notional * 10_000 / i128::from(traded);
    let digits = scale + 4;
    let neg = scaled < 0;
    let s = scaled.unsigned_abs().to_string();
    let s = format!("{s:0>width$}", width = digits as usize + 1);
    let (int, frac) = s.split_at(s.len() - digits as usize);
    // The price's own places always; the four finer ones only when not zero.
    let keep = frac.trim_end_matches('0').len().max(scale as usize);
    let frac = &frac[..keep];
    let sign = if neg { "-" } else { "" };
    if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") }
}

/// An ExecID (17) `SEQ-ORDER-KIND`, with the trade id after the kind for a fill.
fn exec_id(seq: u64, order: OrderId, kind: u8, trade: Option<u64>) -> impl FnOnce(&mut Vec<u8>) {
    move |v: &mut Vec<u8>| {
        write_decimal(v, seq);
        v.push(b'-');
        write_decimal(v, order.0);
        v.push(b'-');
        v.push(kind);
        if let Some(t) = trade {
            write_decimal(v, t);
        }
    }
}

/// The common body of an execution report about `row`.
#[allow(clippy::too_many_arguments)]
fn report(
    row: &OrderRow,
    product: &ProductRow,
    exec_id: impl FnOnce(&mut Vec<u8>),
    exec_type: &str,
    status: &str,
    cl_ord_id: Option<&str>,
    orig_cl_ord_id: Option<&str>,
    cum: i64,
    notional: i128,
    leaves: i64,
    original: i64,
    time_ns: i64,
) -> Body {
    let mut f = Body::with_capacity(320);
    f.push_with(37, |v| write_decimal(v, row.id.0));
    if let Some(c) = cl_ord_id {
        f.push_str(11, c);
    }
    if let Some(o) = orig_cl_ord_id {
        f.push_str(41, o);
    }
    f.push_with(17, exec_id).push_str(150, exec_type).push_str(39, status);
    f.push_with(1, |v| write_decimal(v, u64::from(row.participant.0)));
    f.push_str(55, &product.symbol).push_str(54, side_code(row.side)).push_int(38, original);
    f.push_str(40, ord_type_code(row.order_type));
    if let Some(p) = row.price {
        f.push_str(44, &format_price(p, product));
    }
    if let Some(p) = row.stop_price {
        f.push_str(99, &format_price(p, product));
    }
    f.push_str(59, tif_code(row.time_in_force));
    if row.post_only {
        f.push_str(18, "6");
    }
    f.push_int(151, leaves.max(0)).push_int(14, cum).push_str(6, &avg_px(notional, cum, product));
    f.push_with(60, |v| write_utc_timestamp(v, time_ns));
    f
}

/// An order status report (ExecType I, ExecID 0 as FIX 4.4 has it) about
/// `row` as committed, answering an OrderStatusRequest or an
/// OrderMassStatusRequest. `cl_ord_id` is the ClOrdID the request named, else
/// the order's own.
pub fn status_report(row: &OrderRow, product: &ProductRow, cl_ord_id: Option<&str>, now_ns: i64) -> Body {
    let leaves = if done(row.status) { 0 } else { row.open.0 };
    report(
        row,
        product,
        |v: &mut Vec<u8>| v.push(b'0'),
        "I",
        ord_status(row.status),
        cl_ord_id.or(row.client_order_id.as_deref()),
        None,
        row.traded.0,
        row.notional,
        leaves,
        row.original.0,
        now_ns,
    )
}

/// The Replaced report (ExecType 5) of `row` taking `terms` at `(seq, time)`,
/// under `cl_ord_id` (which it answers to from then on); `t` takes the terms.
#[allow(clippy::too_many_arguments)]
fn replaced(
    by_cl_ord_id: &mut HashMap<String, OrderId>,
    t: &mut Tracked,
    row: &OrderRow,
    product: &ProductRow,
    (seq, time_ns): (u64, i64),
    cl_ord_id: Option<String>,
    orig_cl_ord_id: Option<String>,
    terms: Terms,
) -> Body {
    if let Some(c) = &cl_ord_id {
        // The order answers to its new ClOrdID now (the map stays one entry
        // per open order; the original id is still found in the tables).
        if let Some(old) = &t.cl_ord_id
            && old != c
            && by_cl_ord_id.get(old) == Some(&row.id)
        {
            by_cl_ord_id.remove(old);
        }
        by_cl_ord_id.insert(c.clone(), row.id);
    }
    t.cl_ord_id = cl_ord_id;
    (t.original, t.price, t.stop) = (terms.quantity, terms.price, terms.stop);
    // The report shows the terms as of this replace, which a later one in the
    // same batch may have changed again.
    let mut at = row.clone();
    at.original = atlas_types::Qty(terms.quantity);
    at.price = terms.price.map(atlas_types::Price);
    at.stop_price = terms.stop.map(atlas_types::Price);
    let status = if t.traded > 0 { "1" } else { "0" };
    report(
        &at,
        product,
        exec_id(seq, row.id, b'R', None),
        "5",
        status,
        t.cl_ord_id.as_deref(),
        orig_cl_ord_id.as_deref(),
        t.traded,
        t.notional,
        t.original - t.traded,
        t.original,
        time_ns,
    )
}

impl Orders {
    /// Starts following an order already open when the session began.
    pub fn track_existing(&mut self, row: &OrderRow) {
        if done(row.status) {
            return;
        }
        if let Some(c) = &row.client_order_id {
            self.by_cl_ord_id.insert(c.clone(), row.id);
        }
        self.open.insert(
            row.id,
            Tracked {
                cl_ord_id: row.client_order_id.clone(),
                mine: false,
                traded: row.traded.0,
                notional: row.notional,
                original: row.original.0,
                price: row.price.map(|p| p.0),
                stop: row.stop_price.map(|p| p.0),
                as_of: row.update_seq.0,
            },
        );
    }

    /// Whether a cancel or replace of `order` comes too late (CxlRejReason
    /// 0): the order finished, or a cancel of it was accepted and is not
    /// reported yet.
    pub fn too_late(&self, order: OrderId) -> bool {
        !self.open.contains_key(&order)
            || self.requests.values().any(|r| r.order == order && r.asked == Asked::Cancel)
    }

    /// Stops following an order that finished (its ClOrdID moves to
    /// `finished`).
    pub fn forget(&mut self, id: OrderId) {
        if let Some(t) = self.open.remove(&id)
            && let Some(c) = t.cl_ord_id
        {
            if self.by_cl_ord_id.get(&c) == Some(&id) {
                self.by_cl_ord_id.remove(&c);
            }
            self.finished.insert(c, id);
        }
    }

    /// The execution reports for `me` in one committed batch, in order.
    /// `session_cl_ord_ids` tells which new orders this session entered.
    pub fn on_batch(
        &mut self,
        me: ParticipantId,
        batch: &MarketBatch,
        product: &dyn Fn(atlas_types::ProductId) -> Option<std::sync::Arc<ProductRow>>,
        entered_here: &mut dyn FnMut(&str) -> bool,
    ) -> Vec<Body> {
        let mut out = Vec::new();
        // The requests this batch holds (all of them: each was answered
        // before the batch was published).
        let later = match batch.commands.1.checked_add(1) {
            Some(next) => self.requests.split_off(&next),
            None => BTreeMap::new(),
        };
        let asked = std::mem::replace(&mut self.requests, later);
        let mut replaces: HashMap<OrderId, Vec<(u64, Request)>> = HashMap::default();
        let mut cancels: HashMap<OrderId, Request> = HashMap::default();
        for (seq, r) in asked {
            match r.asked {
                Asked::Cancel => {
                    // An accepted cancel finishes the order: one per order.
                    cancels.insert(r.order, r);
                }
                Asked::Replace(_) => replaces.entry(r.order).or_default().push((seq, r)),
            }
        }
        let mine: Vec<&OrderRow> = batch.orders.iter().filter(|r| r.participant == me).collect();
        if mine.is_empty() {
            return out;
        }
        let by_id: HashMap<OrderId, &OrderRow> = mine.iter().map(|r| (r.id, *r)).collect();
        // New orders first, then replaces (both before the fills they led to).
        for row in &mine {
            let Some(p) = product(row.product) else { continue };
            if !self.open.contains_key(&row.id) {
                // A new order (or one finished within this batch: still reported).
                let here = row.client_order_id.as_deref().is_some_and(&mut *entered_here);
                out.push(report(
                    row,
                    &p,
                    exec_id(row.entry_seq.0, row.id, b'N', None),
                    "0",
                    "0",
                    row.client_order_id.as_deref(),
                    None,
                    0,
                    0,
                    row.original.0,
                    row.original.0,
                    row.entry_time.0,
                ));
                if let Some(c) = &row.client_order_id {
                    self.by_cl_ord_id.insert(c.clone(), row.id);
                }
                self.open.insert(
                    row.id,
                    Tracked {
                        cl_ord_id: row.client_order_id.clone(),
                        mine: here,
                        traded: 0,
                        notional: 0,
                        original: row.original.0,
                        price: row.price.map(|p| p.0),
                        stop: row.stop_price.map(|p| p.0),
                        as_of: 0,
                    },
                );
                continue;
            }
            let Some(t) = self.open.get_mut(&row.id) else { continue };
            // Each replace asked here, in the order committed, with its own
            // ClOrdID and terms; then a change nobody here asked for (REST,
            // another session), as the order's own.
            for (seq, r) in replaces.remove(&row.id).unwrap_or_default() {
                let Asked::Replace(terms) = r.asked else { continue };
                let terms = terms.unwrap_or(Terms { quantity: t.original, price: t.price, stop: t.stop });
                let orig = r.orig_cl_ord_id.or(t.cl_ord_id.clone());
                out.push(replaced(
                    &mut self.by_cl_ord_id,
                    t,
                    row,
                    &p,
                    (seq, r.time_ns),
                    Some(r.cl_ord_id),
                    orig,
                    terms,
                ));
            }
            let terms = Terms {
                quantity: row.original.0,
                price: row.price.map(|p| p.0),
                stop: row.stop_price.map(|p| p.0),
            };
            if (t.original, t.price, t.stop) != (terms.quantity, terms.price, terms.stop) {
                let cl = t.cl_ord_id.clone();
                out.push(replaced(
                    &mut self.by_cl_ord_id,
                    t,
                    row,
                    &p,
                    (row.update_seq.0, row.update_time.0),
                    cl,
                    None,
                    terms,
                ));
            }
        }
        // Fills, in the order they printed.
        for trade in &batch.trades {
            for (order, ours, aggressor) in [
                (trade.maker_order, trade.maker_participant == me, false),
                (trade.taker_order, trade.taker_participant == me, true),
            ] {
                if !ours {
                    continue;
                }
                let Some(row) = by_id.get(&order) else { continue };
                let Some(p) = product(row.product) else { continue };
                let Some(t) = self.open.get_mut(&order) else { continue };
                if trade.seq.0 > t.as_of {
                    t.traded += trade.quantity.0;
                    t.notional += i128::from(trade.price.0) * i128::from(trade.quantity.0);
                }
                let status = if t.traded >= t.original { "2" } else { "1" };
                let mut f = report(
                    row,
                    &p,
                    exec_id(trade.seq.0, order, b'F', Some(trade.id.0)),
                    "F",
                    status,
                    t.cl_ord_id.as_deref(),
                    None,
                    t.traded,
                    t.notional,
                    t.original - t.traded,
                    t.original,
                    trade.time.0,
                );
                f.push_int(32, trade.quantity.0).push_str(31, &format_price(trade.price, &p));
                f.push_with(880, |v| write_decimal(v, trade.id.0))
                    .push_str(1057, if aggressor { "Y" } else { "N" });
                out.push(f);
            }
        }
        // Then what finished.
        for row in &mine {
            if !done(row.status) {
                // Keep the tracked totals true to the row (rows are final).
                if let Some(t) = self.open.get_mut(&row.id) {
                    t.traded = row.traded.0;
                    t.notional = row.notional;
                    t.as_of = row.update_seq.0;
                }
                continue;
            }
            let Some(p) = product(row.product) else { continue };
            let Some(t) = self.open.get(&row.id).cloned() else { continue };
            if row.status != OrderStatus::Filled {
                let req = cancels.remove(&row.id);
                let (cl, orig) = match &req {
                    Some(r) => (Some(r.cl_ord_id.clone()), r.orig_cl_ord_id.clone().or(t.cl_ord_id.clone())),
                    None => (t.cl_ord_id.clone(), None),
                };
                let exec_type = if row.status == OrderStatus::Expired { "C" } else { "4" };
                out.push(report(
                    row,
                    &p,
                    exec_id(row.update_seq.0, row.id, b'C', None),
                    exec_type,
                    ord_status(row.status),
                    cl.as_deref(),
                    orig.as_deref(),
                    row.traded.0,
                    row.notional,
                    0,
                    row.original.0,
                    row.update_time.0,
                ));
            }
            self.forget(row.id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(scale: u32) -> ProductRow {
        ProductRow {
            id: atlas_types::ProductId(1),
            symbol: "ACME".into(),
            description: String::new(),
            product_type: "EQUITY".into(),
            tick_size: "0.01".into(),
            price_scale: scale,
            lot_size: 1,
            currency: "USD".into(),
            status: "ACTIVE".into(),
        }
    }

    #[test]
    fn finished_orders_are_remembered_newest_first_within_the_bound() {
        let mut f = Finished::default();
        assert!(f.is_empty());
        for i in 0..FINISHED_MAX as u64 + 10 {
            f.insert(format!("c{i}"), OrderId(i));
        }
        assert_eq!(f.len(), FINISHED_MAX);
        assert_eq!(f.get("c0"), None);
        assert_eq!(f.get("c9"), None);
        assert_eq!(f.get("c10"), Some(OrderId(10)));
        let last = FINISHED_MAX as u64 + 9;
        assert_eq!(f.get(&format!("c{last}")), Some(OrderId(last)));
        // A ClOrdID used again (another day) names its newest order, which
        // the older entry's eviction leaves in place.
        let mut f = Finished::default();
        f.insert("x".into(), OrderId(1));
        f.insert("x".into(), OrderId(2));
        for i in 0..FINISHED_MAX as u64 - 2 {
            f.insert(format!("c{i}"), OrderId(100 + i));
        }
        f.insert("y".into(), OrderId(3));
        assert_eq!(f.get("x"), Some(OrderId(2)));
        assert!(f.len() <= FINISHED_MAX);
    }

    #[test]
    fn average_price_is_exact_or_four_places_finer() {
        let p = product(2);
        assert_eq!(avg_px(0, 0, &p), "0");
        // 10 @ 10.05 → 10.05
        assert_eq!(avg_px(1005 * 10, 10, &p), "10.05");
        assert_eq!(avg_px(1000 * 3, 3, &p), "10.00");
        // 1 @ 10.00 + 2 @ 10.01 → 10.006666…
        assert_eq!(avg_px(1000 + 2 * 1001, 3, &p), "10.006666");
        assert_eq!(avg_px(500, 1, &product(0)), "500");
        assert_eq!(avg_px(5, 1, &p), "0.05");
    }

    /// A resting order of 10 with `traded` done, last changed by entry `seq`.
    fn row(traded: i64, seq: u64) -> OrderRow {
        use atlas_engine::SelfTradePrevention;
        use atlas_types::{Price, ProductId, Qty, Seq, Timestamp};
        OrderRow {
            id: OrderId(7),
            client_order_id: Some("c7".into()),
            product: ProductId(1),
            participant: ParticipantId(1),
            side: Side::Buy,
            order_type: OrderType::Limit,
            time_in_force: TimeInForce::Gtc,
            post_only: false,
            self_trade_prevention: SelfTradePrevention::None,
            price: Some(Price(1000)),
            stop_price: None,
            original: Qty(10),
            traded: Qty(traded),
            cancelled: Qty(0),
            open: Qty(10 - traded),
            notional: i128::from(traded) * 1000,
            status: if traded > 0 { OrderStatus::PartiallyFilled } else { OrderStatus::Booked },
            entry_seq: Seq(1),
            entry_time: Timestamp(0),
            update_seq: Seq(seq),
            update_time: Timestamp(0),
            triggered: false,
            expired: false,
        }
    }

    fn fill(quantity: i64, seq: u64) -> atlas_journal::projection::TradeRow {
        use atlas_types::{Price, ProductId, Qty, Seq, Timestamp, TradeId};
        atlas_journal::projection::TradeRow {
            id: TradeId(seq),
            product: ProductId(1),
            price: Price(1000),
            quantity: Qty(quantity),
            maker_order: OrderId(7),
            maker_participant: ParticipantId(1),
            taker_order: OrderId(8),
            taker_participant: ParticipantId(2),
            aggressor: Side::Sell,
            seq: Seq(seq),
            time: Timestamp(0),
        }
    }

    fn cum_qty(reports: &[Body]) -> Vec<String> {
        reports.iter().filter_map(|f| f.text(14).map(str::to_owned)).collect()
    }

    #[test]
    fn a_fill_already_in_the_loaded_row_is_not_counted_twice() {
        let p = std::sync::Arc::new(product(2));
        let products = |_| Some(p.clone());
        let mut orders = Orders::default();
        // Read from the tables at logon: 4 traded, by entry 10.
        orders.track_existing(&row(4, 10));
        // A batch still queued on the feed: entry 10's fill of 4.
        let batch =
            |order, fill| MarketBatch { orders: vec![order], trades: vec![fill], ..Default::default() };
        let batch_10 = batch(row(4, 10), fill(4, 10));
        let reports = orders.on_batch(ParticipantId(1), &batch_10, &products, &mut |_| false);
        assert_eq!(cum_qty(&reports), ["4"]);
        // A later fill counts.
        let reports =
            orders.on_batch(ParticipantId(1), &batch(row(6, 11), fill(2, 11)), &products, &mut |_| false);
        assert_eq!(cum_qty(&reports), ["6"]);
        // The fill as clients read it: ExecID (entry-order-F trade), what
        // traded, at what price, and the order's totals.
        let f = &reports[0];
        let fields = [17, 150, 39, 37, 11, 32, 31, 880, 1057, 14, 151, 6, 44, 38, 54, 55];
        assert_eq!(
            fields.map(|t| f.text(t).unwrap_or("-")),
            [
                "11-7-F11", "F", "1", "7", "c7", "2", "10.00", "11", "N", "6", "4", "10.00", "10.00", "10",
                "1", "ACME"
            ]
        );
    }

    fn request(cl: &str, orig: &str, asked: Asked) -> Request {
        Request {
            order: OrderId(7),
            cl_ord_id: cl.into(),
            orig_cl_ord_id: Some(orig.into()),
            asked,
            time_ns: 0,
        }
    }

    /// Two replaces and a cancel of one order, committed in one batch (whose
    /// row is the order's final state): a report for each, in order, under
    /// its own ClOrdID and with its own terms.
    #[test]
    fn requests_that_commit_together_are_each_reported() {
        let p = std::sync::Arc::new(product(2));
        let products = |_| Some(p.clone());
        let mut orders = Orders::default();
        orders.track_existing(&row(0, 10));
        let terms =
            |quantity, price| Asked::Replace(Some(Terms { quantity, price: Some(price), stop: None }));
        orders.requests.insert(11, request("r1", "c7", terms(8, 990)));
        orders.requests.insert(12, request("r2", "r1", terms(9, 1000)));
        assert!(!orders.too_late(OrderId(7)));
        orders.requests.insert(13, request("x", "r2", Asked::Cancel));
        assert!(orders.too_late(OrderId(7)), "a second cancel behind an accepted one is too late");
        // One left for a later batch.
        orders.requests.insert(14, request("late", "x", Asked::Cancel));
        let mut last = row(0, 13);
        (last.original, last.cancelled, last.open) =
            (atlas_types::Qty(9), atlas_types::Qty(9), atlas_types::Qty(0));
        last.status = OrderStatus::Cancelled;
        let batch = MarketBatch { orders: vec![last], commands: (11, 13), ..Default::default() };
        let reports = orders.on_batch(ParticipantId(1), &batch, &products, &mut |_| false);
        let fields = [150, 11, 41, 38, 44, 151, 17];
        let got: Vec<_> = reports.iter().map(|f| fields.map(|t| f.text(t).unwrap_or("-"))).collect();
        assert_eq!(
            got,
            [
                ["5", "r1", "c7", "8", "9.90", "8", "11-7-R"],
                ["5", "r2", "r1", "9", "10.00", "9", "12-7-R"],
                ["4", "x", "r2", "9", "10.00", "0", "13-7-C"],
            ]
        );
        assert_eq!(orders.requests.keys().collect::<Vec<_>>(), [&14]);
        assert!(orders.open.is_empty());
    }

    #[test]
    fn timestamps_are_fix_utc() {
        assert_eq!(utc_timestamp(0), "19700101-00:00:00.000");
        assert_eq!(utc_timestamp(1_795_343_882_123_456_789), "20261122-10:38:02.123");
    }
}
