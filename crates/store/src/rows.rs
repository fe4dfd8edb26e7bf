//! Writing and reading the order and trade tables, one definition for both backends.

/// Writing the order and trade rows through sqlx (PostgreSQL; SQLite's writer
/// has its own synchronous connection, `sqlite_writer.rs`): expanded in the
/// backend's module, which supplies `err` and `bool_param` (how a boolean binds).
macro_rules! order_writes {
    ($db:ident) => {
/// Order rows per statement: well under the database's bind-parameter limit.
const ORDER_ROWS_PER_STATEMENT: usize = 512;
/// Trade rows per statement.
const TRADE_ROWS_PER_STATEMENT: usize = 1_024;
/// Order ids per DELETE statement.
const ORDER_IDS_PER_STATEMENT: usize = 1_024;

fn i64_of(v: u64) -> Result<i64, StorageError> {
    i64::try_from(v).map_err(err)
}

/// Writes what a batch changed, set-based: working orders are upserted into the
/// small `orders_open` table; finished ones leave it (if an earlier batch put them
/// there) and are inserted, once, into the write-once `orders_done`; trades are
/// inserted.
async fn write_effects(
    tx: &mut sqlx::Transaction<'_, sqlx::$db>,
    fx: &Effects,
    first_seq: Seq,
) -> Result<(), StorageError> {
    let split = crate::EffectsSplit::of(fx, first_seq);
    for chunk in crate::cacheable_chunks(&split.leaving, ORDER_IDS_PER_STATEMENT) {
        let mut q = sqlx::QueryBuilder::<sqlx::$db>::new("DELETE FROM orders_open WHERE id IN (");
        let mut ids = q.separated(", ");
        for id in chunk {
            ids.push_bind(i64_of(id.0)?);
        }
        q.push(")");
        q.build().execute(&mut **tx).await.map_err(err)?;
    }
    for (table, rows, upsert) in
        [("orders_done", &split.done, false), ("orders_open", &split.open, true)]
    {
        for chunk in crate::cacheable_chunks(rows, ORDER_ROWS_PER_STATEMENT) {
            insert_orders(tx, table, chunk.iter().map(|&i| &fx.orders[i]), upsert).await?;
        }
    }
    for chunk in crate::cacheable_chunks(&fx.trades, TRADE_ROWS_PER_STATEMENT) {
        let mut q = sqlx::QueryBuilder::<sqlx::$db>::new(
            "INSERT INTO trades (id, product_id, price, quantity, maker_order_id, maker_participant_id, \
             taker_order_id, taker_participant_id, aggressor_side, seq, time_ns) ",
        );
        q.push_values(chunk, |mut b, t| {
            b.push_bind(t.id.0 as i64)
                .push_bind(i64::from(t.product.0))
                .push_bind(t.price.0)
                .push_bind(t.quantity.0)
                .push_bind(t.maker_order.0 as i64)
                .push_bind(i64::from(t.maker_participant.0))
                .push_bind(t.taker_order.0 as i64)
                .push_bind(i64::from(t.taker_participant.0))
                .push_bind(codes::side(t.aggressor))
                .push_bind(t.seq.0 as i64)
                .push_bind(t.time.0);
        });
        q.build().execute(&mut **tx).await.map_err(err)?;
    }
    // Busts come after the inserts: a trade may be printed and busted in one batch.
    for chunk in fx.busted.chunks(ORDER_IDS_PER_STATEMENT) {
        let mut q = sqlx::QueryBuilder::<sqlx::$db>::new("UPDATE trades SET busted = ");
        q.push_bind(bool_param(true));
        q.push(" WHERE id IN (");
        let mut ids = q.separated(", ");
        for id in chunk {
            ids.push_bind(i64_of(id.0)?);
        }
        q.push(")");
        q.build().execute(&mut **tx).await.map_err(err)?;
    }
    Ok(())
}

/// Inserts order rows into `table` (upserting when asked) in one statement.
async fn insert_orders<'r>(
    tx: &mut sqlx::Transaction<'_, sqlx::$db>,
    table: &str,
    rows: impl Iterator<Item = &'r OrderRow>,
    upsert: bool,
) -> Result<(), StorageError> {
    let mut q = sqlx::QueryBuilder::<sqlx::$db>::new(format!(
        "INSERT INTO {table} (id, client_order_id, product_id, participant_id, side, order_type, \
         time_in_force, post_only, self_trade_prevention, price, stop_price, original_qty, traded_qty, \
         cancelled_qty, open_qty, notional, status, entry_seq, entry_time_ns, update_seq, update_time_ns, \
         triggered, expired) "
    ));
    let mut bad = None;
    q.push_values(rows, |mut b, r| {
        let id = i64_of(r.id.0);
        let (entry, update) = (i64_of(r.entry_seq.0), i64_of(r.update_seq.0));
        if let (Ok(id), Ok(entry), Ok(update)) = (id, entry, update) {
            b.push_bind(id)
                .push_bind(r.client_order_id.clone())
                .push_bind(i64::from(r.product.0))
                .push_bind(i64::from(r.participant.0))
                .push_bind(codes::side(r.side))
                .push_bind(codes::order_type(r.order_type))
                .push_bind(codes::time_in_force(r.time_in_force))
                .push_bind(bool_param(r.post_only))
                .push_bind(codes::stp(r.self_trade_prevention))
                .push_bind(r.price.map(|p| p.0))
                .push_bind(r.stop_price.map(|p| p.0))
                .push_bind(r.original.0)
                .push_bind(r.traded.0)
                .push_bind(r.cancelled.0)
                .push_bind(r.open.0)
                .push_bind(r.notional.to_string())
                .push_bind(r.status.as_str())
                .push_bind(entry)
                .push_bind(r.entry_time.0)
                .push_bind(update)
                .push_bind(r.update_time.0)
                .push_bind(bool_param(r.triggered))
                .push_bind(bool_param(r.expired));
        } else {
            bad = Some(r.id);
        }
    });
    if let Some(id) = bad {
        return Err(StorageError(format!("order {id} has an id or seq beyond 63 bits")));
    }
    if upsert {
        q.push(
            " ON CONFLICT (id) DO UPDATE SET price = excluded.price, stop_price = excluded.stop_price, \
             original_qty = excluded.original_qty, traded_qty = excluded.traded_qty, \
             cancelled_qty = excluded.cancelled_qty, open_qty = excluded.open_qty, notional = excluded.notional, \
             status = excluded.status, update_seq = excluded.update_seq, update_time_ns = excluded.update_time_ns, \
             triggered = excluded.triggered, expired = excluded.expired",
        );
    }
    q.build().execute(&mut **tx).await.map_err(err)?;
    Ok(())
}

    };
}
pub(crate) use order_writes;

