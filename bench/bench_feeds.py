#!/usr/bin/env python3
"""Binance depth books: shardex against its peers on the same captures, in the same run.

Run ``bash bench/setup_feeds_peers.sh`` once (it builds bench/.venvs/feeds,
Python >= 3.12, with order-book 1.0.2, cryptofeed 2.5.0, ccxt 4.5.90 and
NautilusTrader 1.231.0), then ``python bench/bench_feeds.py``.

For each file set the script

* times shardex end to end (``shardex.feeds.bench``: parse, sync rule, apply,
  bookTicker cross-check, best bid/ask read after every book message, over
  every line of the files), median of ``--repeat`` runs;
* times each peer in a subprocess of the peers' venv on the depth diffs and
  the REST snapshot of the same files (the peers do not cross-check
  bookTicker, so they do less work), each with its own Binance sync:
  - ``order-book``: the C ``OrderBook`` with sync code written here (the
    venue rule, ``json.loads`` + ``Decimal``),
  - ``cryptofeed``: ``BinanceFutures``/``BinanceDelivery``/``Binance``
    ``message_handler`` (its own parse and ``_check_update_id``), with the
    REST snapshot call answered from the capture,
  - ``ccxt``: ccxt.pro binance ``handle_order_book`` and
    ``fetch_order_book_snapshot`` (its own sync) on its ``OrderBook``, REST
    answered from the capture,
  - ``nautilus``: NautilusTrader's Binance schemas (msgspec) ->
    ``OrderBookDeltas`` -> ``OrderBook.apply_deltas``, with its buffer-then-
    snapshot step (it has no continuity check),
  - ``msgspec``: decode each depth message into typed structs, nothing else
    (the parse-only ceiling);
* compares every peer's final top-10 book with shardex's;
* drops one diff after sync and reports which peers notice;
* runs two feeds on two threads against one after the other (shardex).

Messages/s counts book messages (depth diffs + snapshots), the issue's unit.
Reading and decompressing files is not timed for anyone.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = Path(os.environ.get("SHARDEX_DATA", ROOT.parent / "shared" / "data")) / "hftbacktest" / "examples"
PEER_PY = HERE / ".venvs" / "feeds" / "bin" / "python"
PEERS = ("order-book", "cryptofeed", "ccxt", "nautilus", "msgspec")

SETS = {
    "usdm BTCUSDT 2024-08-08": ["usdm/btcusdt_20240808.gz"],
    "cm BTCUSD_PERP 2024-08-08+09": ["cm/btcusd_perp_20240808.gz", "cm/btcusd_perp_20240809.gz"],
    "spot BTCUSDT 2024-08-08+09": ["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"],
}


# ----------------------------------------------------------------------------------- shared
def canonical(x) -> str:
    """Canonical decimal string (no exponent, no trailing zeros or dot)."""
    d = Decimal(str(x)) if not isinstance(x, Decimal) else x
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


def book_lines(paths: list[Path], drop_diff: int | None = None) -> tuple[list[tuple[str, bytes]], str, str]:
    """(kind, json bytes) of the depth diffs and snapshots of the files, in order; kind 'diff' or 'snap'.

    ``drop_diff``: leave out the diff with this index counted from the first diff
    after the first snapshot (a hole in a synced stream).
    """
    out: list[tuple[str, bytes]] = []
    symbol = venue = ""
    seen_snap = False
    n_after = 0
    for p in paths:
        for line in gzip.decompress(p.read_bytes()).split(b"\n"):
            if not line:
                continue
            body = line.partition(b" ")[2]
            if body.startswith(b'{"lastUpdateId"'):
                out.append(("snap", body))
                seen_snap = True
            elif b"depthUpdate" in body[:120]:
                if not symbol:
                    symbol = body[11 : body.index(b"@")].decode().upper()
                    venue = "spot" if b'"pu":' not in body else ("coinm" if "_" in symbol else "usdm")
                if seen_snap:
                    n_after += 1
                    if drop_diff is not None and n_after == drop_diff:
                        continue
                out.append(("diff", body))
    return out, symbol, venue


def top10_from(bids, asks) -> dict:
    """Canonical top 10 of (price, size) iterables given best first."""
    return {
        "bids": [[canonical(p), canonical(q)] for p, q in list(bids)[:10]],
        "asks": [[canonical(p), canonical(q)] for p, q in list(asks)[:10]],
    }


def now() -> tuple[float, float]:
    """(wall, process CPU) clocks: CPU time is what a shared 2-core box cannot steal."""
    return time.perf_counter(), time.process_time()


def since(t0: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since ``t0``."""
    return time.perf_counter() - t0[0], time.process_time() - t0[1]


