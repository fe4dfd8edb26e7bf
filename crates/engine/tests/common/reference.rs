//! A tiny, obviously-correct reference exchange for property tests.
//!
//! Everything here is the slowest, plainest way to state a rule: resting orders in
//! one flat vector, the next maker found by scanning for the best (price, priority),
//! L2 changes found by diffing the whole aggregated book before and after each
//! command. The engine must produce exactly the same events.

use std::collections::BTreeMap;

use atlas_engine::{
    Amend, CancelReason, Command, CommandKind, Event, NewOrder, OrderType, ProductSpec, ProductStatus,
    ProductView, Reject, RestingView, SelfTradePrevention, StopView, TimeInForce,
};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Side, TradeId};

#[derive(Clone, Debug)]
struct Order {
    id: u64,
    participant: u32,
    product: u32,
    side: Side,
    /// Limit price; market orders use an extreme price that crosses everything.
    price: i64,
    market: bool,
    original: i64,
    open: i64,
    traded: i64,
    cancelled: i64,
    tif: TimeInForce,
    stp: SelfTradePrevention,
    post_only: bool,
    /// Smaller is earlier in the queue.
    priority: u64,
}

#[derive(Clone, Debug)]
struct Stop {
    id: u64,
    participant: u32,
    product: u32,
    side: Side,
    order_type: OrderType,
    tif: TimeInForce,
    stp: SelfTradePrevention,
    quantity: i64,
    price: Option<i64>,
    stop_price: i64,
    arrival: u64,
}

#[derive(Clone, Debug)]
struct Product {
    tick: i64,
    lot: i64,
    halted: bool,
    last_trade: Option<i64>,
}

/// The reference exchange.
#[derive(Clone, Debug)]
pub struct Reference {
    products: BTreeMap<u32, Product>,
    resting: Vec<Order>,
    stops: Vec<Stop>,
    last_order_id: u64,
    next_trade_id: u64,
    next_priority: u64,
    orders_max: usize,
    seq: u64,
}

fn market_price(side: Side) -> i64 {
    if side == Side::Buy { i64::MAX } else { 0 }
}

fn crosses(side: Side, limit: i64, resting_price: i64) -> bool {
    if side == Side::Buy { limit >= resting_price } else { limit <= resting_price }
}

fn price_ok(p: i64, tick: i64) -> Result<(), Reject> {
    if p <= 0 || p > Price::MAX.0 {
        Err(Reject::InvalidPrice)
    } else if p % tick != 0 {
        Err(Reject::PriceNotOnTick)
    } else {
        Ok(())
    }
}

fn qty_ok(q: i64, lot: i64) -> Result<(), Reject> {
    if q <= 0 || q > Qty::MAX.0 {
        Err(Reject::InvalidQuantity)
    } else if q % lot != 0 {
        Err(Reject::QuantityNotOnLot)
    } else {
        Ok(())
    }
}

impl Reference {
    pub fn new(orders_max: usize) -> Reference {
        Reference {
            products: BTreeMap::new(),
            resting: Vec::new(),
            stops: Vec::new(),
            last_order_id: 0,
            next_trade_id: 1,
            next_priority: 0,
            orders_max,
            seq: 0,
        }
    }

    /// Aggregated quantity per (product, side, price).
    fn l2(&self) -> BTreeMap<(u32, Side, i64), i64> {
        let mut m = BTreeMap::new();
        for o in &self.resting {
            *m.entry((o.product, o.side, o.price)).or_insert(0) += o.open;
        }
        m
    }

