"""Stock ccxt.pro (coinbaseexchange) watching Atlas's Coinbase-shaped feed:
watchOrderBook and watchTrades on /coinbase/ws while two brokers trade through
the REST surface, then the private user channel (watchOrders, watchMyTrades),
which ccxt authenticates in the subscribe message as Coinbase's feed expects;
and, with the stock `websockets` client, that a bad or stale signature is
refused and that repeated failures are throttled. Driven by crates/atlas/tests/ccxt.rs (URLs, CA file and API keys in
the environment). Exits non-zero on any failure."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import ssl
import sys
import time

import websockets

import ccxt.pro as pro


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


async def eventually(get, want, tries=100):
    """What `get()` returns once it equals `want`, polling for up to 10 s;
    otherwise its last value."""
    value = get()
    for _ in range(tries):
        if value == want:
            break
        await asyncio.sleep(0.1)
        value = get()
    return value


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
        bid = await a.create_order("ACME/USD", "limit", "buy", 5, 9.50)
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
        top = await eventually(lambda: a.orderbooks["ACME/USD"]["bids"][:1], [[9.5, 3.0]])
        check(top == [[9.5, 3.0]], f"the watched book follows the trade: {top}")

        # The user channel, signed in the subscribe message.
        watcher = asyncio.ensure_future(a.watch_orders("ACME/USD"))
        await asyncio.sleep(0.5)
        placed = await a.create_order("ACME/USD", "limit", "buy", 4, 9.00)
        seen = await asyncio.wait_for(watcher, 15)
        mine = [o for o in seen if o["id"] == placed["id"]]
        check(mine and mine[-1]["side"] == "buy" and mine[-1]["amount"] == 4.0 and mine[-1]["price"] == 9.0,
              f"watchOrders sees her new order: {[(o['id'], o['side'], o['amount'], o['price']) for o in seen]}")
        watcher = asyncio.ensure_future(a.watch_my_trades("ACME/USD"))
        await asyncio.sleep(0.5)
        await b.create_order("ACME/USD", "limit", "sell", 1, 9.00)
        fills = await asyncio.wait_for(watcher, 15)
        check(fills and fills[-1]["price"] == 9.5 and fills[-1]["amount"] == 1.0,
              f"watchMyTrades sees her fill: {[(t['price'], t['amount']) for t in fills]}")
        mine = fills[-1]
        check((mine["order"], mine["side"], mine["takerOrMaker"]) == (bid["id"], "buy", "maker"),
              f"the fill is her resting bid's, as maker: {(mine['order'], mine['side'], mine['takerOrMaker'])}"
              f" (her bid is {bid['id']})")
        watcher = asyncio.ensure_future(a.watch_orders("ACME/USD"))
        await asyncio.sleep(0.5)
        await a.cancel_order(placed["id"], "ACME/USD")
        await asyncio.wait_for(watcher, 15)
        # The update may have arrived while the watch was awaited: ccxt keeps
        # its orders either way.
        def status():
            mine = [o for o in a.orders if o["id"] == placed["id"]]
            return mine[-1]["status"] if mine else None

        last = await eventually(status, "canceled")
        check(last == "canceled", f"watchOrders follows her order to its cancel: {last}")

        # A bad signature, or a good one too old, ends the connection with a
        # reason; after repeated failures even a good one is refused for a while.
        ctx = ssl.create_default_context(cafile=os.environ["ATLAS_CA"])

        async def signed_subscribe(ts, secret):
            sig = base64.b64encode(hmac.new(base64.b64decode(secret), f"{ts}GET/users/self/verify".encode(),
                                            hashlib.sha256).digest()).decode()
            async with websockets.connect(os.environ["ATLAS_CB_WS"], ssl=ctx) as ws:
                await ws.send(json.dumps({"type": "subscribe", "channels": ["user"], "product_ids": ["ACME-USD"],
                                          "key": os.environ["KEY_A"], "passphrase": os.environ["PASS_A"],
                                          "timestamp": ts, "signature": sig}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                try:
                    await asyncio.wait_for(ws.recv(), 10)
                    closed = False
                except websockets.ConnectionClosed:
                    closed = True
                return reply, closed

        wrong = base64.b64encode(b"x" * 32).decode()
        for label, ts, secret in (("a wrong secret", int(time.time()), wrong),
                                  ("a stale timestamp", int(time.time()) - 120, os.environ["SECRET_A"])):
            reply, closed = await signed_subscribe(ts, secret)
            check(reply.get("type") == "error" and reply.get("reason") == "authentication failed",
                  f"{label} is refused: {reply}")
            check(closed, f"{label} closes the connection")
        for _ in range(8):
            reply, _ = await signed_subscribe(int(time.time()), wrong)
            if "too many" in reply.get("message", ""):
                break
        check("too many" in reply.get("message", ""), f"repeated failures are throttled: {reply}")
        reply, closed = await signed_subscribe(int(time.time()), os.environ["SECRET_A"])
        check(reply.get("type") == "error" and "too many" in reply.get("message", "") and closed,
              f"while throttled, even a good signature is refused: {reply}")
        print("ccxt watch: all checks passed")
    finally:
        await a.close()
        await b.close()


asyncio.run(main())