# ------------------------------------------------------------------------------------ peers
def peer_order_book(lines, symbol, venue):
    """order-book's C OrderBook with the venue's sync rule written here (json.loads + Decimal)."""
    from order_book import OrderBook

    futures = venue != "spot"
    state = {"ob": None, "L": None, "last": None, "pending": [], "synced": False, "gaps": 0, "reads": 0}

    def apply(ob, d):
        for side, key in ((ob.bids, "b"), (ob.asks, "a")):
            for p, q in d[key]:
                px = Decimal(p)
                if Decimal(q) == 0:
                    if px in side:
                        del side[px]
                else:
                    side[px] = Decimal(q)

    def on_diff(d):
        if state["ob"] is None:
            state["pending"].append(d)
            return
        U, u = d["U"], d["u"]
        if not state["synced"]:
            L = state["L"]
            if (futures and u < L) or (not futures and u <= L):
                return
            if (futures and U <= L) or (not futures and U <= L + 1):
                apply(state["ob"], d)
                state["synced"], state["last"] = True, u
                return
            state["ob"] = None  # snapshot too old
            state["pending"].append(d)
            return
        ok = d["pu"] == state["last"] if futures else U == state["last"] + 1
        if not ok:
            state["gaps"] += 1
            state["ob"], state["synced"] = None, False
            state["pending"] = [d]
            return
        apply(state["ob"], d)
        state["last"] = u

    t = now()
    for kind, body in lines:
        d = json.loads(body)
        if kind == "snap":
            if state["synced"]:
                continue
            ob = OrderBook()
            for p, q in d["bids"]:
                ob.bids[Decimal(p)] = Decimal(q)
            for p, q in d["asks"]:
                ob.asks[Decimal(p)] = Decimal(q)
            state["ob"], state["L"], state["synced"] = ob, d["lastUpdateId"], False
            pend, state["pending"] = state["pending"], []
            for x in pend:
                on_diff(x)
        else:
            on_diff(d["data"])
        if state["synced"]:
            ob = state["ob"]
            if len(ob.bids) and len(ob.asks):
                ob.bids.index(0), ob.asks.index(0)
                state["reads"] += 1
    secs = since(t)
    top = None
    if state["synced"]:
        ob = state["ob"]
        top = top10_from((ob.bids.index(i) for i in range(min(10, len(ob.bids)))), (ob.asks.index(i) for i in range(min(10, len(ob.asks)))))
    return secs, top, state["gaps"] > 0