/// Reading the order and trade rows back, shared by both backends: expanded in
/// each backend's module, which supplies `err` and `read_bool` (how a boolean
/// reads back).
macro_rules! order_rows {
    ($db:ident) => {
        /// Reads an orders row back.
        pub(crate) fn order_row(row: &<sqlx::$db as sqlx::Database>::Row) -> Result<OrderRow, StorageError> {
            let bad = |what: &str| StorageError(format!("stored order has an invalid {what}"));
            let u = |v: i64| u64::try_from(v).map_err(|_| bad("number"));
            let u32_of = |v: i64| u32::try_from(v).map_err(|_| bad("id"));
            let text = |col: &str| row.try_get::<String, _>(col).map_err(err);
            Ok(OrderRow {
                id: OrderId(u(row.try_get("id").map_err(err)?)?),
                client_order_id: row.try_get("client_order_id").map_err(err)?,
                product: ProductId(u32_of(row.try_get("product_id").map_err(err)?)?),
                participant: ParticipantId(u32_of(row.try_get("participant_id").map_err(err)?)?),
                side: codes::parse_side(&text("side")?).ok_or_else(|| bad("side"))?,
                order_type: codes::parse_order_type(&text("order_type")?).ok_or_else(|| bad("type"))?,
                time_in_force: codes::parse_time_in_force(&text("time_in_force")?)
                    .ok_or_else(|| bad("time in force"))?,
                post_only: read_bool(row, "post_only")?,
                self_trade_prevention: codes::parse_stp(&text("self_trade_prevention")?)
                    .ok_or_else(|| bad("stp"))?,
                price: row.try_get::<Option<i64>, _>("price").map_err(err)?.map(Price),
                stop_price: row.try_get::<Option<i64>, _>("stop_price").map_err(err)?.map(Price),
                original: Qty(row.try_get("original_qty").map_err(err)?),
                traded: Qty(row.try_get("traded_qty").map_err(err)?),
                cancelled: Qty(row.try_get("cancelled_qty").map_err(err)?),
                open: Qty(row.try_get("open_qty").map_err(err)?),
                notional: text("notional")?.parse().map_err(|_| bad("notional"))?,
                status: codes::parse_status(&text("status")?).ok_or_else(|| bad("status"))?,
                entry_seq: Seq(u(row.try_get("entry_seq").map_err(err)?)?),
                entry_time: Timestamp(row.try_get("entry_time_ns").map_err(err)?),
                update_seq: Seq(u(row.try_get("update_seq").map_err(err)?)?),
                update_time: Timestamp(row.try_get("update_time_ns").map_err(err)?),
                triggered: read_bool(row, "triggered")?,
                expired: read_bool(row, "expired")?,
            })
        }

        /// Reads a trades row back (with its `busted` flag).
        pub(crate) fn trade_row(
            row: &<sqlx::$db as sqlx::Database>::Row,
        ) -> Result<(TradeRow, bool), StorageError> {
            let bad = |what: &str| StorageError(format!("stored trade has an invalid {what}"));
            let u = |v: i64| u64::try_from(v).map_err(|_| bad("number"));
            let u32_of = |v: i64| u32::try_from(v).map_err(|_| bad("id"));
            let trade = TradeRow {
                id: atlas_types::TradeId(u(row.try_get("id").map_err(err)?)?),
                product: ProductId(u32_of(row.try_get("product_id").map_err(err)?)?),
                price: Price(row.try_get("price").map_err(err)?),
                quantity: Qty(row.try_get("quantity").map_err(err)?),
                maker_order: OrderId(u(row.try_get("maker_order_id").map_err(err)?)?),
                maker_participant: ParticipantId(u32_of(row.try_get("maker_participant_id").map_err(err)?)?),
                taker_order: OrderId(u(row.try_get("taker_order_id").map_err(err)?)?),
                taker_participant: ParticipantId(u32_of(row.try_get("taker_participant_id").map_err(err)?)?),
                aggressor: codes::parse_side(&row.try_get::<String, _>("aggressor_side").map_err(err)?)
                    .ok_or_else(|| bad("side"))?,
                seq: Seq(u(row.try_get("seq").map_err(err)?)?),
                time: Timestamp(row.try_get("time_ns").map_err(err)?),
            };
            Ok((trade, read_bool(row, "busted")?))
        }
    };
}
pub(crate) use order_rows;
