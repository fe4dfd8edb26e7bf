//! The engine: `apply(command) -> events` over every product's book.

use std::collections::BTreeMap;

use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Side, TradeId};

use crate::book::{
    Book, FLAG_MARKET, FLAG_POST_ONLY, Level, NIL, Resting, STOP_BIT, Slab, StopOrder, crosses, key_of,
    price_of,
};
use crate::index::OrderIndex;
use crate::{
    Amend, CancelReason, Command, CommandKind, Event, NewOrder, OrderType, ProductSpec, ProductStatus,
    Reject, SelfTradePrevention, TimeInForce,
};

/// The most products (books) one engine holds.
pub const PRODUCTS_MAX: usize = 4_096;
/// The default for [`EngineConfig::orders_max`].
pub const ORDERS_MAX_DEFAULT: u32 = 4_000_000;

/// Limits and sizing. Not part of the replicated state: two engines replaying the
/// same journal must be given the same limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The most open orders (resting plus untriggered stops) across all books; a
    /// new order beyond it is rejected with [`Reject::CapacityExhausted`].
    pub orders_max: u32,
    /// How many orders to reserve room for up front, so that steady-state trading
    /// up to this size never allocates.
    pub orders_reserved: u32,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig { orders_max: ORDERS_MAX_DEFAULT, orders_reserved: 1_024 }
    }
}

/// A level whose total the current command changed, with its total before.
#[derive(Clone, Copy, Debug)]
struct Touch {
    product: ProductId,
    book: u32,
    side: Side,
    key: i64,
    /// The level's slot: valid until the command ends, because levels dropped
    /// during a command are only released after it.
    level: u32,
    before: Qty,
    /// Order of first touch, so that the first (true "before") entry wins a tie.
    ord: u32,
}

/// The lowest and highest trade price an incoming order printed.
#[derive(Clone, Copy, Debug)]
struct Prints {
    low: Price,
    high: Price,
}

/// The matching engine for one shard: a deterministic state machine over commands.
///
/// It does no I/O, never blocks, never reads the clock and iterates no hash map, so
/// replaying the same commands yields the same events and the same
/// [`Engine::state_hash`].
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) books: Vec<Option<Book>>,
    free_books: Vec<u32>,
    pub(crate) book_of: BTreeMap<ProductId, u32>,
    pub(crate) orders: Slab<Resting>,
    pub(crate) levels: Slab<Level>,
    pub(crate) stops: Slab<StopOrder>,
    /// Open order id → slot (with [`STOP_BIT`] for stops). Looked up, never iterated.
    pub(crate) index: OrderIndex,
    pub(crate) resting_live: usize,
    pub(crate) stops_live: usize,
    pub(crate) last_seq: u64,
    pub(crate) last_order_id: u64,
    pub(crate) next_trade_id: u64,
    // Scratch space, reused across commands so that the hot path does not allocate.
    cur_seq: u64,
    touched: Vec<Touch>,
    /// Levels dropped from a ladder during this command, released after it.
    dead_levels: Vec<u32>,
    triggered: Vec<(u64, u32)>,
    scratch_ids: Vec<OrderId>,
}

impl Default for Engine {
    fn default() -> Engine {
        Engine::new(EngineConfig::default())
    }
}

/// Is `v` a multiple of `m` (positive)? Tick and lot are usually 1, where this
/// needs no division (a 64-bit division costs tens of cycles).
#[inline]
fn multiple_of(v: i64, m: i64) -> bool {
    m == 1 || v % m == 0
}

#[inline]
fn check_qty(q: Qty, lot: Qty) -> Result<(), Reject> {
    if q.0 <= 0 || q > Qty::MAX {
        return Err(Reject::InvalidQuantity);
    }
    if !multiple_of(q.0, lot.0) {
        return Err(Reject::QuantityNotOnLot);
    }
    Ok(())
}

#[inline]
fn check_price(p: Price, tick: Price) -> Result<(), Reject> {
    if p.0 <= 0 || p > Price::MAX {
        return Err(Reject::InvalidPrice);
    }
    if !multiple_of(p.0, tick.0) {
        return Err(Reject::PriceNotOnTick);
    }
    Ok(())
}

/// The limit a market order matches with: past every possible level.
#[inline]
fn market_limit(side: Side) -> Price {
    match side {
        Side::Buy => Price(i64::MAX),
        Side::Sell => Price(0),
    }
}

/// Crash with a message: used when an invariant is broken, because continuing with a
/// corrupt book would be worse than stopping (the journal lets us recover).
#[cold]
#[inline(never)]
fn invariant_broken(what: &str) -> ! {
    panic!("engine invariant broken: {what}")
}

impl Engine {
    /// An empty engine with no products.
    pub fn new(config: EngineConfig) -> Engine {
        let reserve = config.orders_reserved.min(config.orders_max) as usize;
        let index = OrderIndex::with_capacity(reserve);
        Engine {
            config,
            books: Vec::new(),
            free_books: Vec::new(),
            book_of: BTreeMap::new(),
            orders: Slab::with_capacity(reserve),
            levels: Slab::with_capacity(reserve.min(65_536)),
            stops: Slab::with_capacity(0),
            index,
            resting_live: 0,
            stops_live: 0,
            last_seq: 0,
            last_order_id: 0,
            next_trade_id: 1,
            cur_seq: 0,
            touched: Vec::with_capacity(64),
            dead_levels: Vec::with_capacity(64),
            triggered: Vec::with_capacity(64),
            scratch_ids: Vec::new(),
        }
    }

