//! Pre-trade risk, the operator's side: per-participant limits (order quantity,
//! order notional, open orders, a price collar) and the kill switch. Quantity and
//! notional are checked here, per order; open orders, the collar and the kill
//! switch on the engine thread (`atlas_journal::risk`), where they cannot race.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use atlas_engine::{CommandKind, NewOrder, OrderType};
use atlas_journal::risk::{RiskLimits, RiskUpdate};
use atlas_journal::{Actor, SubmitError};
use atlas_store::{ProductRow, RiskRow};
use atlas_types::ParticipantId;
use atlas_types::decimal::{format_units, parse_units};

use crate::app::{App, St};
use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::{ApiError, Body, Id};
use crate::model::now_ns;

/// Notional limits are compared at this many decimal places.
const NOTIONAL_SCALE: u8 = 9;

/// A participant's pre-trade limits; an absent field is no limit.
#[derive(Deserialize, Serialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"maxOrderQuantity": 1000, "maxOrderNotional": "100000.00", "maxOpenOrders": 500, "priceCollarPercent": "10"}))]
pub struct LimitsBody {
    /// Largest quantity of one order (at least 1).
    max_order_quantity: Option<i64>,
    /// Largest price × quantity of one order (a positive decimal; a market order
    /// is valued at the best opposite price, else the last trade).
    max_order_notional: Option<String>,
    /// Most working orders at once (0 or more).
    max_open_orders: Option<i64>,
    /// Limit prices must be within this percentage of the last trade (0.01 to 1000;
    /// no trade yet, no collar).
    price_collar_percent: Option<String>,
}

/// A participant's limits and kill switch.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsOut {
    #[serde(flatten)]
    limits: LimitsBody,
    /// On: new orders and amends are refused.
    kill_switch: bool,
}

fn limits_out(r: &RiskRow) -> LimitsOut {
    LimitsOut {
        limits: LimitsBody {
            max_order_quantity: r.order_qty_max,
            max_order_notional: r.order_notional_max.clone(),
            max_open_orders: r.open_orders_max,
            price_collar_percent: r.collar_bps.map(|b| format_units(b, 2)),
        },
        kill_switch: r.killed,
    }
}

fn gate_limits(r: &RiskRow) -> RiskLimits {
    RiskLimits {
        open_orders_max: r.open_orders_max.and_then(|v| u32::try_from(v).ok()),
        collar_bps: r.collar_bps.and_then(|v| u32::try_from(v).ok()),
    }
}

async fn push(app: &App, participant: ParticipantId, r: &RiskRow) -> Result<(), ApiError> {
    for update in [RiskUpdate::Limits(participant, gate_limits(r)), RiskUpdate::Kill(participant, r.killed)] {
        app.seq.risk(update)?.await.map_err(|_| ApiError::storage_unavailable())?;
    }
    Ok(())
}

/// Loads every participant's limits into the cache and the engine thread's gate
/// (at start, before orders are taken).
pub async fn load(app: &App) -> anyhow::Result<()> {
    let all = app.db.all_risk().await?;
    for (p, r) in &all {
        push(app, *p, r).await.map_err(|e| anyhow::anyhow!(e.detail))?;
    }
    let map: HashMap<ParticipantId, RiskRow> = all.into_iter().collect();
    match app.risk.write() {
        Ok(mut g) => *g = map,
        Err(p) => *p.into_inner() = map,
    }
    Ok(())
}

fn cached(app: &App, p: ParticipantId) -> RiskRow {
    let g = match app.risk.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    g.get(&p).cloned().unwrap_or_default()
}

fn store_cache(app: &App, p: ParticipantId, r: RiskRow) {
    match app.risk.write() {
        Ok(mut g) => {
            g.insert(p, r);
        }
        Err(poisoned) => {
            poisoned.into_inner().insert(p, r);
        }
    }
}

fn risk_error(code: &'static str, detail: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
}

/// The stateless checks of a new order: quantity and notional. A market order's
/// notional is estimated at the best opposite price (or the last trade).
pub async fn check_order(app: &App, o: &NewOrder, product: &ProductRow) -> Result<(), ApiError> {
    let limits = cached(app, o.participant);
    if limits.order_qty_max.is_some_and(|max| o.quantity.0 > max) {
        return Err(risk_error(
            "RISK_MAX_QUANTITY",
            "the order quantity is above the participant's limit".into(),
        ));
    }
    let Some(max) = &limits.order_notional_max else { return Ok(()) };
    let max = i128::from(parse_units(max, NOTIONAL_SCALE).map_err(|_| ApiError::internal())?);
    let price = match o.order_type {
        OrderType::Limit | OrderType::StopLimit => o.price,
        OrderType::Market | OrderType::Stop => {
            let (pid, side) = (o.product, o.side);
            let reference = app
                .seq
                .query(move |e| {
                    let best = e.best(pid).and_then(|(bid, ask)| match side {
                        atlas_types::Side::Buy => ask,
                        atlas_types::Side::Sell => bid,
                    });
                    best.map(|l| l.price).or_else(|| e.product(pid).and_then(|p| p.last_trade))
                })?
                .await
                .map_err(|_| ApiError::storage_unavailable())?;
            reference.or(o.stop_price)
        }
    };
    let Some(price) = price else { return Ok(()) };
    let up = 10i128.pow(u32::from(NOTIONAL_SCALE) - product.price_scale.min(u32::from(NOTIONAL_SCALE)));
    let notional = i128::from(price.0) * up * i128::from(o.quantity.0);
    if notional > max {
        return Err(risk_error(
            "RISK_MAX_NOTIONAL",
            "the order notional is above the participant's limit".into(),
        ));
    }
    Ok(())
}

