//! Snapshot and restore, and the state hash.
//!
//! A snapshot is a canonical byte encoding of the replicated state: the same state
//! always encodes to the same bytes, whatever slab slots or history produced it, so
//! the SHA-256 of the snapshot is the state hash. Restoring decodes, rebuilds the
//! books, checks every invariant and re-encodes: the result must equal the input
//! byte for byte, so a snapshot that is corrupt or not canonical is refused.

use std::fmt;

use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Side};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::book::{Book, FLAG_MARKET, FLAG_POST_ONLY, NIL, Resting, STOP_BIT, StopOrder};
use crate::{Engine, EngineConfig, OrderType, ProductSpec, SelfTradePrevention, TimeInForce};

const MAGIC: &[u8; 8] = b"ATLSNAP1";

/// Why a snapshot could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// Not a snapshot of this format version.
    #[error("not an engine snapshot of a known version")]
    BadMagic,
    /// The bytes ended early.
    #[error("snapshot is truncated")]
    Truncated,
    /// A field holds a value the engine never writes.
    #[error("snapshot field is invalid: {0}")]
    Invalid(&'static str),
    /// More orders than this engine's configured limit.
    #[error("snapshot holds more orders than the configured limit")]
    TooManyOrders,
    /// The rebuilt state breaks an invariant.
    #[error("snapshot state is inconsistent: {0}")]
    Inconsistent(String),
    /// The bytes decode but are not the canonical encoding of what they describe.
    #[error("snapshot is not canonical")]
    NotCanonical,
}

/// The SHA-256 of the canonical snapshot: equal hashes mean equal state.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateHash(pub [u8; 32]);

impl fmt::Display for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateHash({self})")
    }
}

fn tif_code(t: TimeInForce) -> u8 {
    match t {
        TimeInForce::Gtc => 0,
        TimeInForce::Day => 1,
        TimeInForce::Ioc => 2,
        TimeInForce::Fok => 3,
    }
}

fn tif_from(c: u8) -> Result<TimeInForce, SnapshotError> {
    Ok(match c {
        0 => TimeInForce::Gtc,
        1 => TimeInForce::Day,
        2 => TimeInForce::Ioc,
        3 => TimeInForce::Fok,
        _ => return Err(SnapshotError::Invalid("time in force")),
    })
}

fn stp_code(s: SelfTradePrevention) -> u8 {
    match s {
        SelfTradePrevention::None => 0,
        SelfTradePrevention::CancelNewest => 1,
        SelfTradePrevention::CancelOldest => 2,
        SelfTradePrevention::CancelBoth => 3,
        SelfTradePrevention::Decrement => 4,
    }
}