    /// The configuration this engine was built with.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// The sequence number of the last applied command (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The highest order id accepted so far.
    pub fn last_order_id(&self) -> u64 {
        self.last_order_id
    }

    /// Open orders (resting and untriggered stops) across all books.
    pub fn open_orders(&self) -> usize {
        self.index.len()
    }

    /// Applies one command, appending what happened to `out`.
    ///
    /// # Panics
    /// If `cmd.seq` is not exactly one more than the last applied command's (a
    /// sequencer bug: the journal would no longer replay), or if an internal
    /// invariant is found broken.
    pub fn apply(&mut self, cmd: &Command, out: &mut Vec<Event>) {
        if cmd.seq.0 != self.last_seq.wrapping_add(1) {
            invariant_broken("command sequence is not contiguous");
        }
        self.last_seq = cmd.seq.0;
        self.cur_seq = cmd.seq.0;
        let result = match &cmd.kind {
            CommandKind::NewOrder(o) => self.new_order(o, out),
            CommandKind::Cancel { order_id, participant } => self.cancel(*order_id, *participant, out),
            CommandKind::Amend(a) => self.amend(a, out),
            CommandKind::MassCancel { participant, product } => self.mass_cancel(*participant, *product, out),
            CommandKind::Halt { product } => self.set_halted(*product, true, out),
            CommandKind::Resume { product } => self.set_halted(*product, false, out),
            CommandKind::EndOfDay { product } => self.end_of_day(*product, out),
            CommandKind::AddProduct(spec) => self.add_product(*spec, out),
            CommandKind::RemoveProduct { product } => self.remove_product(*product, out),
            CommandKind::BustTrade { trade } => self.bust_trade(*trade, out),
        };
        match result {
            Ok(()) => {
                self.flush_levels(out);
                self.check_after_command();
            }
            Err(reason) => {
                // Validation happens before any mutation, so nothing to undo.
                debug_assert!(self.touched.is_empty());
                out.push(Event::Rejected { reason });
            }
        }
    }

    fn book_slot(&self, product: ProductId) -> Result<u32, Reject> {
        self.book_of.get(&product).copied().ok_or(Reject::UnknownProduct)
    }

    #[inline]
    pub(crate) fn book(&self, slot: u32) -> &Book {
        match &self.books[slot as usize] {
            Some(b) => b,
            None => invariant_broken("order refers to a removed book"),
        }
    }

    #[inline]
    fn book_mut(&mut self, slot: u32) -> &mut Book {
        match &mut self.books[slot as usize] {
            Some(b) => b,
            None => invariant_broken("order refers to a removed book"),
        }
    }

    /// Looks up an open order for `participant` (`None`: operator, any owner).
    /// Another participant's order answers exactly like an unknown one.
    fn find_open(&self, id: OrderId, participant: Option<ParticipantId>) -> Result<u32, Reject> {
        let missing = || {
            if id.0 <= self.last_order_id { Reject::OrderNotOpen } else { Reject::UnknownOrder }
        };
        let Some(loc) = self.index.get(&id) else {
            return Err(missing());
        };
        let owner = if loc & STOP_BIT != 0 {
            self.stops.get(loc & !STOP_BIT).participant
        } else {
            self.orders.get(loc).participant
        };
        match participant {
            Some(p) if p != owner => Err(Reject::UnknownOrder),
            _ => Ok(loc),
        }
    }

    // ----- new orders -------------------------------------------------------------