def peer_cryptofeed(lines, symbol, venue):
    """cryptofeed's own Binance message_handler and _check_update_id; REST answered from the capture."""
    import asyncio
    import logging

    from cryptofeed.defines import L2_BOOK
    from cryptofeed.exchanges import Binance, BinanceDelivery, BinanceFutures
    from cryptofeed.symbols import Symbols
    from cryptofeed.types import OrderBook

    logging.getLogger("feedhandler").setLevel(logging.CRITICAL)
    cls = {"spot": Binance, "usdm": BinanceFutures, "coinm": BinanceDelivery}[venue]
    std = {"spot": "BTC-USDT", "usdm": "BTC-USDT-PERP", "coinm": "BTC-USD-PERP"}[venue]
    if symbol.startswith("ETH"):
        std = "ETH" + std[3:]
    Symbols.set(cls.id, {std: symbol}, {"instrument_type": {std: "spot" if venue == "spot" else "perpetual"}})
    feed = cls(symbols=[std], channels=[L2_BOOK])
    snaps = [json.loads(b, parse_float=Decimal) for k, b in lines if k == "snap"]
    resets = {"n": 0}
    orig_reset = feed._reset

    def counting_reset():
        resets["n"] += 1
        orig_reset()

    feed._reset = counting_reset

    async def snapshot(pair):  # the REST call, answered with the capture's snapshot
        resp = snaps[0]
        feed.last_update_id[std] = resp["lastUpdateId"]
        feed._l2_book[std] = OrderBook(feed.id, std, max_depth=feed.max_depth, bids={Decimal(u[0]): Decimal(u[1]) for u in resp["bids"]},
                                       asks={Decimal(u[0]): Decimal(u[1]) for u in resp["asks"]})

    feed._snapshot = snapshot
    diffs = [b.decode() for k, b in lines if k == "diff"]

    async def run():
        reads = 0
        t = now()
        for body in diffs:
            await feed.message_handler(body, None, 0.0)
            book = feed._l2_book.get(std)
            if book is not None and len(book.book.bids) and len(book.book.asks):
                book.book.bids.index(0), book.book.asks.index(0)
                reads += 1
        return since(t)

    secs = asyncio.run(run())
    book = feed._l2_book.get(std)
    top = None
    if book is not None:
        b, a = book.book.bids, book.book.asks
        top = top10_from((b.index(i) for i in range(min(10, len(b)))), (a.index(i) for i in range(min(10, len(a)))))
    return secs, top, resets["n"] > 1  # _reset runs once at start-up


def peer_ccxt(lines, symbol, venue):
    """ccxt.pro binance: handle_order_book + fetch_order_book_snapshot (its own sync) on its OrderBook."""
    import asyncio

    import ccxt.pro as ccxtpro

    ex = {"spot": ccxtpro.binance, "usdm": ccxtpro.binanceusdm, "coinm": ccxtpro.binancecoinm}[venue]()

    class Client:
        url = {"spot": "wss://stream.binance.com:9443/ws", "usdm": "wss://fstream.binance.com/ws", "coinm": "wss://dstream.binance.com/ws"}[venue]
        subscriptions: dict = {}
        rejected = 0

        def resolve(self, *a):
            pass

        def reject(self, *a):
            Client.rejected += 1

    client = Client()
    mtype = "spot" if venue == "spot" else ("swap")
    market = ex.safe_market(symbol, None, None, mtype)
    sym = market["symbol"]
    snaps = [json.loads(b) for k, b in lines if k == "snap"]

    async def fetch_rest(symbol_, limit=None, params={}):
        raw = snaps[0]
        ob = ex.parse_order_book(raw, symbol_, None, "bids", "asks")
        ob["nonce"] = raw["lastUpdateId"]
        return ob

    ex.fetch_rest_order_book_safe = fetch_rest
    sub = {"symbol": sym, "type": {"spot": "spot", "usdm": "linear", "coinm": "inverse"}[venue], "limit": 1000, "params": {}}

    def new_book():
        ob = ex.order_book({}, 1000)
        ob["nonce"] = None
        ob.cache = []
        ex.orderbooks[sym] = ob

    new_book()
    loop = asyncio.new_event_loop()
    t = now()
    for kind, body in lines:
        if kind == "snap":
            if sym in ex.orderbooks and ex.orderbooks[sym]["nonce"] is None:
                loop.run_until_complete(ex.fetch_order_book_snapshot(client, None, sub))
            continue
        ex.handle_order_book(client, json.loads(body)["data"])
        ob = ex.orderbooks.get(sym)
        if ob is not None and len(ob["bids"]) and len(ob["asks"]):
            ob["bids"][0], ob["asks"][0]
    secs = since(t)
    ob = ex.orderbooks.get(sym)
    top = None
    if ob is not None and ob["nonce"] is not None:
        top = top10_from(((Decimal(repr(p)), Decimal(repr(q))) for p, q in list(ob["bids"])[:10]),
                         ((Decimal(repr(p)), Decimal(repr(q))) for p, q in list(ob["asks"])[:10]))
    return secs, top, Client.rejected > 0