    pub fn apply(&mut self, cmd: &Command) -> Vec<Event> {
        self.seq = cmd.seq.0;
        let before = self.l2();
        let mut ev = Vec::new();
        let result = match &cmd.kind {
            CommandKind::NewOrder(o) => self.new_order(o, &mut ev),
            CommandKind::Cancel { order_id, participant } => self.cancel(order_id.0, *participant, &mut ev),
            CommandKind::Amend(a) => self.amend(a, &mut ev),
            CommandKind::MassCancel { participant, product } => {
                self.many(*product, |p, _| p == participant.0, &mut ev, Some(CancelReason::MassCancel))
            }
            CommandKind::EndOfDay { product } => {
                self.many(*product, |_, tif| tif == TimeInForce::Day, &mut ev, None)
            }
            CommandKind::Halt { product } => self.set_halt(product.0, true, &mut ev),
            CommandKind::Resume { product } => self.set_halt(product.0, false, &mut ev),
            CommandKind::AddProduct(spec) => self.add(*spec, &mut ev),
            CommandKind::RemoveProduct { product } => self.remove(product.0, &mut ev),
            CommandKind::BustTrade { trade } => {
                if (1..self.next_trade_id).contains(&trade.0) {
                    ev.push(Event::Accepted);
                    ev.push(Event::TradeBusted { trade_id: *trade });
                    Ok(())
                } else {
                    Err(Reject::UnknownTrade)
                }
            }
        };
        if let Err(reason) = result {
            return vec![Event::Rejected { reason }];
        }
        let after = self.l2();
        let mut changes: Vec<_> = before
            .keys()
            .chain(after.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| before.get(k) != after.get(k))
            .map(|&(product, side, price)| {
                (product, side, price, after.get(&(product, side, price)).copied())
            })
            .collect();
        changes.sort_by_key(|&(product, side, price, _)| {
            (product, side, if side == Side::Buy { -price } else { price })
        });
        for (product, side, price, q) in changes {
            ev.push(Event::Level {
                product: ProductId(product),
                side,
                price: Price(price),
                quantity: Qty(q.unwrap_or(0)),
            });
        }
        ev
    }

    fn open_count(&self) -> usize {
        self.resting.len() + self.stops.len()
    }

    fn new_order(&mut self, o: &NewOrder, ev: &mut Vec<Event>) -> Result<(), Reject> {
        let p = self.products.get(&o.product.0).ok_or(Reject::UnknownProduct)?.clone();
        if p.halted {
            return Err(Reject::MarketHalted);
        }
        qty_ok(o.quantity.0, p.lot)?;
        if o.order_id.0 <= self.last_order_id {
            return Err(Reject::DuplicateOrderId);
        }
        let wants_price = matches!(o.order_type, OrderType::Limit | OrderType::StopLimit);
        let wants_stop = matches!(o.order_type, OrderType::Stop | OrderType::StopLimit);
        match o.price {
            None if wants_price => return Err(Reject::MissingPrice),
            Some(_) if !wants_price => return Err(Reject::UnexpectedPrice),
            Some(x) => price_ok(x.0, p.tick)?,
            None => {}
        }
        match o.stop_price {
            None if wants_stop => return Err(Reject::MissingStopPrice),
            Some(_) if !wants_stop => return Err(Reject::UnexpectedStopPrice),
            Some(x) => price_ok(x.0, p.tick)?,
            None => {}
        }
        if o.post_only
            && (o.order_type != OrderType::Limit
                || !matches!(o.time_in_force, TimeInForce::Gtc | TimeInForce::Day))
        {
            return Err(Reject::InvalidPostOnly);
        }
        if self.open_count() >= self.orders_max {
            return Err(Reject::CapacityExhausted);
        }
        if o.post_only && self.would_trade(o.product.0, o.side, o.price.map_or(0, |x| x.0)) {
            return Err(Reject::PostOnlyWouldTrade);
        }
        self.last_order_id = o.order_id.0;
        ev.push(Event::Accepted);
        if wants_stop {
            self.stops.push(Stop {
                id: o.order_id.0,
                participant: o.participant.0,
                product: o.product.0,
                side: o.side,
                order_type: o.order_type,
                tif: o.time_in_force,
                stp: o.self_trade_prevention,
                quantity: o.quantity.0,
                price: o.price.map(|x| x.0),
                stop_price: o.stop_price.map_or(0, |x| x.0),
                arrival: self.seq,
            });
            return Ok(());
        }
        let market = o.order_type == OrderType::Market;
        let order = Order {
            id: o.order_id.0,
            participant: o.participant.0,
            product: o.product.0,
            side: o.side,
            price: if market { market_price(o.side) } else { o.price.map_or(0, |x| x.0) },
            market,
            original: o.quantity.0,
            open: o.quantity.0,
            traded: 0,
            cancelled: 0,
            tif: o.time_in_force,
            stp: o.self_trade_prevention,
            post_only: o.post_only,
            priority: 0,
        };
        self.incoming(order, ev);
        Ok(())
    }

