//! Deterministic benchmark workloads: command streams generated from a seed.
//!
//! Each generator drives a simulation engine while it writes commands, so cancels
//! and moves always name orders that are live at that point, exactly as a real
//! client's would. The benchmark then replays the recorded commands on a fresh
//! engine; the engine being deterministic, it sees the very same states.

use atlas_engine::{
    Amend, Command, CommandKind, Engine, EngineConfig, Event, NewOrder, OrderType, ProductSpec,
    SelfTradePrevention, TimeInForce,
};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Seq, Side, Timestamp};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

use crate::rng::Rng;

/// The product every workload trades.
pub const PRODUCT: ProductId = ProductId(1);

/// A recorded workload: commands that build the starting book, then the commands
/// to measure.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Short name, as `atlas bench` spells it.
    pub name: &'static str,
    /// Commands that list the product and build the starting book (not measured).
    pub setup: Vec<Command>,
    /// The measured commands.
    pub commands: Vec<Command>,
    /// What the stream does, as observed while generating it.
    pub stats: WorkloadStats,
}

/// Facts about a generated workload, for the benchmark report.
#[derive(Clone, Debug, Default)]
pub struct WorkloadStats {
    /// Resting orders after the setup.
    pub resting_start: usize,
    /// Price levels after the setup.
    pub levels_start: usize,
    /// Resting orders after the measured commands.
    pub resting_end: usize,
    /// Price levels after the measured commands.
    pub levels_end: usize,
    /// Measured commands that produced at least one trade.
    pub trading_commands: usize,
    /// Trades in the measured commands.
    pub trades: usize,
    /// Measured commands the engine rejected (should be 0).
    pub rejected: usize,
    /// Measured commands by kind: new GTC, new IOC, cancel, move (amend).
    pub mix: [usize; 4],
}

/// The engine sizing the benchmarks use: room for the largest book they build.
pub fn bench_config(orders: u32) -> EngineConfig {
    EngineConfig { orders_max: orders.max(1_024) * 2, orders_reserved: orders.max(1_024) }
}

/// Which workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// exchange-core's mix: ~1,000 orders over ~750 levels, 9% GTC, 3% IOC,
    /// 6% cancel, 82% move, prices near the last trade, ~6% of commands trading.
    ExchangeCore,
    /// Liquibook's stream: alternating buy/sell limit orders, bids 1880–1889,
    /// asks 1884–1893, quantity 100–1000; the book grows.
    Liquibook,
    /// 60% new limit orders, 40% cancels of live orders, in a book held near
    /// 10,000 orders.
    NewCancel,
    /// A market maker's flow: nine new orders in ten are quotes near the
    /// touch, each cancelled 200 quotes later unless filled (1% cross the
    /// spread); one in ten rests deep in the book until 20,000 newer ones do.
    /// Half the commands are cancels, and the resting orders outlive a
    /// couple of hundred thousand newer ids: the flow that made the order
    /// index's old low-bits buckets pile up into long runs.
    MarketMaker,
}

impl Kind {
    /// All workloads, in report order.
    pub const ALL: [Kind; 4] = [Kind::ExchangeCore, Kind::Liquibook, Kind::NewCancel, Kind::MarketMaker];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ExchangeCore => "exchange-core",
            Kind::Liquibook => "liquibook",
            Kind::NewCancel => "new-cancel",
            Kind::MarketMaker => "market-maker",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Generates `n` measured commands from `seed`.
    pub fn generate(self, seed: u64, n: usize) -> Workload {
        match self {
            Kind::ExchangeCore => exchange_core(seed, n),
            Kind::Liquibook => liquibook(seed, n),
            Kind::NewCancel => new_cancel(seed, n),
            Kind::MarketMaker => market_maker(seed, n),
        }
    }
}

/// A simulation that records the commands it applies and tracks live orders.
struct Sim {
    engine: Engine,
    rng: Rng,
    seq: u64,
    next_id: u64,
    live: Vec<OrderId>,
    live_pos: FxHashMap<OrderId, usize>,
    out: Vec<Event>,
    recorded: Vec<Command>,
    stats: WorkloadStats,
    measuring: bool,
}

const BASE_PRICE: i64 = 100_000;