def peer_nautilus(lines, symbol, venue):
    """NautilusTrader's Binance path: its msgspec schemas -> OrderBookDeltas -> OrderBook (buffer, snapshot, replay)."""
    import msgspec
    from nautilus_trader.adapters.binance.common.schemas.market import BinanceDepth, BinanceOrderBookMsg
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.enums import BookType
    from nautilus_trader.model.identifiers import InstrumentId

    iid = InstrumentId.from_str(f"{symbol}{'' if venue == 'spot' else '-PERP'}.BINANCE")
    dec_msg = msgspec.json.Decoder(BinanceOrderBookMsg)
    dec_snap = msgspec.json.Decoder(BinanceDepth)
    book = OrderBook(iid, BookType.L2_MBP)
    buffer: list | None = []
    t = now()
    for kind, body in lines:
        if kind == "snap":
            if buffer is None:
                continue
            snap = dec_snap.decode(body).parse_to_order_book_snapshot(iid, 0)
            book.apply_deltas(snap)
            for deltas in buffer:
                if deltas.sequence <= snap.sequence:
                    continue
                book.apply_deltas(deltas)
            buffer = None
            continue
        deltas = dec_msg.decode(body).data.parse_to_order_book_deltas(iid, 0)
        if buffer is not None:
            buffer.append(deltas)
            continue
        book.apply_deltas(deltas)
        book.best_bid_price(), book.best_ask_price()
    secs = since(t)
    top = top10_from(((Decimal(str(lv.price)), Decimal(str(lv.size()))) for lv in book.bids()[:10]),
                     ((Decimal(str(lv.price)), Decimal(str(lv.size()))) for lv in book.asks()[:10]))
    return secs, top, False  # no continuity check exists on this path


def _msgspec_types():
    import msgspec

    data = msgspec.defstruct("Data", [("U", int), ("u", int), ("b", list), ("a", list), ("pu", int, -1)])
    msg = msgspec.defstruct("Msg", [("stream", str), ("data", data)])
    snap = msgspec.defstruct("Snap", [("lastUpdateId", int), ("bids", list), ("asks", list)])
    return msgspec.json.Decoder(msg), msgspec.json.Decoder(snap)


def peer_msgspec(lines, symbol, venue):
    """Parse-only ceiling: msgspec decodes each message into typed structs (levels as lists); no book."""
    dm, ds = _msgspec_types()
    t = now()
    for kind, body in lines:
        (ds if kind == "snap" else dm).decode(body)
    return since(t), None, False