    fn new_order(&mut self, o: &NewOrder, out: &mut Vec<Event>) -> Result<(), Reject> {
        // The order of these checks decides which code a bad order gets; the
        // reference model in the tests checks them in the same order.
        let b = self.book_slot(o.product)?;
        let book = self.book(b);
        if book.halted {
            return Err(Reject::MarketHalted);
        }
        let spec = book.spec;
        check_qty(o.quantity, spec.lot)?;
        if o.order_id.0 <= self.last_order_id {
            return Err(Reject::DuplicateOrderId);
        }
        let (needs_price, needs_stop) = match o.order_type {
            OrderType::Limit => (true, false),
            OrderType::Market => (false, false),
            OrderType::Stop => (false, true),
            OrderType::StopLimit => (true, true),
        };
        match (needs_price, o.price) {
            (true, None) => return Err(Reject::MissingPrice),
            (false, Some(_)) => return Err(Reject::UnexpectedPrice),
            (true, Some(p)) => check_price(p, spec.tick)?,
            (false, None) => {}
        }
        match (needs_stop, o.stop_price) {
            (true, None) => return Err(Reject::MissingStopPrice),
            (false, Some(_)) => return Err(Reject::UnexpectedStopPrice),
            (true, Some(p)) => check_price(p, spec.tick)?,
            (false, None) => {}
        }
        if o.post_only
            && (o.order_type != OrderType::Limit
                || !matches!(o.time_in_force, TimeInForce::Gtc | TimeInForce::Day))
        {
            return Err(Reject::InvalidPostOnly);
        }
        if self.index.len() >= self.config.orders_max as usize {
            return Err(Reject::CapacityExhausted);
        }
        // A post-only order is a limit order, so it has a price here (checked above).
        if o.post_only && book.would_trade(o.side, o.price.unwrap_or(market_limit(o.side))) {
            return Err(Reject::PostOnlyWouldTrade);
        }

        // Accepted: from here on nothing can fail.
        self.last_order_id = o.order_id.0;
        out.push(Event::Accepted);
        if needs_stop {
            let stop_price = o.stop_price.unwrap_or_default();
            let stop = StopOrder {
                id: o.order_id,
                participant: o.participant,
                book: b,
                side: o.side,
                order_type: o.order_type,
                tif: o.time_in_force,
                stp: o.self_trade_prevention,
                quantity: o.quantity,
                price: o.price,
                stop_price,
                arrival: self.cur_seq,
            };
            let slot = self.stops.insert(stop);
            let arrival = self.cur_seq;
            self.book_mut(b).stops_mut(o.side).insert((stop_price.0, arrival), slot);
            self.index.insert(o.order_id, slot | STOP_BIT);
            self.stops_live += 1;
            return Ok(());
        }
        let market = o.order_type == OrderType::Market;
        let mut flags = 0;
        if market {
            flags |= FLAG_MARKET;
        }
        if o.post_only {
            flags |= FLAG_POST_ONLY;
        }
        let slot = self.orders.insert(Resting {
            id: o.order_id,
            price: o.price.unwrap_or(market_limit(o.side)),
            original: o.quantity,
            open: o.quantity,
            traded: Qty::ZERO,
            cancelled: Qty::ZERO,
            participant: o.participant,
            book: b,
            prev: NIL,
            next: NIL,
            level: NIL,
            side: o.side,
            tif: o.time_in_force,
            stp: o.self_trade_prevention,
            flags,
        });
        let prints = self.execute(b, slot, false, out);
        self.cascade(b, prints, out);
        Ok(())
    }

    /// Runs an incoming order (new, re-priced, or a triggered stop) in slot `t`:
    /// matches it, then books or cancels the rest. `indexed` says whether the order
    /// is already in the index (a re-priced order is).
    fn execute(&mut self, b: u32, t: u32, indexed: bool, out: &mut Vec<Event>) -> Option<Prints> {
        let fok = self.orders.get(t).tif == TimeInForce::Fok;
        let fok_killed = fok && !self.fok_fillable(b, self.orders.get(t));
        let prints = if fok_killed { None } else { self.match_order(b, t, out) };
        if fok && !fok_killed && self.orders.get(t).open.0 > 0 {
            // The pre-check promised a complete fill; a partial one must never print.
            invariant_broken("fill-or-kill order filled partially");
        }
        let order = self.orders.get_mut(t);
        let rest = order.open;
        let mut resting = false;
        if rest.0 > 0 {
            let reason = match order.tif {
                TimeInForce::Fok => Some(CancelReason::FillOrKill),
                TimeInForce::Ioc => Some(CancelReason::Unfilled),
                _ if order.is_market() => Some(CancelReason::Unfilled),
                _ => None,
            };
            if let Some(reason) = reason {
                order.open = Qty::ZERO;
                order.cancelled += rest;
                out.push(Event::Cancelled { order_id: order.id, quantity: rest, open: Qty::ZERO, reason });
            } else {
                self.link_tail(b, t);
                resting = true;
                let o = self.orders.get(t);
                out.push(Event::Booked { order_id: o.id, price: o.price, open: o.open });
            }
        }
        let order = self.orders.get(t);
        if !order.accounts() {
            invariant_broken("order quantities do not add up");
        }
        let id = order.id;
        if resting {
            if !indexed {
                self.index.insert(id, t);
            }
        } else {
            if indexed {
                self.index.remove(&id);
            }
            self.orders.remove(t);
        }
        prints
    }

    /// Could an incoming FOK order trade its whole open quantity right now? Walks
    /// the book as matching would, without changing it. Resting orders of the same
    /// participant count as liquidity only with no self-trade prevention; with
    /// CANCEL_OLDEST they are skipped (they would be cancelled, not traded); any
    /// other mode stops the walk there (matching would stop or not trade).
    fn fok_fillable(&self, b: u32, order: &Resting) -> bool {
        let ladder = self.book(b).ladder(order.side.opposite());
        let mut need = order.open.0;
        for lr in ladder.iter_best_first() {
            if !crosses(order.side, order.price, price_of(order.side.opposite(), lr.key)) {
                break;
            }
            let level = self.levels.get(lr.level);
            if order.stp == SelfTradePrevention::None {
                need -= level.total.0;
            } else {
                let mut m = level.head;
                while m != NIL {
                    let maker = self.orders.get(m);
                    if maker.participant == order.participant {
                        if order.stp != SelfTradePrevention::CancelOldest {
                            return false;
                        }
                    } else {
                        need -= maker.open.0;
                        if need <= 0 {
                            return true;
                        }
                    }
                    m = maker.next;
                }
            }
            if need <= 0 {
                return true;
            }
        }
        false
    }