impl Sim {
    fn new(seed: u64, capacity: usize) -> Sim {
        let mut sim = Sim {
            engine: Engine::new(bench_config(capacity as u32)),
            rng: Rng::new(seed),
            seq: 0,
            next_id: 1,
            live: Vec::new(),
            live_pos: FxHashMap::default(),
            out: Vec::new(),
            recorded: Vec::new(),
            stats: WorkloadStats::default(),
            measuring: false,
        };
        sim.apply(CommandKind::AddProduct(ProductSpec { id: PRODUCT, tick: Price(1), lot: Qty(1) }));
        sim
    }

    fn add_live(&mut self, id: OrderId) {
        if !self.live_pos.contains_key(&id) {
            self.live_pos.insert(id, self.live.len());
            self.live.push(id);
        }
    }

    fn remove_live(&mut self, id: OrderId) {
        if let Some(pos) = self.live_pos.remove(&id) {
            self.live.swap_remove(pos);
            if let Some(&moved) = self.live.get(pos) {
                self.live_pos.insert(moved, pos);
            }
        }
    }

    fn apply(&mut self, kind: CommandKind) {
        self.seq += 1;
        // One microsecond per command: time is carried, never read by the engine.
        let cmd = Command { seq: Seq(self.seq), time: Timestamp(self.seq as i64 * 1_000), kind };
        self.out.clear();
        self.engine.apply(&cmd, &mut self.out);
        let mut traded = false;
        let events = std::mem::take(&mut self.out);
        for e in &events {
            match *e {
                Event::Booked { order_id, .. } => self.add_live(order_id),
                Event::Cancelled { order_id, open, .. } if open.0 == 0 => self.remove_live(order_id),
                Event::Expired { order_id, .. } => self.remove_live(order_id),
                Event::Trade { maker_order, maker_open, .. } => {
                    traded = true;
                    if self.measuring {
                        self.stats.trades += 1;
                    }
                    if maker_open.0 == 0 {
                        self.remove_live(maker_order);
                    }
                }
                Event::Rejected { .. } if self.measuring => self.stats.rejected += 1,
                _ => {}
            }
        }
        if let CommandKind::Amend(a) = &cmd.kind
            && self.engine.order(a.order_id).is_none()
        {
            self.remove_live(a.order_id);
        }
        self.out = events;
        if self.measuring && traded {
            self.stats.trading_commands += 1;
        }
        self.recorded.push(cmd);
    }

    fn limit(&mut self, side: Side, price: i64, qty: i64, tif: TimeInForce) {
        let id = OrderId(self.next_id);
        self.next_id += 1;
        let participant = ParticipantId(1 + self.rng.below(1_000) as u32);
        self.apply(CommandKind::NewOrder(NewOrder {
            order_id: id,
            participant,
            product: PRODUCT,
            side,
            order_type: OrderType::Limit,
            time_in_force: tif,
            quantity: Qty(qty),
            price: Some(Price(price.max(1))),
            stop_price: None,
            post_only: false,
            self_trade_prevention: SelfTradePrevention::None,
        }));
    }

    fn cancel_random(&mut self) {
        let id = self.live[self.rng.below(self.live.len() as u64) as usize];
        self.apply(CommandKind::Cancel { order_id: id, participant: None });
    }

    fn best(&self) -> (Option<i64>, Option<i64>) {
        match self.engine.best(PRODUCT) {
            Some((bid, ask)) => (bid.map(|l| l.price.0), ask.map(|l| l.price.0)),
            None => (None, None),
        }
    }

    /// A price for a new or moved order: usually passive, near the last trade and
    /// skewed towards the touch; with probability `aggressive_per_10k` it crosses
    /// the spread by 0–2 ticks.
    fn price_for(&mut self, side: Side, spread_ticks: u64, aggressive_per_10k: u64) -> i64 {
        let (bid, ask) = self.best();
        let last = self.engine.product(PRODUCT).and_then(|p| p.last_trade).map_or(BASE_PRICE, |p| p.0);
        let aggressive = self.rng.chance(aggressive_per_10k);
        let d = self.rng.near(spread_ticks);
        match side {
            Side::Buy => match (aggressive, ask) {
                (true, Some(ask)) => ask + self.rng.range(0, 2),
                (_, ask) => {
                    let p = last - 1 - d;
                    ask.map_or(p, |a| p.min(a - 1))
                }
            },
            Side::Sell => match (aggressive, bid) {
                (true, Some(bid)) => bid - self.rng.range(0, 2),
                (_, bid) => {
                    let p = last + 1 + d;
                    bid.map_or(p, |b| p.max(b + 1))
                }
            },
        }
    }

