"""Stock ccxt.pro (coinbaseexchange) watching Atlas's Coinbase-shaped feed:
watchOrderBook and watchTrades on /coinbase/ws while two brokers trade through
the REST surface. Driven by crates/atlas/tests/ccxt.rs (URLs, CA file and API
keys in the environment). Exits non-zero on any failure."""

import asyncio
import os
import sys

import ccxt.pro as pro


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def client(suffix):
    base = os.environ["ATLAS_CB_URL"]
    return pro.coinbaseexchange({
        "apiKey": os.environ["KEY_" + suffix],
        "secret": os.environ["SECRET_" + suffix],
        "password": os.environ["PASS_" + suffix],
        "urls": {"api": {"public": base, "private": base, "ws": os.environ["ATLAS_CB_WS"]}},
        "cafile": os.environ["ATLAS_CA"],
        "enableRateLimit": False,
    })


async def main():
    a, b = client("A"), client("B")
    try:
        await a.load_markets()
        await b.load_markets()
        await a.create_order("ACME/USD", "limit", "buy", 5, 9.50)
        await b.create_order("ACME/USD", "limit", "sell", 7, 10.50)
        book = await asyncio.wait_for(a.watch_order_book("ACME/USD"), 15)
        check(book["bids"][:1] == [[9.5, 5.0]] and book["asks"][:1] == [[10.5, 7.0]],
              f"watchOrderBook shows the resting orders: {book['bids'][:1]} {book['asks'][:1]}")
        watcher = asyncio.ensure_future(a.watch_trades("ACME/USD"))
        await asyncio.sleep(0.5)
        await b.create_order("ACME/USD", "limit", "sell", 2, 9.50)
        trades = await asyncio.wait_for(watcher, 15)
        check(trades and trades[-1]["price"] == 9.5 and trades[-1]["amount"] == 2.0,
              f"watchTrades sees the trade: {[(t['price'], t['amount']) for t in trades]}")
        # The update may have arrived while watchTrades was awaited: ccxt keeps
        # applying updates to its book either way.
        for _ in range(100):
            book = a.orderbooks["ACME/USD"]
            if book["bids"][:1] == [[9.5, 3.0]]:
                break
            await asyncio.sleep(0.1)
        check(book["bids"][:1] == [[9.5, 3.0]], f"the watched book follows the trade: {book['bids'][:1]}")
        print("ccxt watch: all checks passed")
    finally:
        await a.close()
        await b.close()


asyncio.run(main())