    fn would_trade(&self, product: u32, side: Side, limit: i64) -> bool {
        self.resting.iter().any(|r| r.product == product && r.side != side && crosses(side, limit, r.price))
    }

    /// The makers an incoming order on `side` at `limit` may meet, in the order it
    /// meets them: best price first, then earliest.
    fn makers(&self, product: u32, side: Side, limit: i64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.resting.len())
            .filter(|&i| {
                let r = &self.resting[i];
                r.product == product && r.side != side && crosses(side, limit, r.price)
            })
            .collect();
        idx.sort_by_key(|&i| {
            let r = &self.resting[i];
            (if side == Side::Buy { r.price } else { -r.price }, r.priority)
        });
        idx
    }

    fn fok_fillable(&self, o: &Order) -> bool {
        let mut need = o.open;
        for i in self.makers(o.product, o.side, o.price) {
            let m = &self.resting[i];
            if o.stp != SelfTradePrevention::None && m.participant == o.participant {
                if o.stp == SelfTradePrevention::CancelOldest {
                    continue;
                }
                return false;
            }
            need -= m.open;
            if need <= 0 {
                return true;
            }
        }
        false
    }

    /// Matches an incoming order, books or cancels the rest, then runs triggered
    /// stops (and what they trigger) in arrival order, round by round.
    fn incoming(&mut self, order: Order, ev: &mut Vec<Event>) {
        let product = order.product;
        let mut queue: Vec<Stop> = Vec::new();
        let mut next = Some(order);
        let mut head = 0;
        while let Some(o) = next.take() {
            if let Some((low, high)) = self.execute(o, ev) {
                let mut hit: Vec<Stop> = Vec::new();
                let mut keep = Vec::new();
                for s in self.stops.drain(..) {
                    let triggered = s.product == product
                        && match s.side {
                            Side::Buy => s.stop_price <= high,
                            Side::Sell => s.stop_price >= low,
                        };
                    if triggered { hit.push(s) } else { keep.push(s) }
                }
                self.stops = keep;
                hit.sort_by_key(|s| s.arrival);
                for s in &hit {
                    ev.push(Event::StopTriggered { order_id: OrderId(s.id) });
                }
                queue.extend(hit);
            }
            if head < queue.len() {
                let s = queue[head].clone();
                head += 1;
                let market = s.order_type == OrderType::Stop;
                next = Some(Order {
                    id: s.id,
                    participant: s.participant,
                    product: s.product,
                    side: s.side,
                    price: if market { market_price(s.side) } else { s.price.unwrap_or(0) },
                    market,
                    original: s.quantity,
                    open: s.quantity,
                    traded: 0,
                    cancelled: 0,
                    tif: s.tif,
                    stp: s.stp,
                    post_only: false,
                    priority: 0,
                });
            }
        }
    }

    /// Matches one incoming order and books or cancels its rest. Returns the
    /// lowest and highest trade price it printed.
    fn execute(&mut self, mut o: Order, ev: &mut Vec<Event>) -> Option<(i64, i64)> {
        let mut prints: Option<(i64, i64)> = None;
        let killed = o.tif == TimeInForce::Fok && !self.fok_fillable(&o);
        while !killed && o.open > 0 {
            let Some(&i) = self.makers(o.product, o.side, o.price).first() else { break };
            let own = self.resting[i].participant == o.participant;
            if own && o.stp != SelfTradePrevention::None {
                match o.stp {
                    SelfTradePrevention::CancelOldest => self.cancel_maker(i, None, ev),
                    SelfTradePrevention::CancelNewest => {
                        Self::cancel_taker(&mut o, ev);
                        break;
                    }
                    SelfTradePrevention::CancelBoth => {
                        self.cancel_maker(i, None, ev);
                        Self::cancel_taker(&mut o, ev);
                        break;
                    }
                    SelfTradePrevention::Decrement => {
                        let q = o.open.min(self.resting[i].open);
                        self.cancel_maker(i, Some(q), ev);
                        o.open -= q;
                        o.cancelled += q;
                        ev.push(Event::Cancelled {
                            order_id: OrderId(o.id),
                            quantity: Qty(q),
                            open: Qty(o.open),
                            reason: CancelReason::SelfTrade,
                        });
                    }
                    SelfTradePrevention::None => unreachable!(),
                }
                continue;
            }
            let m = &mut self.resting[i];
            let q = o.open.min(m.open);
            m.open -= q;
            m.traded += q;
            o.open -= q;
            o.traded += q;
            let price = m.price;
            ev.push(Event::Trade {
                trade_id: TradeId(self.next_trade_id),
                product: ProductId(o.product),
                price: Price(price),
                quantity: Qty(q),
                maker_order: OrderId(m.id),
                maker_participant: ParticipantId(m.participant),
                maker_open: Qty(m.open),
                taker_order: OrderId(o.id),
                taker_participant: ParticipantId(o.participant),
                aggressor: o.side,
            });
            self.next_trade_id += 1;
            if m.open == 0 {
                self.resting.remove(i);
            }
            self.products.get_mut(&o.product).expect("product").last_trade = Some(price);
            prints = Some(match prints {
                None => (price, price),
                Some((lo, hi)) => (lo.min(price), hi.max(price)),
            });
        }
        if o.open > 0 {
            let reason = if killed {
                Some(CancelReason::FillOrKill)
            } else if o.market || o.tif == TimeInForce::Ioc {
                Some(CancelReason::Unfilled)
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    ev.push(Event::Cancelled {
                        order_id: OrderId(o.id),
                        quantity: Qty(o.open),
                        open: Qty(0),
                        reason,
                    });
                }
                None => {
                    ev.push(Event::Booked {
                        order_id: OrderId(o.id),
                        price: Price(o.price),
                        open: Qty(o.open),
                    });
                    o.priority = self.next_priority;
                    self.next_priority += 1;
                    self.resting.push(o);
                }
            }
        }
        prints
    }

    fn cancel_taker(o: &mut Order, ev: &mut Vec<Event>) {
        ev.push(Event::Cancelled {
            order_id: OrderId(o.id),
            quantity: Qty(o.open),
            open: Qty(0),
            reason: CancelReason::SelfTrade,
        });
        o.cancelled += o.open;
        o.open = 0;
    }

    /// Cancels `q` (default: all) of resting order `i`'s open quantity.
    fn cancel_maker(&mut self, i: usize, q: Option<i64>, ev: &mut Vec<Event>) {
        let m = &mut self.resting[i];
        let q = q.unwrap_or(m.open);
        m.open -= q;
        m.cancelled += q;
        ev.push(Event::Cancelled {
            order_id: OrderId(m.id),
            quantity: Qty(q),
            open: Qty(m.open),
            reason: CancelReason::SelfTrade,
        });
        if m.open == 0 {
            self.resting.remove(i);
        }
    }

    /// Finds an open order for `participant`: `Ok(Ok(resting index))` or
    /// `Ok(Err(stop index))`.
    fn find(&self, id: u64, participant: Option<ParticipantId>) -> Result<Result<usize, usize>, Reject> {
        let found = match self.resting.iter().position(|o| o.id == id) {
            Some(i) => Some((Ok(i), self.resting[i].participant)),
            None => self.stops.iter().position(|s| s.id == id).map(|i| (Err(i), self.stops[i].participant)),
        };
        match found {
            None if id <= self.last_order_id => Err(Reject::OrderNotOpen),
            None => Err(Reject::UnknownOrder),
            Some((_, owner)) if participant.is_some_and(|p| p.0 != owner) => Err(Reject::UnknownOrder),
            Some((loc, _)) => Ok(loc),
        }
    }

    fn cancel(
        &mut self,
        id: u64,
        participant: Option<ParticipantId>,
        ev: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let loc = self.find(id, participant)?;
        ev.push(Event::Accepted);
        let reason = if participant.is_some() { CancelReason::Requested } else { CancelReason::Operator };
        let quantity = match loc {
            Ok(i) => self.resting.remove(i).open,
            Err(i) => self.stops.remove(i).quantity,
        };
        ev.push(Event::Cancelled { order_id: OrderId(id), quantity: Qty(quantity), open: Qty(0), reason });
        Ok(())
    }

    fn amend(&mut self, a: &Amend, ev: &mut Vec<Event>) -> Result<(), Reject> {
        let loc = self.find(a.order_id.0, a.participant)?;
        let product = match loc {
            Ok(i) => self.resting[i].product,
            Err(i) => self.stops[i].product,
        };
        let p = self.products[&product].clone();
        if p.halted {
            return Err(Reject::MarketHalted);
        }
        if a.quantity.is_none() && a.price.is_none() && a.stop_price.is_none() {
            return Err(Reject::NothingToAmend);
        }
        if let Some(q) = a.quantity {
            qty_ok(q.0, p.lot)?;
        }
        match loc {
            Err(i) => {
                let s = self.stops[i].clone();
                if let Some(x) = a.price {
                    if s.order_type == OrderType::Stop {
                        return Err(Reject::UnexpectedPrice);
                    }
                    price_ok(x.0, p.tick)?;
                }
                if let Some(x) = a.stop_price {
                    price_ok(x.0, p.tick)?;
                }
                ev.push(Event::Accepted);
                let quantity = a.quantity.map_or(s.quantity, |q| q.0);
                let stop_price = a.stop_price.map_or(s.stop_price, |x| x.0);
                let price = a.price.map(|x| x.0).or(s.price);
                let kept = stop_price == s.stop_price && quantity <= s.quantity;
                let st = &mut self.stops[i];
                st.quantity = quantity;
                st.stop_price = stop_price;
                st.price = price;
                if !kept {
                    st.arrival = self.seq;
                }
                ev.push(Event::Amended {
                    order_id: a.order_id,
                    quantity: Qty(quantity),
                    open: Qty(quantity),
                    price: price.map(Price),
                    stop_price: Some(Price(stop_price)),
                    priority_kept: kept,
                });
                Ok(())
            }
            Ok(i) => {
                if a.stop_price.is_some() {
                    return Err(Reject::UnexpectedStopPrice);
                }
                if let Some(x) = a.price {
                    price_ok(x.0, p.tick)?;
                }
                let o = self.resting[i].clone();
                let quantity = a.quantity.map_or(o.original, |q| q.0);
                let executed = o.traded + o.cancelled;
                if quantity <= executed {
                    return Err(Reject::QuantityBelowExecuted);
                }
                let price = a.price.map_or(o.price, |x| x.0);
                let reprice = price != o.price;
                if reprice && o.post_only && self.would_trade(o.product, o.side, price) {
                    return Err(Reject::PostOnlyWouldTrade);
                }
                ev.push(Event::Accepted);
                let open = quantity - executed;
                let amended = |kept| Event::Amended {
                    order_id: a.order_id,
                    quantity: Qty(quantity),
                    open: Qty(open),
                    price: Some(Price(price)),
                    stop_price: None,
                    priority_kept: kept,
                };
                if !reprice && quantity <= o.original {
                    let r = &mut self.resting[i];
                    r.original = quantity;
                    r.open = open;
                    ev.push(amended(true));
                } else if !reprice {
                    let priority = self.next_priority;
                    self.next_priority += 1;
                    let r = &mut self.resting[i];
                    r.original = quantity;
                    r.open = open;
                    r.priority = priority;
                    ev.push(amended(false));
                    ev.push(Event::Booked { order_id: a.order_id, price: Price(price), open: Qty(open) });
                } else {
                    let mut r = self.resting.remove(i);
                    r.original = quantity;
                    r.open = open;
                    r.price = price;
                    ev.push(amended(false));
                    self.incoming(r, ev);
                }
                Ok(())
            }
        }
    }

    /// Removes every open order (of `product`, or all) that `keep` selects, by id:
    /// cancelled with `reason`, or expired when `reason` is `None`.
    fn many(
        &mut self,
        product: Option<ProductId>,
        keep: impl Fn(u32, TimeInForce) -> bool,
        ev: &mut Vec<Event>,
        reason: Option<CancelReason>,
    ) -> Result<(), Reject> {
        if product.is_some_and(|p| !self.products.contains_key(&p.0)) {
            return Err(Reject::UnknownProduct);
        }
        ev.push(Event::Accepted);
        let in_scope = |x: u32| product.is_none_or(|p| p.0 == x);
        let mut hit: Vec<(u64, i64)> = Vec::new();
        self.resting.retain(|o| {
            let h = in_scope(o.product) && keep(o.participant, o.tif);
            if h {
                hit.push((o.id, o.open));
            }
            !h
        });
        self.stops.retain(|s| {
            let h = in_scope(s.product) && keep(s.participant, s.tif);
            if h {
                hit.push((s.id, s.quantity));
            }
            !h
        });
        hit.sort();
        for (id, q) in hit {
            ev.push(match reason {
                Some(reason) => {
                    Event::Cancelled { order_id: OrderId(id), quantity: Qty(q), open: Qty(0), reason }
                }
                None => Event::Expired { order_id: OrderId(id), quantity: Qty(q) },
            });
        }
        Ok(())
    }

    fn set_halt(&mut self, product: u32, halted: bool, ev: &mut Vec<Event>) -> Result<(), Reject> {
        let p = self.products.get_mut(&product).ok_or(Reject::UnknownProduct)?;
        p.halted = halted;
        ev.push(Event::Accepted);
        let status = if halted { ProductStatus::Halted } else { ProductStatus::Active };
        ev.push(Event::ProductStatus { product: ProductId(product), status });
        Ok(())
    }

    fn add(&mut self, spec: ProductSpec, ev: &mut Vec<Event>) -> Result<(), Reject> {
        if self.products.contains_key(&spec.id.0) {
            return Err(Reject::ProductExists);
        }
        if spec.tick.0 <= 0 || spec.tick > Price::MAX || spec.lot.0 <= 0 || spec.lot > Qty::MAX {
            return Err(Reject::InvalidProductSpec);
        }
        self.products.insert(
            spec.id.0,
            Product { tick: spec.tick.0, lot: spec.lot.0, halted: false, last_trade: None },
        );
        ev.push(Event::Accepted);
        ev.push(Event::ProductStatus { product: spec.id, status: ProductStatus::Active });
        Ok(())
    }

    fn remove(&mut self, product: u32, ev: &mut Vec<Event>) -> Result<(), Reject> {
        if !self.products.contains_key(&product) {
            return Err(Reject::UnknownProduct);
        }
        let r = self.many(Some(ProductId(product)), |_, _| true, ev, Some(CancelReason::ProductRemoved));
        self.products.remove(&product);
        ev.push(Event::ProductStatus { product: ProductId(product), status: ProductStatus::Removed });
        r
    }

    // ----- views in the engine's shapes, for comparing final states -----

    pub fn product(&self, product: ProductId) -> Option<ProductView> {
        let p = self.products.get(&product.0)?;
        Some(ProductView {
            spec: ProductSpec { id: product, tick: Price(p.tick), lot: Qty(p.lot) },
            status: if p.halted { ProductStatus::Halted } else { ProductStatus::Active },
            last_trade: p.last_trade.map(Price),
        })
    }

    pub fn products(&self) -> Vec<ProductId> {
        self.products.keys().map(|&p| ProductId(p)).collect()
    }

    pub fn orders_by_priority(&self, product: ProductId, side: Side) -> Vec<RestingView> {
        let mut v: Vec<&Order> =
            self.resting.iter().filter(|o| o.product == product.0 && o.side == side).collect();
        v.sort_by_key(|o| (if side == Side::Buy { -o.price } else { o.price }, o.priority));
        v.into_iter()
            .map(|o| RestingView {
                id: OrderId(o.id),
                participant: ParticipantId(o.participant),
                product,
                side,
                price: Price(o.price),
                original: Qty(o.original),
                open: Qty(o.open),
                traded: Qty(o.traded),
                cancelled: Qty(o.cancelled),
                time_in_force: o.tif,
                post_only: o.post_only,
                self_trade_prevention: o.stp,
            })
            .collect()
    }

    pub fn stop_orders(&self, product: ProductId) -> Vec<StopView> {
        let mut v: Vec<&Stop> = self.stops.iter().filter(|s| s.product == product.0).collect();
        v.sort_by_key(|s| (s.side, s.stop_price, s.arrival));
        v.into_iter()
            .map(|s| StopView {
                id: OrderId(s.id),
                participant: ParticipantId(s.participant),
                product,
                side: s.side,
                order_type: s.order_type,
                time_in_force: s.tif,
                self_trade_prevention: s.stp,
                quantity: Qty(s.quantity),
                price: s.price.map(Price),
                stop_price: Price(s.stop_price),
            })
            .collect()
    }
}