    fn side(&mut self) -> Side {
        if self.rng.below(2) == 0 { Side::Buy } else { Side::Sell }
    }

    fn finish(mut self, name: &'static str, setup_len: usize) -> Workload {
        let depth = self.engine.depth(PRODUCT, usize::MAX).unwrap_or_default();
        self.stats.resting_end = self.engine.open_orders();
        self.stats.levels_end = depth.bids.len() + depth.asks.len();
        let commands = self.recorded.split_off(setup_len);
        Workload { name, setup: self.recorded, commands, stats: self.stats }
    }

    fn start_measuring(&mut self) -> usize {
        let depth = self.engine.depth(PRODUCT, usize::MAX).unwrap_or_default();
        self.stats.resting_start = self.engine.open_orders();
        self.stats.levels_start = depth.bids.len() + depth.asks.len();
        self.measuring = true;
        self.recorded.len()
    }
}

/// Spread of passive prices around the last trade, in ticks, per side.
const EC_SPREAD_TICKS: u64 = 1_700;
/// Target book size for the exchange-core mix.
const EC_TARGET_ORDERS: usize = 1_000;

fn exchange_core(seed: u64, n: usize) -> Workload {
    let mut sim = Sim::new(seed, EC_TARGET_ORDERS * 2);
    while sim.live.len() < EC_TARGET_ORDERS {
        let side = sim.side();
        let price = sim.price_for(side, EC_SPREAD_TICKS, 0);
        let qty = sim.rng.range(1, 100);
        sim.limit(side, price, qty, TimeInForce::Gtc);
    }
    let setup_len = sim.start_measuring();
    for _ in 0..n {
        let roll = sim.rng.below(100);
        // Keep the book near its target size by swapping a GTC for a cancel (and
        // back) when it drifts, which leaves the overall mix as specified.
        let live = sim.live.len();
        let action = match roll {
            0..=8 if live > EC_TARGET_ORDERS + 100 => 2,
            0..=8 => 0,
            9..=11 => 1,
            12..=17 if live < EC_TARGET_ORDERS - 100 => 0,
            12..=17 => 2,
            _ => 3,
        };
        sim.stats.mix[action] += 1;
        match action {
            0 => {
                let side = sim.side();
                let price = sim.price_for(side, EC_SPREAD_TICKS, 330);
                let qty = sim.rng.range(1, 100);
                sim.limit(side, price, qty, TimeInForce::Gtc);
            }
            1 => {
                let side = sim.side();
                let price = sim.price_for(side, EC_SPREAD_TICKS, 10_000);
                let qty = sim.rng.range(1, 10);
                sim.limit(side, price, qty, TimeInForce::Ioc);
            }
            2 => sim.cancel_random(),
            _ => {
                let id = sim.live[sim.rng.below(live as u64) as usize];
                let (side, old) = match sim.engine.order(id) {
                    Some(atlas_engine::OrderView::Resting(o)) => (o.side, o.price.0),
                    _ => unreachable_live(),
                };
                let mut price = sim.price_for(side, EC_SPREAD_TICKS, 330);
                if price == old {
                    price += if side == Side::Buy { -1 } else { 1 };
                }
                sim.apply(CommandKind::Amend(Amend {
                    order_id: id,
                    participant: None,
                    quantity: None,
                    price: Some(Price(price.max(1))),
                    stop_price: None,
                }));
            }
        }
    }
    sim.finish(Kind::ExchangeCore.name(), setup_len)
}

/// The live set only holds resting orders; anything else is a generator bug.
#[cold]
fn unreachable_live() -> ! {
    panic!("workload generator: a live order is not resting")
}

