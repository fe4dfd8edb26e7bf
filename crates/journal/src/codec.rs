//! The journal's binary encoding of commands: versioned, little-endian, strict.
//!
//! Decoding refuses anything the encoder would not have written (unknown tags,
//! invalid flags, over-long or non-UTF-8 strings, trailing bytes), so a damaged
//! journal is detected rather than misread. The encoding is canonical: a decoded
//! entry re-encodes to the same bytes, which the hash chain relies on.

use atlas_engine::{Amend, CommandKind, NewOrder, OrderType, ProductSpec, SelfTradePrevention, TimeInForce};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Seq, Side, Timestamp, TradeId};
use thiserror::Error;

use crate::{Actor, Entry};

/// Entry encoding version written by this build.
pub const ENTRY_VERSION: u8 = 1;
/// The longest client order id accepted, in bytes (FIX ClOrdID fits easily).
pub const CLIENT_ORDER_ID_BYTES_MAX: usize = 64;

/// Why bytes are not a valid journal entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The bytes ended early.
    #[error("entry is truncated")]
    Truncated,
    /// A version this build does not know.
    #[error("unknown entry version {0}")]
    Version(u8),
    /// A field holds a value the encoder never writes.
    #[error("invalid entry field: {0}")]
    Invalid(&'static str),
    /// Bytes left after a complete entry.
    #[error("trailing bytes after the entry")]
    Trailing,
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
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
    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.i64(x);
            }
            None => self.u8(0),
        }
    }
    fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.u32(x);
            }
            None => self.u8(0),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid("flag")),
        }
    }
    fn opt_i64(&mut self) -> Result<Option<i64>, DecodeError> {
        Ok(if self.flag()? { Some(self.i64()?) } else { None })
    }
    fn opt_u32(&mut self) -> Result<Option<u32>, DecodeError> {
        Ok(if self.flag()? { Some(self.u32()?) } else { None })
    }
}

