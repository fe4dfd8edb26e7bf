//! The journal codec round-trips every entry exactly, and batches detect damage.

use atlas_engine::{Amend, CommandKind, NewOrder, OrderType, ProductSpec, SelfTradePrevention, TimeInForce};
use atlas_journal::{Actor, Batch, ChainHash, Entry, JournalError, codec, valid_client_order_id};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Seq, Side, Timestamp, TradeId};
use proptest::prelude::*;

fn command() -> impl Strategy<Value = CommandKind> {
    let id = any::<u64>().prop_map(OrderId);
    let participant = any::<u32>().prop_map(ParticipantId);
    let product = any::<u32>().prop_map(ProductId);
    let opt_i64 = prop::option::of(any::<i64>());
    prop_oneof![
        (
            id.clone(),
            participant.clone(),
            product.clone(),
            any::<bool>(),
            0usize..4,
            0usize..4,
            any::<i64>(),
            opt_i64.clone(),
            opt_i64.clone(),
            any::<bool>(),
            0usize..5
        )
            .prop_map(|(order_id, participant, product, buy, t, tif, q, p, s, post_only, stp)| {
                CommandKind::NewOrder(NewOrder {
                    order_id,
                    participant,
                    product,
                    side: if buy { Side::Buy } else { Side::Sell },
                    order_type: [OrderType::Limit, OrderType::Market, OrderType::Stop, OrderType::StopLimit]
                        [t],
                    time_in_force: [TimeInForce::Gtc, TimeInForce::Day, TimeInForce::Ioc, TimeInForce::Fok]
                        [tif],
                    quantity: Qty(q),
                    price: p.map(Price),
                    stop_price: s.map(Price),
                    post_only,
                    self_trade_prevention: [
                        SelfTradePrevention::None,
                        SelfTradePrevention::CancelNewest,
                        SelfTradePrevention::CancelOldest,
                        SelfTradePrevention::CancelBoth,
                        SelfTradePrevention::Decrement,
                    ][stp],
                })
            }),
        (id.clone(), prop::option::of(participant.clone()))
            .prop_map(|(order_id, participant)| CommandKind::Cancel { order_id, participant }),
        (id, prop::option::of(participant.clone()), opt_i64.clone(), opt_i64.clone(), opt_i64).prop_map(
            |(order_id, participant, q, p, s)| CommandKind::Amend(Amend {
                order_id,
                participant,
                quantity: q.map(Qty),
                price: p.map(Price),
                stop_price: s.map(Price),
            })
        ),
        (participant, prop::option::of(product.clone()))
            .prop_map(|(participant, product)| CommandKind::MassCancel { participant, product }),
        product.clone().prop_map(|product| CommandKind::Halt { product }),
        product.clone().prop_map(|product| CommandKind::Resume { product }),
        prop::option::of(product.clone()).prop_map(|product| CommandKind::EndOfDay { product }),
        (product.clone(), any::<i64>(), any::<i64>())
            .prop_map(|(id, t, l)| CommandKind::AddProduct(ProductSpec { id, tick: Price(t), lot: Qty(l) })),
        product.prop_map(|product| CommandKind::RemoveProduct { product }),
        any::<u64>().prop_map(|t| CommandKind::BustTrade { trade: TradeId(t) }),
    ]
}

fn entry(seq: u64) -> impl Strategy<Value = Entry> {
    (any::<i64>(), any::<u64>(), prop::option::of(any::<u32>()), prop::option::of("[!-~]{1,64}"), command())
        .prop_map(move |(time, user, participant, client_order_id, command)| Entry {
            seq: Seq(seq),
            time: Timestamp(time),
            actor: Actor { user, participant: participant.map(ParticipantId) },
            client_order_id,
            command,
        })
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    (1u64..1_000_000, 1usize..40)
        .prop_flat_map(|(first, n)| (0..n as u64).map(|i| entry(first + i)).collect::<Vec<_>>())
}

proptest! {
    #[test]
    fn entries_round_trip_exactly(e in entry(7)) {
        let mut bytes = Vec::new();
        codec::encode(&e, &mut bytes);
        let back = codec::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &e);
        let mut again = Vec::new();
        codec::encode(&back, &mut again);
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = codec::decode(&bytes);
    }

    #[test]
    fn batches_round_trip_and_chain(es in entries()) {
        let b = Batch::encode(&es, ChainHash::GENESIS);
        prop_assert_eq!(b.decode().unwrap(), es.clone());
        // The chain continues across batches: splitting changes nothing.
        let mid = es.len() / 2;
        if mid > 0 {
            let first = Batch::encode(&es[..mid], ChainHash::GENESIS);
            let second = Batch::encode(&es[mid..], first.hash);
            prop_assert_eq!(second.hash, b.hash);
            // And two batches extended into one are that one, byte for byte.
            let mut joined = first;
            joined.extend(second);
            prop_assert_eq!(joined, b);
        }
    }

    #[test]
    fn any_damage_to_a_batch_is_detected(es in entries(), at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let b = Batch::encode(&es, ChainHash::GENESIS);
        let mut damaged = b.clone();
        let i = at.index(damaged.blob.len());
        damaged.blob[i] ^= mask;
        prop_assert!(damaged.decode().is_err(), "flipping byte {} went unnoticed", i);
        let mut truncated = b.clone();
        truncated.blob.truncate(i);
        prop_assert!(truncated.decode().is_err());
        let mut wrong_prev = b;
        wrong_prev.prev_hash.0[0] ^= 1;
        prop_assert_eq!(wrong_prev.decode().err(), Some(JournalError::ChainBroken(es[es.len() - 1].seq.0)));
    }
}

#[test]
fn decode_refuses_what_encode_never_writes() {
    let e = Entry {
        seq: Seq(1),
        time: Timestamp(5),
        actor: Actor::SYSTEM,
        client_order_id: Some("abc".into()),
        command: CommandKind::Halt { product: ProductId(3) },
    };
    let mut good = Vec::new();
    codec::encode(&e, &mut good);
    let mut bad_version = good.clone();
    bad_version[0] = 9;
    assert_eq!(codec::decode(&bad_version), Err(codec::DecodeError::Version(9)));
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(codec::decode(&trailing), Err(codec::DecodeError::Trailing));
    assert_eq!(codec::decode(&good[..good.len() - 1]), Err(codec::DecodeError::Truncated));
}

#[test]
fn client_order_ids() {
    assert!(valid_client_order_id("order-42_A"));
    assert!(!valid_client_order_id(""));
    assert!(!valid_client_order_id("has space"));
    assert!(!valid_client_order_id("é"));
    assert!(!valid_client_order_id(&"x".repeat(65)));
    assert!(valid_client_order_id(&"x".repeat(64)));
}