fn liquibook(seed: u64, n: usize) -> Workload {
    let mut sim = Sim::new(seed, n);
    let setup_len = sim.start_measuring();
    for i in 0..n {
        let (side, price) = if i % 2 == 0 {
            (Side::Buy, 1_880 + sim.rng.range(0, 9))
        } else {
            (Side::Sell, 1_884 + sim.rng.range(0, 9))
        };
        let qty = sim.rng.range(100, 1_000);
        sim.stats.mix[0] += 1;
        sim.limit(side, price, qty, TimeInForce::Gtc);
    }
    sim.finish(Kind::Liquibook.name(), setup_len)
}

/// The steady book size of the new/cancel workload.
const NC_TARGET_ORDERS: usize = 10_000;

fn new_cancel(seed: u64, n: usize) -> Workload {
    let mut sim = Sim::new(seed, NC_TARGET_ORDERS * 2);
    while sim.live.len() < NC_TARGET_ORDERS {
        let side = sim.side();
        let price = sim.price_for(side, 2_000, 0);
        let qty = sim.rng.range(1, 100);
        sim.limit(side, price, qty, TimeInForce::Gtc);
    }
    let setup_len = sim.start_measuring();
    for _ in 0..n {
        if sim.rng.below(100) < 60 || sim.live.is_empty() {
            sim.stats.mix[0] += 1;
            let side = sim.side();
            // 60% in and 40% out would grow the book without end; new orders
            // that cross the spread (and so take liquidity out) hold it near its
            // target size instead, keeping the figure independent of the run length.
            let aggressive = if sim.live.len() > NC_TARGET_ORDERS { 5_000 } else { 1_000 };
            let price = sim.price_for(side, 2_000, aggressive);
            let qty = sim.rng.range(1, 100);
            sim.limit(side, price, qty, TimeInForce::Gtc);
        } else {
            sim.stats.mix[2] += 1;
            sim.cancel_random();
        }
    }
    sim.finish(Kind::NewCancel.name(), setup_len)
}

/// Quotes near the touch in the market maker's flow, at most: the oldest
/// beyond it is cancelled.
const MM_QUOTES: usize = 200;
/// Orders resting deep in the market maker's book, at most (likewise).
const MM_RESTING: usize = 20_000;

fn market_maker(seed: u64, n: usize) -> Workload {
    let mut sim = Sim::new(seed, (MM_RESTING + MM_QUOTES) * 2);
    let (mut quotes, mut resting) = (VecDeque::new(), VecDeque::new());
    while resting.len() < MM_RESTING {
        resting.push_back(sim.deep());
    }
    let setup_len = sim.start_measuring();
    for _ in 0..n {
        // The oldest quote or resting order beyond its count goes, unless a
        // trade took it already.
        let mut victim = None;
        for (queue, max) in [(&mut quotes, MM_QUOTES), (&mut resting, MM_RESTING)] {
            while victim.is_none() && queue.len() > max {
                victim = queue.pop_front().filter(|id| sim.live_pos.contains_key(id));
            }
        }
        if let Some(id) = victim {
            sim.stats.mix[2] += 1;
            sim.apply(CommandKind::Cancel { order_id: id, participant: None });
        } else if sim.rng.below(10) == 0 {
            resting.push_back(sim.deep());
        } else {
            sim.stats.mix[0] += 1;
            quotes.push_back(OrderId(sim.next_id));
            let side = sim.side();
            let price = sim.price_for(side, 20, 100);
            let qty = sim.rng.range(1, 100);
            sim.limit(side, price, qty, TimeInForce::Gtc);
        }
    }
    sim.finish(Kind::MarketMaker.name(), setup_len)
}

impl Sim {
    /// Places an order 500 to 2,500 ticks from the last trade, on its own
    /// side of it, where it rests; returns its id.
    fn deep(&mut self) -> OrderId {
        let id = OrderId(self.next_id);
        if self.measuring {
            self.stats.mix[0] += 1;
        }
        let last = self.engine.product(PRODUCT).and_then(|p| p.last_trade).map_or(BASE_PRICE, |p| p.0);
        let side = self.side();
        let d = self.rng.range(500, 2_500);
        let price = if side == Side::Buy { last - d } else { last + d };
        let qty = self.rng.range(1, 100);
        self.limit(side, price, qty, TimeInForce::Gtc);
        id
    }
}