    /// Matches the order in slot `t` against the other side, best price first and
    /// oldest first within a price, applying self-trade prevention.
    fn match_order(&mut self, b: u32, t: u32, out: &mut Vec<Event>) -> Option<Prints> {
        // Most incoming orders do not cross at all: find out before any set-up.
        let (side, limit) = {
            let o = self.orders.get(t);
            (o.side, o.price)
        };
        if !self.book(b).would_trade(side, limit) {
            return None;
        }
        let taker = *self.orders.get(t);
        let side = taker.side;
        let opp = side.opposite();
        let product = self.book(b).spec.id;
        let mut prints: Option<Prints> = None;
        let mut last_price = None;
        let mut taker_done = false;
        while !taker_done && self.orders.get(t).open.0 > 0 {
            let Some(best) = self.book(b).ladder(opp).best() else { break };
            let level_price = price_of(opp, best.key);
            if !crosses(side, taker.price, level_price) {
                break;
            }
            let lv = best.level;
            self.touch(lv, product, b, opp, best.key);
            let mut m = self.levels.get(lv).head;
            while m != NIL {
                let t_open = self.orders.get(t).open;
                if t_open.0 == 0 {
                    break;
                }
                let maker = *self.orders.get(m);
                let next = maker.next;
                if taker.stp != SelfTradePrevention::None && maker.participant == taker.participant {
                    match taker.stp {
                        SelfTradePrevention::CancelOldest => {
                            self.cancel_resting(m, maker.open, CancelReason::SelfTrade, out);
                        }
                        SelfTradePrevention::CancelNewest => {
                            self.cancel_taker_rest(t, out);
                            taker_done = true;
                            break;
                        }
                        SelfTradePrevention::CancelBoth => {
                            self.cancel_resting(m, maker.open, CancelReason::SelfTrade, out);
                            self.cancel_taker_rest(t, out);
                            taker_done = true;
                            break;
                        }
                        SelfTradePrevention::Decrement => {
                            let q = t_open.min(maker.open);
                            self.cancel_resting(m, q, CancelReason::SelfTrade, out);
                            let tk = self.orders.get_mut(t);
                            tk.open -= q;
                            tk.cancelled += q;
                            out.push(Event::Cancelled {
                                order_id: tk.id,
                                quantity: q,
                                open: tk.open,
                                reason: CancelReason::SelfTrade,
                            });
                        }
                        SelfTradePrevention::None => {}
                    }
                } else {
                    let q = t_open.min(maker.open);
                    let trade_id = TradeId(self.next_trade_id);
                    self.next_trade_id += 1;
                    let mk = self.orders.get_mut(m);
                    mk.open -= q;
                    mk.traded += q;
                    let maker_open = mk.open;
                    self.levels.get_mut(lv).total -= q;
                    let tk = self.orders.get_mut(t);
                    tk.open -= q;
                    tk.traded += q;
                    out.push(Event::Trade {
                        trade_id,
                        product,
                        price: level_price,
                        quantity: q,
                        maker_order: maker.id,
                        maker_participant: maker.participant,
                        maker_open,
                        taker_order: taker.id,
                        taker_participant: taker.participant,
                        aggressor: side,
                    });
                    prints = Some(match prints {
                        None => Prints { low: level_price, high: level_price },
                        Some(p) => Prints { low: p.low.min(level_price), high: p.high.max(level_price) },
                    });
                    last_price = Some(level_price);
                    if maker_open.0 == 0 {
                        self.finish_resting(m);
                    }
                }
                m = next;
            }
            // The level may have emptied (fills or self-trade cancels): it is the
            // best one, so dropping it is a pop.
            if self.levels.get(lv).count == 0 {
                self.level_emptied(b, opp, lv, best.key);
            }
        }
        if let Some(p) = last_price {
            self.book_mut(b).last_trade = Some(p);
        }
        prints
    }

    /// Cancels whatever the incoming order in slot `t` still has open (self-trade).
    fn cancel_taker_rest(&mut self, t: u32, out: &mut Vec<Event>) {
        let tk = self.orders.get_mut(t);
        let rest = tk.open;
        tk.open = Qty::ZERO;
        tk.cancelled += rest;
        out.push(Event::Cancelled {
            order_id: tk.id,
            quantity: rest,
            open: Qty::ZERO,
            reason: CancelReason::SelfTrade,
        });
    }

    /// Cancels `q` of a resting order's open quantity (all of it: the order is
    /// removed). The caller has touched its level. An emptied level stays in the
    /// ladder; the caller removes it.
    fn cancel_resting(&mut self, m: u32, q: Qty, reason: CancelReason, out: &mut Vec<Event>) {
        let mk = self.orders.get_mut(m);
        mk.open -= q;
        mk.cancelled += q;
        let open = mk.open;
        let id = mk.id;
        let lv = mk.level;
        self.levels.get_mut(lv).total -= q;
        out.push(Event::Cancelled { order_id: id, quantity: q, open, reason });
        if open.0 == 0 {
            self.finish_resting(m);
        }
    }

