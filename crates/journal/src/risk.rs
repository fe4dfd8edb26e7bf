//! Pre-trade risk checks that depend on the shard's state, run on the engine
//! thread in order with the commands (so two orders can never both pass a limit
//! only one of them fits): a participant's open-order count, its kill switch,
//! and a price collar around the product's last trade. Stateless checks (order
//! quantity, notional in the product's currency) are the order service's.
//!
//! A refused order is answered at once and never journaled: it changes nothing.
//! Limits are not part of the journal either; the services persist them and load
//! them into the sequencer before it takes orders.

use std::collections::{HashMap, HashSet};

use atlas_engine::{Amend, Engine, NewOrder, OrderType, OrderView};
use atlas_types::{ParticipantId, Price, ProductId};
use thiserror::Error;

use crate::projection::Projection;

/// A participant's stateful limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RiskLimits {
    /// Open orders (resting or waiting stops), at most.
    pub open_orders_max: Option<u32>,
    /// Limit and stop prices within this many basis points of the product's
    /// last trade (no last trade: no collar).
    pub collar_bps: Option<u32>,
}

/// A change to the risk state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RiskUpdate {
    /// Set (replace) a participant's limits.
    Limits(ParticipantId, RiskLimits),
    /// Turn a participant's kill switch on (refuse its new orders and amends) or off.
    Kill(ParticipantId, bool),
}

/// Why the risk gate refused an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RiskReject {
    /// The participant's kill switch is on.
    #[error("the participant's kill switch is on")]
    Killed,
    /// The participant has as many open orders as allowed.
    #[error("too many open orders")]
    OpenOrders,
    /// The price is outside the collar around the last trade.
    #[error("price outside the collar around the last trade")]
    PriceCollar,
}

impl RiskReject {
    /// The stable API code.
    pub fn code(self) -> &'static str {
        match self {
            RiskReject::Killed => "PARTICIPANT_BLOCKED",
            RiskReject::OpenOrders => "RISK_MAX_OPEN_ORDERS",
            RiskReject::PriceCollar => "RISK_PRICE_COLLAR",
        }
    }
}

/// The engine thread's risk state.
#[derive(Clone, Debug, Default)]
pub struct RiskGate {
    limits: HashMap<ParticipantId, RiskLimits>,
    killed: HashSet<ParticipantId>,
}

fn within_collar(engine: &Engine, product: ProductId, price: Price, bps: u32) -> bool {
    let Some(last) = engine.product(product).and_then(|p| p.last_trade) else { return true };
    let band = i128::from(last.0) * i128::from(bps) / 10_000;
    let (lo, hi) = (i128::from(last.0) - band, i128::from(last.0) + band);
    (lo..=hi).contains(&i128::from(price.0))
}

impl RiskGate {
    /// Applies an update.
    pub fn update(&mut self, u: RiskUpdate) {
        match u {
            RiskUpdate::Limits(p, l) if l == RiskLimits::default() => {
                self.limits.remove(&p);
            }
            RiskUpdate::Limits(p, l) => {
                self.limits.insert(p, l);
            }
            RiskUpdate::Kill(p, true) => {
                self.killed.insert(p);
            }
            RiskUpdate::Kill(p, false) => {
                self.killed.remove(&p);
            }
        }
    }

    /// Checks a new order against the participant's state.
    pub fn check_new(
        &self,
        o: &NewOrder,
        engine: &Engine,
        projection: &Projection,
    ) -> Result<(), RiskReject> {
        if self.killed.contains(&o.participant) {
            return Err(RiskReject::Killed);
        }
        let Some(l) = self.limits.get(&o.participant) else { return Ok(()) };
        if l.open_orders_max.is_some_and(|max| projection.open_orders_of(o.participant) >= max) {
            return Err(RiskReject::OpenOrders);
        }
        if let Some(bps) = l.collar_bps {
            let prices = [
                o.price,
                if matches!(o.order_type, OrderType::Stop | OrderType::StopLimit) {
                    o.stop_price
                } else {
                    None
                },
            ];
            if prices.into_iter().flatten().any(|p| !within_collar(engine, o.product, p, bps)) {
                return Err(RiskReject::PriceCollar);
            }
        }
        Ok(())
    }

    /// Checks an amend: a killed participant may not amend (it may cancel), and
    /// a new price must be inside the collar.
    pub fn check_amend(&self, a: &Amend, engine: &Engine) -> Result<(), RiskReject> {
        let Some(owner) = a.participant.or_else(|| match engine.order(a.order_id) {
            Some(OrderView::Resting(r)) => Some(r.participant),
            Some(OrderView::Stop(s)) => Some(s.participant),
            None => None,
        }) else {
            return Ok(());
        };
        if self.killed.contains(&owner) {
            return Err(RiskReject::Killed);
        }
        let Some(bps) = self.limits.get(&owner).and_then(|l| l.collar_bps) else { return Ok(()) };
        let product = match engine.order(a.order_id) {
            Some(OrderView::Resting(r)) => r.product,
            Some(OrderView::Stop(s)) => s.product,
            None => return Ok(()),
        };
        if [a.price, a.stop_price].into_iter().flatten().any(|p| !within_collar(engine, product, p, bps)) {
            return Err(RiskReject::PriceCollar);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_engine::{SelfTradePrevention, TimeInForce};
    use atlas_types::{OrderId, Qty, Side};

    fn order(p: u32, price: i64) -> NewOrder {
        NewOrder {
            order_id: OrderId(1),
            participant: ParticipantId(p),
            product: ProductId(1),
            side: Side::Buy,
            order_type: OrderType::Limit,
            time_in_force: TimeInForce::Gtc,
            quantity: Qty(1),
            price: Some(Price(price)),
            stop_price: None,
            post_only: false,
            self_trade_prevention: SelfTradePrevention::None,
        }
    }

    #[test]
    fn kill_switch_and_limits() {
        let engine = Engine::default();
        let projection = Projection::default();
        let mut gate = RiskGate::default();
        assert_eq!(gate.check_new(&order(1, 100), &engine, &projection), Ok(()));
        gate.update(RiskUpdate::Kill(ParticipantId(1), true));
        assert_eq!(gate.check_new(&order(1, 100), &engine, &projection), Err(RiskReject::Killed));
        assert_eq!(gate.check_new(&order(2, 100), &engine, &projection), Ok(()), "only participant 1");
        gate.update(RiskUpdate::Kill(ParticipantId(1), false));
        gate.update(RiskUpdate::Limits(
            ParticipantId(1),
            RiskLimits { open_orders_max: Some(0), collar_bps: None },
        ));
        assert_eq!(gate.check_new(&order(1, 100), &engine, &projection), Err(RiskReject::OpenOrders));
        // No last trade: no collar.
        gate.update(RiskUpdate::Limits(
            ParticipantId(1),
            RiskLimits { open_orders_max: None, collar_bps: Some(100) },
        ));
        assert_eq!(gate.check_new(&order(1, 1_000_000), &engine, &projection), Ok(()));
    }
}