async fn participant_exists(app: &App, id: u32) -> Result<ParticipantId, ApiError> {
    Ok(crate::participants::find(app, id).await?.id)
}

/// A participant's risk limits
#[utoipa::path(get, path = "/atlas/internal/api/participant/broker/{id}/limits", tag = "participants", params(("id" = u32, Path, description = "Participant id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Its limits", body = LimitsOut), (status = 404, description = "`PARTICIPANT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn get_limits(
    State(ctx): St,
    caller: Caller,
    Id(id): Id<u32>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let p = participant_exists(&ctx.app, id).await?;
    Ok(axum::Json(limits_out(&cached(&ctx.app, p))))
}

/// Set a participant's risk limits
///
/// Replaces them all (an absent field is no limit); they apply to the next order.
#[utoipa::path(put, path = "/atlas/internal/api/participant/broker/{id}/limits", tag = "participants", params(("id" = u32, Path, description = "Participant id")),
    request_body = LimitsBody, security(("bearer" = [])),
    responses((status = 200, description = "Its limits", body = LimitsOut), (status = 404, description = "`PARTICIPANT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn put_limits(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Id(id): Id<u32>,
    Body(b): Body<LimitsBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let app = &ctx.app;
    let p = participant_exists(app, id).await?;
    if b.max_order_quantity.is_some_and(|v| v < 1) {
        return Err(ApiError::validation("maxOrderQuantity must be at least 1"));
    }
    if b.max_open_orders.is_some_and(|v| !(0..=i64::from(u32::MAX)).contains(&v)) {
        return Err(ApiError::validation("maxOpenOrders must be 0 or more"));
    }
    if let Some(n) = &b.max_order_notional {
        match parse_units(n, NOTIONAL_SCALE) {
            Ok(v) if v > 0 => {}
            _ => return Err(ApiError::validation("maxOrderNotional must be a positive decimal")),
        }
    }
    let collar_bps = match &b.price_collar_percent {
        Some(pct) => match parse_units(pct, 2) {
            Ok(bps) if (1..=100_000).contains(&bps) => Some(bps),
            _ => {
                return Err(ApiError::validation(
                    "priceCollarPercent must be 0.01 to 1000 with at most two decimals",
                ));
            }
        },
        None => None,
    };
    let row = RiskRow {
        order_qty_max: b.max_order_quantity,
        order_notional_max: b.max_order_notional.clone(),
        open_orders_max: b.max_open_orders,
        collar_bps,
        killed: cached(app, p).killed,
    };
    app.db.upsert_risk(p, &row, now_ns()).await?;
    push(app, p, &row).await?;
    store_cache(app, p, row.clone());
    let out = limits_out(&row);
    let detail = serde_json::to_value(&out.limits).map_err(|_| ApiError::internal())?;
    audit::by(app, &caller, origin, "RISK_LIMITS_SET", format!("participant:{id}"), detail).await?;
    Ok(axum::Json(out))
}

/// The kill switch's new position.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KillBody {
    active: bool,
}

/// What a kill switch did.
#[derive(Serialize, ToSchema)]
pub struct KillOut {
    active: bool,
    /// The orders it cancelled.
    cancelled: Vec<u64>,
}

/// A participant's kill switch
///
/// On blocks the participant's new orders and amends, then cancels all its open
/// orders; off lets it trade again. Persisted.
#[utoipa::path(post, path = "/atlas/internal/api/participant/broker/{id}/killSwitch", tag = "participants", params(("id" = u32, Path, description = "Participant id")),
    request_body = KillBody, security(("bearer" = [])),
    responses((status = 200, description = "Done", body = KillOut), (status = 404, description = "`PARTICIPANT_NOT_FOUND`", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn kill_switch(
    State(ctx): St,
    caller: Caller,
    origin: Origin,
    Id(id): Id<u32>,
    Body(b): Body<KillBody>,
) -> Result<impl IntoResponse, ApiError> {
    caller.operator()?;
    let app = &ctx.app;
    let p = participant_exists(app, id).await?;
    let row = RiskRow { killed: b.active, ..cached(app, p) };
    app.db.upsert_risk(p, &row, now_ns()).await?;
    // Block first, so nothing new slips in between the cancel and the block.
    app.seq.risk(RiskUpdate::Kill(p, b.active))?.await.map_err(|_| ApiError::storage_unavailable())?;
    store_cache(app, p, row);
    let mut cancelled: Vec<u64> = Vec::new();
    if b.active {
        let actor = Actor { user: caller.actor_user(), participant: None };
        let receipt = app
            .seq
            .submit(actor, None, CommandKind::MassCancel { participant: p, product: None })?
            .await
            .map_err(|_| ApiError::from(SubmitError::StorageUnavailable))??;
        cancelled = receipt
            .events
            .iter()
            .filter_map(|e| match e {
                atlas_engine::Event::Cancelled { order_id, .. } => Some(order_id.0),
                _ => None,
            })
            .collect();
    }
    let action = if b.active { "KILL_SWITCH_ON" } else { "KILL_SWITCH_OFF" };
    let detail = serde_json::json!({"cancelled": cancelled.len()});
    audit::by(app, &caller, origin, action, format!("participant:{id}"), detail).await?;
    Ok(axum::Json(KillOut { active: b.active, cancelled }))
}