    /// Removes a resting order whose open quantity reached zero: unlinks it from its
    /// level, the index and the slab. The level is left in the ladder even if empty.
    fn finish_resting(&mut self, m: u32) {
        let order = *self.orders.get(m);
        if !order.accounts() || order.open.0 != 0 {
            invariant_broken("finished order quantities do not add up");
        }
        self.unlink(m);
        self.index.remove(&order.id);
        self.orders.remove(m);
        self.resting_live -= 1;
    }

    /// Unlinks slot `m` from its level's list (the level's total is the caller's).
    #[inline]
    fn unlink(&mut self, m: u32) {
        let Resting { prev, next, level, .. } = *self.orders.get(m);
        if prev != NIL {
            self.orders.get_mut(prev).next = next;
        } else {
            self.levels.get_mut(level).head = next;
        }
        if next != NIL {
            self.orders.get_mut(next).prev = prev;
        } else {
            self.levels.get_mut(level).tail = prev;
        }
        let l = self.levels.get_mut(level);
        l.count -= 1;
        let o = self.orders.get_mut(m);
        o.prev = NIL;
        o.next = NIL;
        o.level = NIL;
    }

    /// Appends slot `t` at the back of its price level (creating the level) and adds
    /// its open quantity to the level total.
    fn link_tail(&mut self, b: u32, t: u32) {
        let o = *self.orders.get(t);
        let key = key_of(o.side, o.price);
        let product = self.book(b).spec.id;
        let cur_seq = self.cur_seq;
        let lv = match self.book(b).ladder(o.side).get(key) {
            Some(lv) => {
                self.touch(lv, product, b, o.side, key);
                lv
            }
            None => {
                let lv = self.levels.insert(Level {
                    price: o.price,
                    total: Qty::ZERO,
                    count: 0,
                    head: NIL,
                    tail: NIL,
                    touched: cur_seq,
                });
                let ord = self.touched.len() as u32;
                self.touched.push(Touch {
                    product,
                    book: b,
                    side: o.side,
                    key,
                    level: lv,
                    before: Qty::ZERO,
                    ord,
                });
                self.book_mut(b).ladder_mut(o.side).insert(key, lv);
                lv
            }
        };
        let tail = self.levels.get(lv).tail;
        {
            let node = self.orders.get_mut(t);
            node.level = lv;
            node.prev = tail;
            node.next = NIL;
        }
        if tail != NIL {
            self.orders.get_mut(tail).next = t;
        }
        let l = self.levels.get_mut(lv);
        if l.head == NIL {
            l.head = t;
        }
        l.tail = t;
        l.count += 1;
        l.total += o.open;
        self.resting_live += 1;
    }

    /// Links a restored order at the back of its level (snapshot restore only).
    pub(crate) fn restore_link(&mut self, b: u32, slot: u32) {
        self.link_tail(b, slot);
        self.touched.clear();
    }

    /// Removes a resting order from its level and the ladder (dropping an emptied
    /// level), keeping the slot and index entry: for cancels and re-pricing.
    fn take_out(&mut self, m: u32) {
        let o = *self.orders.get(m);
        let lv = o.level;
        let key = key_of(o.side, o.price);
        let product = self.book(o.book).spec.id;
        self.touch(lv, product, o.book, o.side, key);
        self.unlink(m);
        let l = self.levels.get_mut(lv);
        l.total -= o.open;
        self.resting_live -= 1;
        if l.count == 0 {
            self.level_emptied(o.book, o.side, lv, key);
        }
    }

    /// A level's last order left: drop it from the ladder. Its slot is released
    /// after the command, so the L2 diff can still read it.
    #[inline]
    fn level_emptied(&mut self, b: u32, side: Side, lv: u32, key: i64) {
        self.book_mut(b).ladder_mut(side).remove(key);
        self.dead_levels.push(lv);
    }

    /// Records a level's total before this command changes it (once per command).
    #[inline]
    fn touch(&mut self, lv: u32, product: ProductId, book: u32, side: Side, key: i64) {
        let l = self.levels.get_mut(lv);
        if l.touched != self.cur_seq {
            l.touched = self.cur_seq;
            let ord = self.touched.len() as u32;
            self.touched.push(Touch { product, book, side, key, level: lv, before: l.total, ord });
        }
    }

    /// Triggers stops from the prints of an incoming order, then runs them (and any
    /// they trigger in turn) as incoming orders. Within one round, stops enter in
    /// arrival order; rounds are first in, first out.
    fn cascade(&mut self, b: u32, prints: Option<Prints>, out: &mut Vec<Event>) {
        let Some(prints) = prints else { return };
        let mut queue = std::mem::take(&mut self.triggered);
        queue.clear();
        self.collect_triggers(b, prints, &mut queue, out);
        let mut head = 0;
        while head < queue.len() {
            let (_, s) = queue[head];
            head += 1;
            let stop = *self.stops.get(s);
            self.stops.remove(s);
            self.stops_live -= 1;
            self.index.remove(&stop.id);
            let market = stop.order_type == OrderType::Stop;
            let slot = self.orders.insert(Resting {
                id: stop.id,
                price: if market { market_limit(stop.side) } else { stop.price.unwrap_or_default() },
                original: stop.quantity,
                open: stop.quantity,
                traded: Qty::ZERO,
                cancelled: Qty::ZERO,
                participant: stop.participant,
                book: b,
                prev: NIL,
                next: NIL,
                level: NIL,
                side: stop.side,
                tif: stop.tif,
                stp: stop.stp,
                flags: if market { FLAG_MARKET } else { 0 },
            });
            if let Some(p) = self.execute(b, slot, false, out) {
                self.collect_triggers(b, p, &mut queue, out);
            }
        }
        queue.clear();
        self.triggered = queue;
    }