fn side_code(s: Side) -> u8 {
    match s {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

fn side_from(c: u8) -> Result<Side, DecodeError> {
    match c {
        0 => Ok(Side::Buy),
        1 => Ok(Side::Sell),
        _ => Err(DecodeError::Invalid("side")),
    }
}

fn type_code(t: OrderType) -> u8 {
    match t {
        OrderType::Limit => 0,
        OrderType::Market => 1,
        OrderType::Stop => 2,
        OrderType::StopLimit => 3,
    }
}

fn type_from(c: u8) -> Result<OrderType, DecodeError> {
    [OrderType::Limit, OrderType::Market, OrderType::Stop, OrderType::StopLimit]
        .get(usize::from(c))
        .copied()
        .ok_or(DecodeError::Invalid("order type"))
}

fn tif_code(t: TimeInForce) -> u8 {
    match t {
        TimeInForce::Gtc => 0,
        TimeInForce::Day => 1,
        TimeInForce::Ioc => 2,
        TimeInForce::Fok => 3,
    }
}

fn tif_from(c: u8) -> Result<TimeInForce, DecodeError> {
    [TimeInForce::Gtc, TimeInForce::Day, TimeInForce::Ioc, TimeInForce::Fok]
        .get(usize::from(c))
        .copied()
        .ok_or(DecodeError::Invalid("time in force"))
}

const STPS: [SelfTradePrevention; 5] = [
    SelfTradePrevention::None,
    SelfTradePrevention::CancelNewest,
    SelfTradePrevention::CancelOldest,
    SelfTradePrevention::CancelBoth,
    SelfTradePrevention::Decrement,
];

fn stp_code(s: SelfTradePrevention) -> u8 {
    STPS.iter().position(|&x| x == s).unwrap_or(0) as u8
}

fn stp_from(c: u8) -> Result<SelfTradePrevention, DecodeError> {
    STPS.get(usize::from(c)).copied().ok_or(DecodeError::Invalid("self-trade prevention"))
}

/// Command tags. Never reuse or renumber one: old journals must stay readable.
mod tag {
    pub const NEW_ORDER: u8 = 1;
    pub const CANCEL: u8 = 2;
    pub const AMEND: u8 = 3;
    pub const MASS_CANCEL: u8 = 4;
    pub const HALT: u8 = 5;
    pub const RESUME: u8 = 6;
    pub const END_OF_DAY: u8 = 7;
    pub const ADD_PRODUCT: u8 = 8;
    pub const REMOVE_PRODUCT: u8 = 9;
    pub const BUST_TRADE: u8 = 10;
}

/// Appends the encoding of `entry` to `out`.
pub fn encode(entry: &Entry, out: &mut Vec<u8>) {
    let mut w = Writer(out);
    w.u8(ENTRY_VERSION);
    w.u64(entry.seq.0);
    w.i64(entry.time.0);
    w.u64(entry.actor.user);
    w.opt_u32(entry.actor.participant.map(|p| p.0));
    match &entry.client_order_id {
        Some(id) => {
            // Validated at construction; the length fits a byte.
            w.u8(1);
            w.u8(id.len() as u8);
            w.0.extend_from_slice(id.as_bytes());
        }
        None => w.u8(0),
    }
    match &entry.command {
        CommandKind::NewOrder(o) => {
            w.u8(tag::NEW_ORDER);
            w.u64(o.order_id.0);
            w.u32(o.participant.0);
            w.u32(o.product.0);
            w.u8(side_code(o.side));
            w.u8(type_code(o.order_type));
            w.u8(tif_code(o.time_in_force));
            w.i64(o.quantity.0);
            w.opt_i64(o.price.map(|p| p.0));
            w.opt_i64(o.stop_price.map(|p| p.0));
            w.u8(u8::from(o.post_only));
            w.u8(stp_code(o.self_trade_prevention));
        }
        CommandKind::Cancel { order_id, participant } => {
            w.u8(tag::CANCEL);
            w.u64(order_id.0);
            w.opt_u32(participant.map(|p| p.0));
        }
        CommandKind::Amend(a) => {
            w.u8(tag::AMEND);
            w.u64(a.order_id.0);
            w.opt_u32(a.participant.map(|p| p.0));
            w.opt_i64(a.quantity.map(|q| q.0));
            w.opt_i64(a.price.map(|p| p.0));
            w.opt_i64(a.stop_price.map(|p| p.0));
        }
        CommandKind::MassCancel { participant, product } => {
            w.u8(tag::MASS_CANCEL);
            w.u32(participant.0);
            w.opt_u32(product.map(|p| p.0));
        }
        CommandKind::Halt { product } => {
            w.u8(tag::HALT);
            w.u32(product.0);
        }
        CommandKind::Resume { product } => {
            w.u8(tag::RESUME);
            w.u32(product.0);
        }
        CommandKind::EndOfDay { product } => {
            w.u8(tag::END_OF_DAY);
            w.opt_u32(product.map(|p| p.0));
        }
        CommandKind::AddProduct(spec) => {
            w.u8(tag::ADD_PRODUCT);
            w.u32(spec.id.0);
            w.i64(spec.tick.0);
            w.i64(spec.lot.0);
        }
        CommandKind::RemoveProduct { product } => {
            w.u8(tag::REMOVE_PRODUCT);
            w.u32(product.0);
        }
        CommandKind::BustTrade { trade } => {
            w.u8(tag::BUST_TRADE);
            w.u64(trade.0);
        }
    }
}

/// Decodes one entry that must span exactly `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != ENTRY_VERSION {
        return Err(DecodeError::Version(version));
    }
    let seq = Seq(r.u64()?);
    let time = Timestamp(r.i64()?);
    let actor = Actor { user: r.u64()?, participant: r.opt_u32()?.map(ParticipantId) };
    let client_order_id = if r.flag()? {
        let len = usize::from(r.u8()?);
        if len == 0 || len > CLIENT_ORDER_ID_BYTES_MAX {
            return Err(DecodeError::Invalid("client order id length"));
        }
        if r.0.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (text, rest) = r.0.split_at(len);
        r.0 = rest;
        Some(std::str::from_utf8(text).map_err(|_| DecodeError::Invalid("client order id"))?.to_owned())
    } else {
        None
    };
    let command = match r.u8()? {
        tag::NEW_ORDER => CommandKind::NewOrder(NewOrder {
            order_id: OrderId(r.u64()?),
            participant: ParticipantId(r.u32()?),
            product: ProductId(r.u32()?),
            side: side_from(r.u8()?)?,
            order_type: type_from(r.u8()?)?,
            time_in_force: tif_from(r.u8()?)?,
            quantity: Qty(r.i64()?),
            price: r.opt_i64()?.map(Price),
            stop_price: r.opt_i64()?.map(Price),
            post_only: r.flag()?,
            self_trade_prevention: stp_from(r.u8()?)?,
        }),
        tag::CANCEL => {
            CommandKind::Cancel { order_id: OrderId(r.u64()?), participant: r.opt_u32()?.map(ParticipantId) }
        }
        tag::AMEND => CommandKind::Amend(Amend {
            order_id: OrderId(r.u64()?),
            participant: r.opt_u32()?.map(ParticipantId),
            quantity: r.opt_i64()?.map(Qty),
            price: r.opt_i64()?.map(Price),
            stop_price: r.opt_i64()?.map(Price),
        }),
        tag::MASS_CANCEL => CommandKind::MassCancel {
            participant: ParticipantId(r.u32()?),
            product: r.opt_u32()?.map(ProductId),
        },
        tag::HALT => CommandKind::Halt { product: ProductId(r.u32()?) },
        tag::RESUME => CommandKind::Resume { product: ProductId(r.u32()?) },
        tag::END_OF_DAY => CommandKind::EndOfDay { product: r.opt_u32()?.map(ProductId) },
        tag::ADD_PRODUCT => CommandKind::AddProduct(ProductSpec {
            id: ProductId(r.u32()?),
            tick: Price(r.i64()?),
            lot: Qty(r.i64()?),
        }),
        tag::REMOVE_PRODUCT => CommandKind::RemoveProduct { product: ProductId(r.u32()?) },
        tag::BUST_TRADE => CommandKind::BustTrade { trade: TradeId(r.u64()?) },
        _ => return Err(DecodeError::Invalid("command tag")),
    };
    if !r.0.is_empty() {
        return Err(DecodeError::Trailing);
    }
    Ok(Entry { seq, time, actor, client_order_id, command })
}
