"""Stock ccxt (coinbaseexchange) against a running Atlas: load markets, place,
fetch and cancel orders, read the book, the tape, the ticker and the caller's
fills. Driven by crates/atlas/tests/ccxt.rs, which starts Atlas and passes the
URL, CA file and API key in the environment. Exits non-zero on any failure."""

import os
import sys

import ccxt


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def client(key, secret, passphrase):
    base = os.environ["ATLAS_CB_URL"]
    ex = ccxt.coinbaseexchange({
        "apiKey": key,
        "secret": secret,
        "password": passphrase,
        "urls": {"api": {"public": base, "private": base}},
        "enableRateLimit": False,
    })
    # ccxt passes verify=True to requests on every call (overriding
    # session.verify) from a session that ignores the environment; let the
    # session read REQUESTS_CA_BUNDLE, which the Rust driver sets to Atlas's CA.
    ex.session.trust_env = True
    check(os.environ.get("REQUESTS_CA_BUNDLE") == os.environ["ATLAS_CA"], "the CA bundle is Atlas's")
    return ex


def main():
    a = client(os.environ["KEY_A"], os.environ["SECRET_A"], os.environ["PASS_A"])
    b = client(os.environ["KEY_B"], os.environ["SECRET_B"], os.environ["PASS_B"])

    markets = a.load_markets()
    check("ACME/USD" in markets, "load_markets lists ACME/USD")
    m = markets["ACME/USD"]
    check(m["id"] == "ACME-USD" and m["active"], "the market is ACME-USD and active")
    check(abs(a.fetch_time() - a.milliseconds()) < 60_000, "fetch_time is close to ours")

    sell = a.create_order("ACME/USD", "limit", "sell", 10, 11.0, {"clientOrderId": "ccxt-sell-1"})
    check(sell["status"] == "open" and sell["amount"] == 10, "a resting limit sell is open")
    got = a.fetch_order(sell["id"])
    check(got["id"] == sell["id"] and got["clientOrderId"] == "ccxt-sell-1", "fetch_order returns it")
    by_client = a.fetch_order(None, None, {"clientOrderId": "ccxt-sell-1"})
    check(by_client["id"] == sell["id"], "fetch_order by clientOrderId")
    opened = a.fetch_open_orders("ACME/USD")
    check([o["id"] for o in opened] == [sell["id"]], "fetch_open_orders lists it")

    book = b.fetch_order_book("ACME/USD")
    check(book["asks"][0][:2] == [11.0, 10.0] and book["bids"] == [], "the book shows the offer")

    buy = b.create_order("ACME/USD", "limit", "buy", 4, 11.0)
    check(buy["status"] == "closed" and buy["filled"] == 4, "a crossing buy fills")
    check(b.fetch_order(buy["id"])["status"] == "closed", "the buy is closed")
    check(a.fetch_order(sell["id"])["filled"] == 4, "the sell is partly filled")

    trades = b.fetch_trades("ACME/USD")
    check(len(trades) == 1 and trades[0]["price"] == 11.0 and trades[0]["amount"] == 4, "fetch_trades shows the print")
    fills_a = a.fetch_my_trades("ACME/USD")
    fills_b = b.fetch_my_trades("ACME/USD")
    check(len(fills_a) == 1 and fills_a[0]["side"] == "sell" and fills_a[0]["takerOrMaker"] == "maker", "A's fill: maker sell")
    check(len(fills_b) == 1 and fills_b[0]["side"] == "buy" and fills_b[0]["takerOrMaker"] == "taker", "B's fill: taker buy")
    ticker = b.fetch_ticker("ACME/USD")
    check(ticker["last"] == 11.0 and ticker["ask"] == 11.0, "fetch_ticker: last and ask")
    # Candles come from the trades table: the one print, in its minute.
    candles = b.fetch_ohlcv("ACME/USD", "1m")
    check(
        len(candles) == 1 and candles[0][1:] == [11.0, 11.0, 11.0, 11.0, 4.0]
        and candles[0][0] % 60_000 == 0 and abs(candles[0][0] - b.milliseconds()) < 120_000,
        f"fetch_ohlcv: one 1m candle of the print, this minute: {candles}",
    )

    # Object-level authorization holds through the compatible surface too.
    try:
        b.fetch_order(sell["id"])
        check(False, "B must not see A's order")
    except ccxt.BaseError:
        check(True, "B cannot fetch A's order")
    try:
        b.cancel_order(sell["id"])
        check(False, "B must not cancel A's order")
    except ccxt.BaseError:
        check(True, "B cannot cancel A's order")

    a.cancel_order(sell["id"])
    done = a.fetch_order(sell["id"])
    check(done["status"] == "canceled" and done["filled"] == 4, "cancel_order cancels the rest")
    check(a.fetch_open_orders("ACME/USD") == [], "nothing open after the cancel")
    check(a.fetch_order_book("ACME/USD")["asks"] == [], "the book is empty")

    # (ccxt rounds prices and sizes to the market's increments itself, so a
    # refusal has to come from something it passes through.)
    try:
        a.create_order("ACME/USD", "limit", "buy", 1, 10.0, {"time_in_force": "GTT"})
        check(False, "an unsupported time in force must be refused")
    except ccxt.BaseError as e:
        check("GTT" in str(e), "a refusal reaches ccxt as an error with Atlas's message")
    print("ccxt: all checks passed")


if __name__ == "__main__":
    main()