def peer_main(argv: list[str]) -> None:
    """Subprocess entry: ``--peer NAME --repeat N [--drop K] FILES...``; prints one JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--drop", type=int, default=None)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    lines, symbol, venue = book_lines([Path(f) for f in a.files], a.drop)
    fn = {"order-book": peer_order_book, "cryptofeed": peer_cryptofeed, "ccxt": peer_ccxt, "nautilus": peer_nautilus, "msgspec": peer_msgspec}[a.peer]
    runs, top, detected = [], None, False
    for _ in range(a.repeat):
        secs, top, detected = fn(lines, symbol, venue)
        runs.append(secs)
    print(json.dumps({"messages": len(lines), "seconds": statistics.median(r[0] for r in runs),
                      "cpu_seconds": statistics.median(r[1] for r in runs), "top10": top, "detected_gap": detected}))


# ------------------------------------------------------------------------------------ driver
def run_peer(name: str, files: list[Path], repeat: int, drop: int | None = None) -> dict:
    cmd = [str(PEER_PY), __file__, "--peer-mode", "--peer", name, "--repeat", str(repeat)]
    if drop is not None:
        cmd += ["--drop", str(drop)]
    cmd += [str(f) for f in files]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def shardex_top10(r) -> dict | None:
    (book,) = r.books.values()
    if not book.synced:
        return None
    b, a = book.top(10)
    return {"bids": [list(x) for x in b], "asks": [list(x) for x in a]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated names of file sets")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from shardex.feeds.bench import bench_feeds, bench_threads, load, run_once, warm_up

    peers = [p for p in a.peers.split(",") if p]
    if not PEER_PY.exists():
        print(f"peers venv missing ({PEER_PY}); run bash bench/setup_feeds_peers.sh — shardex only", file=sys.stderr)
        peers = []
    compile_s = warm_up()
    report = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d"), "compile_seconds_this_process": compile_s, "sets": {}}
    for name in [s for s in a.sets.split(",") if s]:
        files = [DATA / f for f in SETS[name]]
        sx = bench_feeds(files, repeat=a.repeat)
        r = run_once(load(files))
        top = shardex_top10(r)
        row = {"shardex": {"messages": sx["book_messages"], "seconds": sx["seconds"], "cpu_seconds": sx["cpu_seconds"],
                           "msgs_per_s": sx["messages_per_second"], "msgs_per_cpu_s": sx["book_messages"] / sx["cpu_seconds"]}}
        for p in peers:
            res = run_peer(p, files, max(1, a.repeat // 2) if p in ("cryptofeed", "ccxt", "nautilus") else a.repeat)
            if "error" in res:
                row[p] = res
                continue
            row[p] = {"messages": res["messages"], "seconds": res["seconds"], "cpu_seconds": res["cpu_seconds"],
                      "msgs_per_s": res["messages"] / res["seconds"], "msgs_per_cpu_s": res["messages"] / res["cpu_seconds"]}
            if res["top10"] is not None:
                row[p]["same_final_book"] = res["top10"] == top
            else:
                row[p]["same_final_book"] = None if p == "msgspec" else False
            row[p]["ratio_wall"] = row["shardex"]["msgs_per_s"] / row[p]["msgs_per_s"]
            row[p]["ratio_cpu"] = row["shardex"]["msgs_per_cpu_s"] / row[p]["msgs_per_cpu_s"]
        # which peers notice a dropped diff (shardex: gaps counter, book unsynced)
        det = {}
        for p in peers:
            if p == "msgspec":
                continue
            res = run_peer(p, files, 1, drop=50)
            det[p] = res.get("detected_gap", res.get("error"))
        row["dropped_diff_detected"] = det
        report["sets"][name] = row
        if not a.json:
            print(f"\n== {name}", flush=True)
            for k, v in row.items():
                if k == "dropped_diff_detected":
                    print(f"  dropped diff detected: {v}")
                elif "error" in v:
                    print(f"  {k:<11} error: {v['error']}")
                else:
                    extra = (f"  shardex/peer x{v['ratio_cpu']:.2f} cpu, x{v['ratio_wall']:.2f} wall  same book: {v.get('same_final_book')}"
                             if k != "shardex" else "")
                    print(f"  {k:<11} {v['messages']:>7} msgs  wall {v['seconds']:.4f} s {v['msgs_per_s']:>10,.0f}/s  "
                          f"cpu {v['cpu_seconds']:.4f} s {v['msgs_per_cpu_s']:>10,.0f}/s{extra}", flush=True)
    th = bench_threads([[DATA / "usdm/btcusdt_20240808.gz"], [DATA / "usdm/ethusdt_20240808.gz"]], repeat=max(9, a.repeat))
    report["two_threads"] = th
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"\ntwo feeds (usdm BTCUSDT, ETHUSDT): one after the other {th['sequential_seconds']:.4f} s, on two threads "
              f"{th['parallel_seconds']:.4f} s: x{th['scaling']:.2f} (medians), x{th['scaling_best']:.2f} (best runs); "
              f"{th['cores_busy']:.2f} cores busy while the two threads ran")
        print(f"machine: {report['machine']}; {report['date']}; kernel compile/load in this process {compile_s:.2f} s")


if __name__ == "__main__":
    if "--peer-mode" in sys.argv:
        sys.argv.remove("--peer-mode")
        peer_main(sys.argv[1:])
    else:
        main()