/// `n` resting orders that never cross (bids below 100,000, asks above, spread
/// over 10,000 levels a side): for measuring memory per resting order.
pub fn resting_book(seed: u64, n: usize) -> Vec<Command> {
    let mut rng = Rng::new(seed);
    let mut cmds = Vec::with_capacity(n + 1);
    cmds.push(Command {
        seq: Seq(1),
        time: Timestamp(0),
        kind: CommandKind::AddProduct(ProductSpec { id: PRODUCT, tick: Price(1), lot: Qty(1) }),
    });
    for i in 0..n as u64 {
        let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
        let d = 1 + rng.below(10_000) as i64;
        let price = if side == Side::Buy { BASE_PRICE - d } else { BASE_PRICE + d };
        cmds.push(Command {
            seq: Seq(i + 2),
            time: Timestamp(0),
            kind: CommandKind::NewOrder(NewOrder {
                order_id: OrderId(i + 1),
                participant: ParticipantId(1 + (i % 1_000) as u32),
                product: PRODUCT,
                side,
                order_type: OrderType::Limit,
                time_in_force: TimeInForce::Gtc,
                quantity: Qty(rng.range(1, 1_000)),
                price: Some(Price(price)),
                stop_price: None,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::None,
            }),
        });
    }
    cmds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_deterministic_and_valid() {
        for kind in Kind::ALL {
            let a = kind.generate(7, 20_000);
            let b = kind.generate(7, 20_000);
            assert_eq!(a.commands, b.commands, "{}", kind.name());
            assert_eq!(a.stats.rejected, 0, "{}: generated commands must all be valid", kind.name());
            assert!(a.stats.trades > 0, "{} trades", kind.name());
        }
    }

    /// `n` commands of `kind` (seed 1), and what share of them a count is, in %.
    fn generated(kind: Kind, n: usize) -> (Workload, impl Fn(usize) -> f64) {
        let w = kind.generate(1, n);
        let total = w.commands.len() as f64;
        (w, move |x: usize| 100.0 * x as f64 / total)
    }

    #[test]
    fn exchange_core_mix_has_the_published_shape() {
        let (w, pct) = generated(Kind::ExchangeCore, 200_000);
        let s = &w.stats;
        assert!((pct(s.mix[0]) - 9.0).abs() < 1.0, "GTC {:.1}%", pct(s.mix[0]));
        assert!((pct(s.mix[1]) - 3.0).abs() < 0.5, "IOC {:.1}%", pct(s.mix[1]));
        assert!((pct(s.mix[2]) - 6.0).abs() < 1.0, "cancel {:.1}%", pct(s.mix[2]));
        assert!((pct(s.mix[3]) - 82.0).abs() < 1.0, "move {:.1}%", pct(s.mix[3]));
        assert!((4.0..8.0).contains(&pct(s.trading_commands)), "trading {:.1}%", pct(s.trading_commands));
        assert!((800..1_300).contains(&s.resting_end), "resting {}", s.resting_end);
        assert!((600..900).contains(&s.levels_end), "levels {}", s.levels_end);
    }

    /// The market maker's stream: half cancels, the deep orders outliving
    /// the order index's window of recent ids, the book held near its size.
    #[test]
    fn market_maker_flow_cancels_half_and_keeps_deep_orders_for_long() {
        let (w, pct) = generated(Kind::MarketMaker, 400_000);
        let s = &w.stats;
        assert_eq!(w.commands.len(), 400_000);
        assert!((45.0..50.0).contains(&pct(s.mix[2])), "cancel {:.1}%", pct(s.mix[2]));
        assert!((0.1..2.0).contains(&pct(s.trading_commands)), "trading {:.1}%", pct(s.trading_commands));
        assert!(
            (MM_RESTING..MM_RESTING + MM_QUOTES + 1).contains(&s.resting_end),
            "resting {}",
            s.resting_end
        );
        // Cancels of orders placed more than 100,000 orders before the
        // newest: the deep ones (quotes go 200 orders later).
        let mut newest = 0;
        let mut old = 0;
        for c in &w.commands {
            match &c.kind {
                CommandKind::NewOrder(o) => newest = o.order_id.0,
                CommandKind::Cancel { order_id, .. } if newest - order_id.0 > 100_000 => old += 1,
                _ => {}
            }
        }
        assert!(old > 10_000, "{old} cancels of orders over 100,000 old");
    }
}