    fn collect_triggers(
        &mut self,
        b: u32,
        prints: Prints,
        queue: &mut Vec<(u64, u32)>,
        out: &mut Vec<Event>,
    ) {
        let start = queue.len();
        let book = self.book_mut(b);
        // Buy stops trigger on a print at or above their stop price, sell stops on
        // one at or below.
        while let Some((&key, &slot)) = book.buy_stops.range(..=(prints.high.0, u64::MAX)).next() {
            book.buy_stops.remove(&key);
            queue.push((key.1, slot));
        }
        while let Some((&key, &slot)) = book.sell_stops.range((prints.low.0, 0)..).next() {
            book.sell_stops.remove(&key);
            queue.push((key.1, slot));
        }
        queue[start..].sort_unstable();
        for &(_, slot) in &queue[start..] {
            out.push(Event::StopTriggered { order_id: self.stops.get(slot).id });
        }
    }

    // ----- cancel and amend ---------------------------------------------------------

    fn cancel(
        &mut self,
        id: OrderId,
        participant: Option<ParticipantId>,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let loc = self.find_open(id, participant)?;
        out.push(Event::Accepted);
        let reason = if participant.is_some() { CancelReason::Requested } else { CancelReason::Operator };
        self.remove_open(loc, out, |order_id, quantity| Event::Cancelled {
            order_id,
            quantity,
            open: Qty::ZERO,
            reason,
        });
        Ok(())
    }

    /// Removes an open order entirely, reporting it with `event(id, open_quantity)`.
    fn remove_open(&mut self, loc: u32, out: &mut Vec<Event>, event: impl Fn(OrderId, Qty) -> Event) {
        if loc & STOP_BIT != 0 {
            let s = loc & !STOP_BIT;
            let stop = *self.stops.get(s);
            self.book_mut(stop.book).stops_mut(stop.side).remove(&(stop.stop_price.0, stop.arrival));
            self.stops.remove(s);
            self.stops_live -= 1;
            self.index.remove(&stop.id);
            out.push(event(stop.id, stop.quantity));
        } else {
            self.take_out(loc);
            let o = self.orders.get_mut(loc);
            let rest = o.open;
            o.open = Qty::ZERO;
            o.cancelled += rest;
            let o = *o;
            if !o.accounts() {
                invariant_broken("cancelled order quantities do not add up");
            }
            self.index.remove(&o.id);
            self.orders.remove(loc);
            out.push(event(o.id, rest));
        }
    }

    fn amend(&mut self, a: &Amend, out: &mut Vec<Event>) -> Result<(), Reject> {
        let loc = self.find_open(a.order_id, a.participant)?;
        let b = if loc & STOP_BIT != 0 {
            self.stops.get(loc & !STOP_BIT).book
        } else {
            self.orders.get(loc).book
        };
        let spec = self.book(b).spec;
        if self.book(b).halted {
            return Err(Reject::MarketHalted);
        }
        if a.quantity.is_none() && a.price.is_none() && a.stop_price.is_none() {
            return Err(Reject::NothingToAmend);
        }
        if let Some(q) = a.quantity {
            check_qty(q, spec.lot)?;
        }
        if loc & STOP_BIT != 0 {
            self.amend_stop(loc & !STOP_BIT, a, spec, out)
        } else {
            self.amend_resting(loc, a, spec, out)
        }
    }

    fn amend_stop(
        &mut self,
        s: u32,
        a: &Amend,
        spec: ProductSpec,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let stop = *self.stops.get(s);
        if let Some(p) = a.price {
            if stop.order_type == OrderType::Stop {
                return Err(Reject::UnexpectedPrice);
            }
            check_price(p, spec.tick)?;
        }
        if let Some(p) = a.stop_price {
            check_price(p, spec.tick)?;
        }
        out.push(Event::Accepted);
        let quantity = a.quantity.unwrap_or(stop.quantity);
        let stop_price = a.stop_price.unwrap_or(stop.stop_price);
        let price = a.price.or(stop.price);
        let priority_kept = stop_price == stop.stop_price && quantity <= stop.quantity;
        let arrival = if priority_kept { stop.arrival } else { self.cur_seq };
        let cur = self.stops.get_mut(s);
        cur.quantity = quantity;
        cur.stop_price = stop_price;
        cur.price = price;
        cur.arrival = arrival;
        let map = self.book_mut(stop.book).stops_mut(stop.side);
        map.remove(&(stop.stop_price.0, stop.arrival));
        map.insert((stop_price.0, arrival), s);
        out.push(Event::Amended {
            order_id: stop.id,
            quantity,
            open: quantity,
            price,
            stop_price: Some(stop_price),
            priority_kept,
        });
        Ok(())
    }

