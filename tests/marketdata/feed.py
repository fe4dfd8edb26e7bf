"""A market data client on Python's stock `websockets`: subscribes to level2,
matches, ticker and heartbeat for one product, rebuilds the book from the
snapshot and the l2updates (counting sequence gaps), and once the sequence
named on stdin is reached, prints the book and what it saw as one JSON line.

Usage: feed.py URL CA_FILE FLAVOR(atlas|coinbase) PRODUCT [TOKEN]

With a bearer TOKEN (sent on the upgrade request), also subscribes to the
private `user` channel and reports the order ids its messages name (and,
on Coinbase's flavor, those its `received` messages name, and the order of
its received, open, match and done messages as `log`: [type, order ids])."""
import asyncio
import json
import ssl
import sys

import websockets


async def main(url, ca, flavor, product, token=None):
    ctx = ssl.create_default_context(cafile=ca)
    ids_key = "productIds" if flavor == "atlas" else "product_ids"
    product_id = int(product) if flavor == "atlas" else product
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    channels = ["level2", "matches", "ticker", "heartbeat"] + (["user"] if token else [])
    private = {"orders": [], "fills": 0, "received": [], "log": []}
    async with websockets.connect(url, ssl=ctx, max_size=2**22, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channels": channels, ids_key: [product_id]}))
        book = {"buy": {}, "sell": {}}
        seq = None
        stats = {"matches": 0, "tickers": 0, "heartbeats": 0, "gaps": 0, "updates": 0, "subscriptions": 0,
                 "errors": []}
        loop = asyncio.get_running_loop()
        target_line = loop.run_in_executor(None, sys.stdin.readline)
        target = None
        announced = False
        while True:
            if target is None and target_line.done():
                target = int(target_line.result())
            if target is not None and seq is not None and seq >= target and stats["heartbeats"] > 0:
                break
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.2)
            except asyncio.TimeoutError:
                continue
            m = json.loads(raw)
            kind = m["type"]
            if kind == "subscriptions":
                stats["subscriptions"] += 1
            elif kind == "snapshot":
                book = {"buy": {p: s for p, s in m["bids"]}, "sell": {p: s for p, s in m["asks"]}}
                seq = m["sequence"]
                if not announced:
                    print("subscribed", flush=True)
                    announced = True
            elif kind == "l2update":
                if seq is None:
                    continue
                if m["sequence"] != seq + 1:
                    stats["gaps"] += 1
                seq = m["sequence"]
                stats["updates"] += 1
                for side, price, size in m["changes"]:
                    if size == "0":
                        book[side].pop(price, None)
                    else:
                        book[side][price] = size
            elif kind == "match" and "liquidity" in m:
                private["fills"] += 1
                private["log"].append(["match", int(m["maker_order_id"]), int(m["taker_order_id"])])
            elif kind == "match":
                stats["matches"] += 1
            elif kind == "received":
                private["received"].append(int(m["order_id"]))
                private["log"].append([kind, int(m["order_id"])])
            elif kind in ("order", "open", "done"):
                private["orders"].append(int(m.get("orderId", m.get("order_id"))))
                if kind != "order":
                    private["log"].append([kind, int(m["order_id"])])
            elif kind == "fill":
                private["fills"] += 1
            elif kind == "ticker":
                stats["tickers"] += 1
            elif kind == "heartbeat":
                stats["heartbeats"] += 1
            elif kind == "error":
                stats["errors"].append(m)
        print(json.dumps({"sequence": seq, "bids": book["buy"], "asks": book["sell"], "private": private, **stats}),
              flush=True)


asyncio.run(main(*sys.argv[1:6]))