fn stp_from(c: u8) -> Result<SelfTradePrevention, SnapshotError> {
    Ok(match c {
        0 => SelfTradePrevention::None,
        1 => SelfTradePrevention::CancelNewest,
        2 => SelfTradePrevention::CancelOldest,
        3 => SelfTradePrevention::CancelBoth,
        4 => SelfTradePrevention::Decrement,
        _ => return Err(SnapshotError::Invalid("self-trade prevention")),
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn count(&mut self, n: usize) {
        // Counts are bounded by the order limit (a u32).
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(SnapshotError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    fn flag(&mut self) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(SnapshotError::Invalid("flag")),
        }
    }
}

impl Engine {
    /// The canonical encoding of the whole replicated state.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64 + self.index.len() * 64));
        w.0.extend_from_slice(MAGIC);
        w.u64(self.last_seq);
        w.u64(self.last_order_id);
        w.u64(self.next_trade_id);
        w.count(self.book_of.len());
        for &b in self.book_of.values() {
            let book = self.book(b);
            w.u32(book.spec.id.0);
            w.i64(book.spec.tick.0);
            w.i64(book.spec.lot.0);
            w.u8(u8::from(book.halted));
            w.u8(u8::from(book.last_trade.is_some()));
            w.i64(book.last_trade.map_or(0, |p| p.0));
            for side in [Side::Buy, Side::Sell] {
                let ladder = book.ladder(side);
                let n: u32 = ladder.iter_worst_first().map(|lr| self.levels.get(lr.level).count).sum();
                w.count(n as usize);
                // Worst level first, then each level's queue in time order.
                for lr in ladder.iter_worst_first() {
                    let mut m = self.levels.get(lr.level).head;
                    while m != NIL {
                        let o = self.orders.get(m);
                        w.u64(o.id.0);
                        w.u32(o.participant.0);
                        w.i64(o.price.0);
                        w.i64(o.original.0);
                        w.i64(o.open.0);
                        w.i64(o.traded.0);
                        w.i64(o.cancelled.0);
                        w.u8(tif_code(o.tif));
                        w.u8(stp_code(o.stp));
                        w.u8(o.flags);
                        m = o.next;
                    }
                }
            }
            for side in [Side::Buy, Side::Sell] {
                let stops = book.stops(side);
                w.count(stops.len());
                for &s in stops.values() {
                    let st = self.stops.get(s);
                    w.u64(st.id.0);
                    w.u32(st.participant.0);
                    w.u8(u8::from(st.order_type == OrderType::StopLimit));
                    w.u8(tif_code(st.tif));
                    w.u8(stp_code(st.stp));
                    w.i64(st.quantity.0);
                    w.u8(u8::from(st.price.is_some()));
                    w.i64(st.price.map_or(0, |p| p.0));
                    w.i64(st.stop_price.0);
                    w.u64(st.arrival);
                }
            }
        }
        w.0
    }

    /// The state hash: SHA-256 of [`Engine::snapshot`].
    pub fn state_hash(&self) -> StateHash {
        StateHash(Sha256::digest(self.snapshot()).into())
    }

    /// Rebuilds an engine from a snapshot. The result has the same state hash and
    /// behaves identically to the engine the snapshot was taken from.
    pub fn restore(bytes: &[u8], config: EngineConfig) -> Result<Engine, SnapshotError> {
        let mut r = Reader(bytes);
        if r.take::<8>()? != *MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let mut e = Engine::new(config);
        e.last_seq = r.u64()?;
        e.last_order_id = r.u64()?;
        e.next_trade_id = r.u64()?;
        if e.next_trade_id == 0 {
            return Err(SnapshotError::Invalid("trade id counter"));
        }
        let books = r.u32()?;
        if books as usize > crate::PRODUCTS_MAX {
            return Err(SnapshotError::Invalid("book count"));
        }
        for _ in 0..books {
            let spec = ProductSpec { id: ProductId(r.u32()?), tick: Price(r.i64()?), lot: Qty(r.i64()?) };
            if spec.tick.0 <= 0 || spec.tick > Price::MAX || spec.lot.0 <= 0 || spec.lot > Qty::MAX {
                return Err(SnapshotError::Invalid("product spec"));
            }
            if e.book_of.contains_key(&spec.id) {
                return Err(SnapshotError::Invalid("duplicate product"));
            }
            let mut book = Book::new(spec);
            book.halted = r.flag()?;
            let has_last = r.flag()?;
            let last = r.i64()?;
            book.last_trade = has_last.then_some(Price(last));
            let b = e.insert_book(book);
            for side in [Side::Buy, Side::Sell] {
                let n = r.u32()?;
                for _ in 0..n {
                    let o = Resting {
                        id: OrderId(r.u64()?),
                        participant: ParticipantId(r.u32()?),
                        price: Price(r.i64()?),
                        original: Qty(r.i64()?),
                        open: Qty(r.i64()?),
                        traded: Qty(r.i64()?),
                        cancelled: Qty(r.i64()?),
                        tif: tif_from(r.u8()?)?,
                        stp: stp_from(r.u8()?)?,
                        flags: r.u8()?,
                        book: b,
                        prev: NIL,
                        next: NIL,
                        level: NIL,
                        side,
                    };
                    if o.flags & !(FLAG_POST_ONLY | FLAG_MARKET) != 0 || o.is_market() {
                        return Err(SnapshotError::Invalid("order flags"));
                    }
                    if o.id.0 == 0 {
                        return Err(SnapshotError::Invalid("order id"));
                    }
                    if !o.accounts() || o.open.0 <= 0 || o.original > Qty::MAX {
                        return Err(SnapshotError::Invalid("order quantities"));
                    }
                    if o.price.0 <= 0 || o.price > Price::MAX || o.price.0 % spec.tick.0 != 0 {
                        return Err(SnapshotError::Invalid("order price"));
                    }
                    if !matches!(o.tif, TimeInForce::Gtc | TimeInForce::Day) {
                        return Err(SnapshotError::Invalid("resting time in force"));
                    }
                    if e.index.len() >= config.orders_max as usize {
                        return Err(SnapshotError::TooManyOrders);
                    }
                    let slot = e.orders.insert(o);
                    if e.index.insert(o.id, slot).is_some() {
                        return Err(SnapshotError::Invalid("duplicate order id"));
                    }
                    e.restore_link(b, slot);
                }
            }
            for side in [Side::Buy, Side::Sell] {
                let n = r.u32()?;
                for _ in 0..n {
                    let id = OrderId(r.u64()?);
                    let participant = ParticipantId(r.u32()?);
                    let order_type = if r.flag()? { OrderType::StopLimit } else { OrderType::Stop };
                    let tif = tif_from(r.u8()?)?;
                    let stp = stp_from(r.u8()?)?;
                    let quantity = Qty(r.i64()?);
                    let has_price = r.flag()?;
                    let price = Price(r.i64()?);
                    let stop_price = Price(r.i64()?);
                    let arrival = r.u64()?;
                    let price = has_price.then_some(price);
                    if id.0 == 0 {
                        return Err(SnapshotError::Invalid("order id"));
                    }
                    if has_price != (order_type == OrderType::StopLimit) {
                        return Err(SnapshotError::Invalid("stop price fields"));
                    }
                    let on_tick = |p: Price| p.0 > 0 && p <= Price::MAX && p.0 % spec.tick.0 == 0;
                    if !on_tick(stop_price) || !price.is_none_or(on_tick) {
                        return Err(SnapshotError::Invalid("stop prices"));
                    }
                    if quantity.0 <= 0 || quantity > Qty::MAX || quantity.0 % spec.lot.0 != 0 {
                        return Err(SnapshotError::Invalid("stop quantity"));
                    }
                    if arrival > e.last_seq {
                        return Err(SnapshotError::Invalid("stop arrival"));
                    }
                    if e.index.len() >= config.orders_max as usize {
                        return Err(SnapshotError::TooManyOrders);
                    }
                    let stop = StopOrder {
                        id,
                        participant,
                        book: b,
                        side,
                        order_type,
                        tif,
                        stp,
                        quantity,
                        price,
                        stop_price,
                        arrival,
                    };
                    let s = e.stops.insert(stop);
                    if e.index.insert(id, s | STOP_BIT).is_some() {
                        return Err(SnapshotError::Invalid("duplicate order id"));
                    }
                    let book = e.books[b as usize].as_mut().ok_or(SnapshotError::Invalid("book"))?;
                    if book.stops_mut(side).insert((stop_price.0, arrival), s).is_some() {
                        return Err(SnapshotError::Invalid("duplicate stop key"));
                    }
                    e.stops_live += 1;
                }
            }
        }
        if !r.0.is_empty() {
            return Err(SnapshotError::Invalid("trailing bytes"));
        }
        e.check_invariants().map_err(SnapshotError::Inconsistent)?;
        if e.snapshot() != bytes {
            return Err(SnapshotError::NotCanonical);
        }
        Ok(e)
    }
}