    fn amend_resting(
        &mut self,
        m: u32,
        a: &Amend,
        spec: ProductSpec,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let o = *self.orders.get(m);
        if a.stop_price.is_some() {
            return Err(Reject::UnexpectedStopPrice);
        }
        if let Some(p) = a.price {
            check_price(p, spec.tick)?;
        }
        let quantity = a.quantity.unwrap_or(o.original);
        let executed = o.traded + o.cancelled;
        if quantity <= executed {
            return Err(Reject::QuantityBelowExecuted);
        }
        let price = a.price.unwrap_or(o.price);
        let reprice = price != o.price;
        if reprice && o.post_only() && self.book(o.book).would_trade(o.side, price) {
            return Err(Reject::PostOnlyWouldTrade);
        }
        out.push(Event::Accepted);
        let open = quantity - executed;
        if !reprice && quantity <= o.original {
            // Smaller (or equal) size at the same price keeps its place in the queue.
            let delta = o.original - quantity;
            if delta.0 > 0 {
                let product = spec.id;
                self.touch(o.level, product, o.book, o.side, key_of(o.side, o.price));
                self.levels.get_mut(o.level).total -= delta;
            }
            let node = self.orders.get_mut(m);
            node.original = quantity;
            node.open = open;
            out.push(Event::Amended {
                order_id: o.id,
                quantity,
                open,
                price: Some(price),
                stop_price: None,
                priority_kept: true,
            });
        } else if !reprice {
            // Larger size: to the back of the same level's queue.
            self.take_out(m);
            let node = self.orders.get_mut(m);
            node.original = quantity;
            node.open = open;
            out.push(Event::Amended {
                order_id: o.id,
                quantity,
                open,
                price: Some(price),
                stop_price: None,
                priority_kept: false,
            });
            self.link_tail(o.book, m);
            out.push(Event::Booked { order_id: o.id, price, open });
        } else {
            // New price: out of the book, then in again as if new (it may trade).
            self.take_out(m);
            let node = self.orders.get_mut(m);
            node.original = quantity;
            node.open = open;
            node.price = price;
            out.push(Event::Amended {
                order_id: o.id,
                quantity,
                open,
                price: Some(price),
                stop_price: None,
                priority_kept: false,
            });
            let prints = self.execute(o.book, m, true, out);
            self.cascade(o.book, prints, out);
        }
        if !self.orders.get(m).accounts() {
            invariant_broken("amended order quantities do not add up");
        }
        Ok(())
    }

    // ----- many orders at once ----------------------------------------------------

    /// Collects open order ids of the books in `scope` (all if `None`) that satisfy
    /// `keep`, sorted by id so that the events come out in a defined order.
    fn collect_open(
        &mut self,
        scope: Option<u32>,
        keep: impl Fn(ParticipantId, TimeInForce) -> bool,
    ) -> Vec<OrderId> {
        let mut ids = std::mem::take(&mut self.scratch_ids);
        ids.clear();
        let slots: Vec<u32> = match scope {
            Some(b) => vec![b],
            None => self.book_of.values().copied().collect(),
        };
        for b in slots {
            let book = self.book(b);
            for side in [Side::Buy, Side::Sell] {
                for lr in book.ladder(side).iter_worst_first() {
                    let mut m = self.levels.get(lr.level).head;
                    while m != NIL {
                        let o = self.orders.get(m);
                        if keep(o.participant, o.tif) {
                            ids.push(o.id);
                        }
                        m = o.next;
                    }
                }
                for &s in book.stops(side).values() {
                    let stop = self.stops.get(s);
                    if keep(stop.participant, stop.tif) {
                        ids.push(stop.id);
                    }
                }
            }
        }
        ids.sort_unstable();
        ids
    }

    fn mass_cancel(
        &mut self,
        participant: ParticipantId,
        product: Option<ProductId>,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let scope = product.map(|p| self.book_slot(p)).transpose()?;
        out.push(Event::Accepted);
        let ids = self.collect_open(scope, |p, _| p == participant);
        for &id in &ids {
            let loc = self.index.slot(&id);
            self.remove_open(loc, out, |order_id, quantity| Event::Cancelled {
                order_id,
                quantity,
                open: Qty::ZERO,
                reason: CancelReason::MassCancel,
            });
        }
        self.scratch_ids = ids;
        Ok(())
    }

    fn end_of_day(&mut self, product: Option<ProductId>, out: &mut Vec<Event>) -> Result<(), Reject> {
        let scope = product.map(|p| self.book_slot(p)).transpose()?;
        out.push(Event::Accepted);
        let ids = self.collect_open(scope, |_, tif| tif == TimeInForce::Day);
        for &id in &ids {
            let loc = self.index.slot(&id);
            self.remove_open(loc, out, |order_id, quantity| Event::Expired { order_id, quantity });
        }
        self.scratch_ids = ids;
        Ok(())
    }

    // ----- products -----------------------------------------------------------------

    fn set_halted(&mut self, product: ProductId, halted: bool, out: &mut Vec<Event>) -> Result<(), Reject> {
        let b = self.book_slot(product)?;
        out.push(Event::Accepted);
        self.book_mut(b).halted = halted;
        let status = if halted { ProductStatus::Halted } else { ProductStatus::Active };
        out.push(Event::ProductStatus { product, status });
        Ok(())
    }

