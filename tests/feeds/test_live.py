"""Live feed handler against the loopback capture server: same final book as the offline replay.

Everything runs on 127.0.0.1 with an ephemeral port, at max speed, inside
``asyncio.run`` (no pytest-asyncio). Every run is bounded by the capture's
end, the handler's ``duration`` and ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
from pathlib import Path

import pytest

from shardex.feeds.live.backoff import Backoff
from shardex.feeds.live.events import BookInvalid, BookState, Trade
from shardex.feeds.live.handler import BinanceFeedHandler, LiveConfig, LiveConfigError
from shardex.feeds.live.queue import ConflatingQueue
from shardex.feeds.live.server import CaptureServer, Faults, ServeError
from shardex.feeds.replay import replay_files

from .live_helpers import drain as _drain

CASES = {
    "usdm": ("usdm/btcusdt_20240718.gz", "binance-usdm", "BTCUSDT"),
    "spot": ("spot/ethusdt_20240808.gz", "binance-spot", "ETHUSDT"),
    "cm": ("cm/ethusd_perp_20240808.gz", "binance-cm", "ETHUSD_PERP"),
}

_OFFLINE: dict[str, str] = {}


def offline_sha(path: Path) -> str:
    """top10_sha256 of ``shardex feeds replay`` on one single-book file (cached per session)."""
    if str(path) not in _OFFLINE:
        (_, b), = replay_files([path]).report()["books"].items()
        _OFFLINE[str(path)] = b["top10_sha256"]
    return _OFFLINE[str(path)]


async def _run(path, venue, sym, faults=None, queue=None, consumer=None, backoff=None, **cfg):
    async with CaptureServer([path], speed=math.inf, faults=faults, idle_timeout=20) as srv:
        h = BinanceFeedHandler(
            LiveConfig(srv.ws_url, srv.rest_url, venue, (sym,), duration=45, **cfg),
            queue=queue,
            backoff=backoff or Backoff(initial=0.01, cap=0.05),
        )
        consumer = consumer or _drain
        task = asyncio.ensure_future(consumer(h.queue))
        rep = await asyncio.wait_for(h.run(), 50)
        seen = await asyncio.wait_for(task, 50)
        await srv.wait_done(10)
        return h, rep, seen, srv


def _book(rep: dict) -> dict:
    (_, b), = rep["books"].items()
    return b


@pytest.mark.parametrize("case", sorted(CASES))
def test_live_book_equals_offline_replay(hft: Path, case: str):
    rel, venue, sym = CASES[case]
    h, rep, events, srv = asyncio.run(_run(hft / rel, venue, sym))
    b = _book(rep)
    assert rep["end"] == "server closed: end of capture"
    assert b["synced"] and b["gaps"] == 0 and rep["reconnects"] == 0
    assert b["top10_sha256"] == offline_sha(hft / rel)
    assert rep["messages"] == srv.stats["sent"]
    # every trade of the capture reached the consumer
    assert sum(isinstance(e, Trade) for e in events) == rep["trades"] > 0


@pytest.mark.parametrize("case", ["usdm", "spot"])
def test_lost_messages_gap_detected_resynced_book_equal(hft: Path, case: str):
    rel, venue, sym = CASES[case]
    h, rep, events, srv = asyncio.run(_run(hft / rel, venue, sym, faults=Faults(drop_every=800)))
    b = _book(rep)
    lost = srv.stats["dropped_diffs"]
    assert lost >= 3
    # each lost diff is a gap, healed by a fresh REST snapshot (no reconnect needed)
    assert b["gaps"] == rep["gaps_detected"] == lost
    assert b["resyncs"] == lost and rep["reconnects"] == 0
    assert rep["snapshot_requests"] >= lost + 1
    assert b["synced"] and b["top10_sha256"] == offline_sha(hft / rel)
    assert any(": gap (expected pu=" in p or ": gap (expected U=" in p for p in b["problems"])
    # never served while unsynced: after an invalidation the next state is a resync
    invalid = False
    for e in events:
        if isinstance(e, BookInvalid):
            invalid = True
        elif isinstance(e, BookState):
            assert not invalid or e.resync, "book state served between a gap and its resync"
            invalid = False
    assert sum(isinstance(e, BookInvalid) for e in events) >= 1


def test_disconnect_reconnects_with_backoff_and_book_equal(hft: Path):
    rel, venue, sym = CASES["usdm"]
    h, rep, events, srv = asyncio.run(
        _run(hft / rel, venue, sym, faults=Faults(disconnect_after=3500, outage=25), backoff=Backoff(initial=0.02, cap=1))
    )
    b = _book(rep)
    assert srv.stats["disconnects"] == rep["disconnects"] == rep["reconnects"] == 3
    assert srv.stats["unsent_outage"] == 3 * 25
    # the delays reset after each session that synced: deterministic, no jitter
    assert rep["reconnect_delays"] == [0.02, 0.02, 0.02]
    assert rep["connections"] == 4 and b["synced"]
    assert b["top10_sha256"] == offline_sha(hft / rel)


def test_slow_consumer_conflates_books_and_gets_every_trade(hft: Path):
    rel, venue, sym = CASES["usdm"]
    trade_ids = [
        json.loads(line.partition(b" ")[2])["data"]["t"]
        for line in gzip.decompress((hft / rel).read_bytes()).split(b"\n")
        if b"@trade" in line[:60]
    ]

    async def slow(queue: ConflatingQueue) -> list:
        out = []
        async for ev in queue:
            out.append(ev)
            await asyncio.sleep(0.0002 if isinstance(ev, Trade) else 0.002)
        return out

    q = ConflatingQueue(maxsize=32, policy="block")
    h, rep, events, srv = asyncio.run(_run(hft / rel, venue, sym, queue=q, consumer=slow))
    states = [e for e in events if isinstance(e, BookState)]
    assert [e.trade_id for e in events if isinstance(e, Trade)] == trade_ids
    assert q.trades_dropped == 0 and q.producer_waits > 0
    assert 0 < len(states) < rep["states_published"] / 5
    assert sum(s.folded for s in states) <= rep["states_published"]
    assert max(s.folded for s in states) > 10
    # the last state the consumer saw is the final book
    assert _book(rep)["top10_sha256"] == offline_sha(hft / rel)
    assert states[-1].update_id == _book(rep)["last_update_id"]


def test_deltas_rebuild_the_published_top(hft: Path):
    """BookState + merged BookDeltas (applied when last_id > state's id) give the handler's book."""
    rel, venue, sym = CASES["usdm"]
    h, rep, events, srv = asyncio.run(_run(hft / rel, venue, sym, deltas=True, depth=5000))
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    state_id = -1
    from shardex.feeds.live.events import BookDelta

    for e in events:
        if isinstance(e, BookState):
            bids, asks, state_id = dict(e.bids), dict(e.asks), e.update_id
        elif isinstance(e, BookDelta) and e.last_id > state_id:
            for side, lv in ((bids, e.bids), (asks, e.asks)):
                for p, q in lv.items():
                    if float(q) == 0:
                        side.pop(p, None)
                    else:
                        side[p] = q
    top_b, top_a = h.book(sym).top(10)
    canon = lambda s: s.rstrip("0").rstrip(".") if "." in s else s  # noqa: E731
    best_b = sorted(((float(p), canon(p), canon(q)) for p, q in bids.items()), reverse=True)[:10]
    best_a = sorted((float(p), canon(p), canon(q)) for p, q in asks.items())[:10]
    assert [(p, q) for _, p, q in best_b] == top_b
    assert [(p, q) for _, p, q in best_a] == top_a


def test_connect_failures_back_off_deterministically_and_give_up():
    async def go():
        # a port nobody listens on: bind one, note it, close it
        srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        srv.close()
        await srv.wait_closed()
        slept: list[float] = []

        async def record(d: float) -> None:
            slept.append(d)

        cfg = LiveConfig(f"ws://127.0.0.1:{port}/stream", f"http://127.0.0.1:{port}", "binance-usdm", ("BTCUSDT",),
                         max_reconnects=4, duration=20)
        h = BinanceFeedHandler(cfg, backoff=Backoff(initial=0.1, factor=2, cap=0.5), sleep=record)
        rep = await h.run()
        return rep, slept

    rep, slept = asyncio.run(go())
    assert slept == [0.1, 0.2, 0.4, 0.5]
    assert rep["connect_failures"] == 5 and rep["end"] == "gave up after 4 reconnects"
    assert rep["books"]["binance-usdm:BTCUSDT"]["top10_sha256"] is None


def test_rest_endpoint_serves_recorded_then_synthesized_snapshots(hft: Path):
    from shardex.feeds.live._http import HttpError, http_get

    async def go():
        async with CaptureServer([hft / CASES["usdm"][0]], speed=math.inf, idle_timeout=5) as srv:
            first = await http_get(srv.rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=5")
            with pytest.raises(HttpError) as bad:
                await http_get(srv.rest_url + "/fapi/v1/depth?symbol=ETHUSDT")
            with pytest.raises(HttpError) as missing:
                await http_get(srv.rest_url + "/nothing")
            srv.cursor = len(srv.capture)  # as if the capture had played: the reference book is at its end
            last = await http_get(srv.rest_url + "/fapi/v1/depth?symbol=BTCUSDT&limit=10")
            return first, bad.value.status, missing.value.status, last, srv.stats

    first, bad, missing, last, stats = asyncio.run(go())
    recorded = [l for l in gzip.decompress((hft / CASES["usdm"][0]).read_bytes()).split(b"\n") if b'{"lastUpdateId"' in l[:40]]
    assert first == recorded[0].partition(b" ")[2]  # the collector's own snapshot, byte for byte
    assert (bad, missing) == (400, 404)
    doc = json.loads(last)
    assert len(doc["bids"]) == len(doc["asks"]) == 10
    assert doc["bids"][0][0].endswith(tuple("0123456789")) and len(doc["bids"][0][0].partition(".")[2]) == 2  # venue decimals kept
    assert stats["snapshots_recorded"] == 1 and stats["snapshots_synthesized"] == 1


def test_server_binds_loopback_only_and_stops_when_idle(hft: Path):
    with pytest.raises(ServeError, match="loopback"):
        CaptureServer([hft / CASES["usdm"][0]], host="0.0.0.0")

    async def go():
        async with CaptureServer([hft / CASES["usdm"][0]], speed=math.inf, idle_timeout=0.2) as srv:
            await srv.wait_done(5)
            return srv.end_reason

    assert asyncio.run(go()).startswith("no client for")


def test_config_errors_name_the_setting():
    with pytest.raises(LiveConfigError, match="venue"):
        LiveConfig("ws://127.0.0.1:1/stream", "http://127.0.0.1:1", "binance-options", ("BTCUSDT",))
    with pytest.raises(LiveConfigError, match="ws_url"):
        LiveConfig("http://127.0.0.1:1/stream", "http://127.0.0.1:1", "binance-usdm", ("BTCUSDT",))


def test_cryptofeed_capture_four_symbols_on_one_connection(cf: Path):
    """cryptofeed's BINANCE_FUTURES.ws.1.0 (4 perps, snapshots from .http.0.0): one handler, four books."""
    f = cf / "BINANCE_FUTURES.ws.1.0"

    async def go():
        async with CaptureServer([f], speed=math.inf, idle_timeout=10) as srv:
            syms = tuple(sorted({s.upper() for s in srv.capture.symbol}))
            h = BinanceFeedHandler(LiveConfig(srv.ws_url, srv.rest_url, "binance-usdm", syms, depth_stream="depth@100ms",
                                              channels=("aggTrade", "bookTicker"), duration=30))
            task = asyncio.ensure_future(_drain(h.queue))
            rep = await asyncio.wait_for(h.run(), 40)
            events = await task
            return rep, events

    rep, events = asyncio.run(go())
    live = {k.split(":")[1]: b["top10_sha256"] for k, b in rep["books"].items()}
    offline = {k.split(":")[1]: b["top10_sha256"] for k, b in replay_files([f]).report()["books"].items()}
    assert len(live) == 4 and None not in live.values() and live == offline
    assert sum(isinstance(e, Trade) for e in events) == rep["trades"] == 91