    fn bust_trade(&mut self, trade: TradeId, out: &mut Vec<Event>) -> Result<(), Reject> {
        // Trade ids are dense from 1: anything below the next one was printed. The
        // engine keeps no list of busted trades (the trades table does); busting one
        // twice changes nothing more.
        if trade.0 == 0 || trade.0 >= self.next_trade_id {
            return Err(Reject::UnknownTrade);
        }
        out.push(Event::Accepted);
        out.push(Event::TradeBusted { trade_id: trade });
        Ok(())
    }

    fn add_product(&mut self, spec: ProductSpec, out: &mut Vec<Event>) -> Result<(), Reject> {
        if self.book_of.contains_key(&spec.id) {
            return Err(Reject::ProductExists);
        }
        if spec.tick.0 <= 0 || spec.tick > Price::MAX || spec.lot.0 <= 0 || spec.lot > Qty::MAX {
            return Err(Reject::InvalidProductSpec);
        }
        if self.book_of.len() >= PRODUCTS_MAX {
            return Err(Reject::CapacityExhausted);
        }
        out.push(Event::Accepted);
        self.insert_book(Book::new(spec));
        out.push(Event::ProductStatus { product: spec.id, status: ProductStatus::Active });
        Ok(())
    }

    pub(crate) fn insert_book(&mut self, book: Book) -> u32 {
        let id = book.spec.id;
        let slot = match self.free_books.pop() {
            Some(slot) => {
                self.books[slot as usize] = Some(book);
                slot
            }
            None => {
                self.books.push(Some(book));
                (self.books.len() - 1) as u32
            }
        };
        self.book_of.insert(id, slot);
        slot
    }

    fn remove_product(&mut self, product: ProductId, out: &mut Vec<Event>) -> Result<(), Reject> {
        let b = self.book_slot(product)?;
        out.push(Event::Accepted);
        let ids = self.collect_open(Some(b), |_, _| true);
        for &id in &ids {
            let loc = self.index.slot(&id);
            self.remove_open(loc, out, |order_id, quantity| Event::Cancelled {
                order_id,
                quantity,
                open: Qty::ZERO,
                reason: CancelReason::ProductRemoved,
            });
        }
        self.scratch_ids = ids;
        let book = self.book(b);
        if !book.bids.is_empty() || !book.asks.is_empty() {
            invariant_broken("removed product still has levels");
        }
        self.books[b as usize] = None;
        self.free_books.push(b);
        self.book_of.remove(&product);
        out.push(Event::ProductStatus { product, status: ProductStatus::Removed });
        Ok(())
    }

    // ----- after each command ---------------------------------------------------------

    /// Emits one [`Event::Level`] per level whose total changed in this command:
    /// per product, bids then offers, best first. Then releases dropped levels.
    fn flush_levels(&mut self, out: &mut Vec<Event>) {
        if self.touched.is_empty() {
            return;
        }
        let mut touched = std::mem::take(&mut self.touched);
        // Best first: larger key first; ties keep the order of first touch.
        let order_key = |t: &Touch| (t.product, t.side, std::cmp::Reverse(t.key), t.ord);
        match touched.len() {
            1 => {}
            2 => {
                if order_key(&touched[0]) > order_key(&touched[1]) {
                    touched.swap(0, 1);
                }
            }
            _ => touched.sort_unstable_by_key(order_key),
        }
        let same = |a: &Touch, b: &Touch| a.product == b.product && a.side == b.side && a.key == b.key;
        let emit = |out: &mut Vec<Event>, first: &Touch, now: Qty| {
            if now != first.before {
                out.push(Event::Level {
                    product: first.product,
                    side: first.side,
                    price: price_of(first.side, first.key),
                    quantity: now,
                });
            }
        };
        let mut i = 0;
        if touched.len() <= 2 && !(touched.len() == 2 && same(&touched[0], &touched[1])) {
            // The common case (one or two distinct levels): no grouping needed.
            for t in &touched {
                emit(out, t, self.levels.get(t.level).total);
            }
            i = touched.len();
        }
        while i < touched.len() {
            // A price touched twice (a level dropped and created again in one
            // command): the first entry has the total before, the last one the
            // level that exists now.
            let mut j = i;
            while j + 1 < touched.len() && same(&touched[i], &touched[j + 1]) {
                j += 1;
            }
            let (first, last) = (touched[i], touched[j]);
            emit(out, &first, self.levels.get(last.level).total);
            i = j + 1;
        }
        // The books just touched must not be crossed.
        let mut last_book = u32::MAX;
        for t in &touched {
            if t.book != last_book
                && let Some(Some(book)) = self.books.get(t.book as usize)
                && book.crossed()
            {
                invariant_broken("book is crossed");
            }
            last_book = t.book;
        }
        touched.clear();
        self.touched = touched;
        for lv in self.dead_levels.drain(..) {
            self.levels.remove(lv);
        }
    }

    /// The O(1) checks that run after every command, in release builds too. The
    /// O(n) walk is [`Engine::check_invariants`].
    #[inline]
    fn check_after_command(&self) {
        if self.index.len() != self.resting_live + self.stops_live {
            invariant_broken("index size differs from open orders");
        }
        if self.index.len() > self.config.orders_max as usize {
            invariant_broken("more open orders than the limit");
        }
    }
}
