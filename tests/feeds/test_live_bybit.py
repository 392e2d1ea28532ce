"""Bybit v5 live handler against the loopback capture server: same books as the offline replay.

``BYBIT.jsonl.zst`` holds two connections (linear BTC/ETH/SOL/DOGE, spot
BTC/ETH) with the same topic names; one handler per connection, keyed by
category. Everything runs on 127.0.0.1 with an ephemeral port, at max speed,
inside ``asyncio.run``; every run is bounded by the capture's end, the
handler's ``duration`` and ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from shardex.feeds.live.backoff import Backoff
from shardex.feeds.live.events import BookInvalid, BookState, MarkPrice, Trade
from shardex.feeds.live.handler import BybitFeedHandler, LiveConfig, LiveConfigError
from shardex.feeds.live.server import CaptureServer, Faults, load_capture
from shardex.feeds.replay import replay_files

from .live_helpers import drain as _drain

SYMBOLS = {"linear": ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"), "spot": ("BTCUSDT", "ETHUSDT")}
CONN = {"BYBIT.ws.2": "linear", "BYBIT.ws.3": "spot"}


@pytest.fixture(scope="module")
def capture(cf: Path) -> Path:
    return cf / "BYBIT.jsonl.zst"


@pytest.fixture(scope="module")
def offline(capture: Path) -> dict[str, str]:
    """``bybit-<category>:<SYMBOL>`` -> top10_sha256 of ``shardex feeds replay``."""
    out = {}
    for key, b in replay_files([capture]).report()["books"].items():
        _, conn, topic = key.split(":")
        out[f"bybit-{CONN[conn]}:{topic.rsplit('.', 1)[-1]}"] = b["top10_sha256"]
    assert len(out) == 6 and all(out.values())
    return out


async def _run(capture: Path, faults: Faults | None = None, categories=("linear", "spot")):
    async with CaptureServer([capture], speed=math.inf, faults=faults, idle_timeout=20) as srv:
        handlers = [
            BybitFeedHandler(
                LiveConfig(f"{srv.ws_url}/{cat}", "", f"bybit-{cat}", SYMBOLS[cat], duration=30),
                backoff=Backoff(initial=0.01, cap=0.05),
            )
            for cat in categories
        ]
        drains = [asyncio.ensure_future(_drain(h.queue)) for h in handlers]
        reps = await asyncio.wait_for(asyncio.gather(*(h.run() for h in handlers)), 35)
        seen = [await asyncio.wait_for(d, 10) for d in drains]
        await srv.wait_done(10)
        return handlers, reps, seen, srv


def test_bybit_books_equal_offline_replay(capture: Path, offline: dict[str, str]):
    handlers, reps, seen, srv = asyncio.run(_run(capture))
    for rep, events in zip(reps, seen):
        assert rep["end"] == "server closed: end of capture"
        assert rep["reconnects"] == 0 and rep["gaps_detected"] == 0 and rep["sub_errors"] == 0
        for key, b in rep["books"].items():
            assert b["synced"] and b["gaps"] == 0, (key, b)
            assert b["top10_sha256"] == offline[key], key
        assert sum(isinstance(e, Trade) for e in events) == rep["trades"] > 0
        states = [e for e in events if isinstance(e, BookState)]
        assert {e.key for e in states} == set(rep["books"])
    # both connections together handled every stream message the server sent; the rest are the
    # replies to the 18 subscribe requests (one topic each: 6 books, 6 trade and 6 ticker topics)
    assert [r["other"] for r in reps] == [12, 6]
    assert sum(r["messages"] - r["other"] for r in reps) == srv.stats["sent"]
    # linear tickers carry mark, index and funding
    assert any(isinstance(e, MarkPrice) and e.mark and e.funding_rate for e in seen[0])


def test_bybit_lost_delta_gap_resubscribe_resync_book_equal(capture: Path, offline: dict[str, str]):
    # every 150th orderbook delta of the capture is lost (14 of 2,142)
    handlers, reps, seen, srv = asyncio.run(_run(capture, Faults(drop_every=150)))
    assert srv.stats["dropped_diffs"] == 2142 // 150
    gaps = resyncs = 0
    for rep, events in zip(reps, seen):
        assert rep["end"] == "server closed: end of capture" and rep["reconnects"] == 0
        for key, b in rep["books"].items():
            assert b["synced"], (key, b["problems"])
            assert b["top10_sha256"] == offline[key], key
            assert b["gaps"] == b["resyncs"]
            gaps += b["gaps"]
            resyncs += b["resyncs"]
        # the gap is healed by resubscribing: the server's fresh snapshot, not a reconnect
        assert rep["resubscribes"] == rep["gaps_detected"]
        # no BookState of a book between its gap and its resync
        broken: set[str] = set()
        for e in events:
            if isinstance(e, BookInvalid):
                broken.add(e.key)
            elif isinstance(e, BookState):
                assert e.key not in broken or e.resync, e
                broken.discard(e.key)
    # Each lost delta is one gap detected at the next delta of that book, unless it is lost
    # while that book is already resyncing after an earlier gap: the fresh snapshot covers it,
    # and on a loaded machine the resubscribe can take long enough for that (once, 13 of 14).
    assert 0 < gaps == resyncs <= srv.stats["dropped_diffs"]
    assert gaps >= srv.stats["dropped_diffs"] - 2
    assert srv.stats["snapshots_synthesized"] >= gaps


def test_bybit_disconnect_reconnect_resubscribe_book_equal(capture: Path, offline: dict[str, str]):
    handlers, reps, seen, srv = asyncio.run(_run(capture, Faults(disconnect_after=600, max_disconnects=2, outage=5), ("linear",)))
    (rep,) = reps
    assert srv.stats["disconnects"] == 2 and rep["reconnects"] == 2 and rep["disconnects"] == 2
    for key, b in rep["books"].items():
        assert b["synced"] and b["top10_sha256"] == offline[key], key


def test_bybit_capture_server_subscribe_protocol(capture: Path):
    cap = load_capture([capture])
    assert cap.venue == "bybit" and set(cap.conn) == {"linear", "spot"}
    assert sum(cap.depth) == 2142 and sum(cap.book) == 2148

    async def go():
        from websockets.asyncio.client import connect

        async with CaptureServer(cap, speed=math.inf, idle_timeout=10) as srv:
            async with connect(f"{srv.ws_url}/spot", proxy=None) as ws:
                await ws.send(json.dumps({"op": "subscribe", "args": ["orderbook.200.ETHUSDT"], "req_id": "a"}))
                await ws.send(json.dumps({"op": "subscribe", "args": ["orderbook.200.ETHUSDT"]}))
                replies, book = [], []
                async with asyncio.timeout(10):
                    while len(book) < 5:  # bounded by the timeout and the capture
                        doc = json.loads(await ws.recv())
                        (book if "topic" in doc else replies).append(doc)
            return replies, book

    replies, book = asyncio.run(go())
    assert replies[0]["success"] is True and replies[0]["req_id"] == "a"
    assert replies[1]["success"] is False  # already subscribed
    assert book[0]["type"] == "snapshot" and all(d["type"] == "delta" for d in book[1:])
    assert all(d["topic"] == "orderbook.200.ETHUSDT" for d in book)


def test_bybit_config_errors():
    with pytest.raises(LiveConfigError, match="BybitFeedHandler"):
        BybitFeedHandler(LiveConfig("ws://127.0.0.1:1/stream", "http://127.0.0.1:1", "binance-usdm", ("BTCUSDT",)))
    with pytest.raises(LiveConfigError, match="deltas"):
        BybitFeedHandler(LiveConfig("ws://127.0.0.1:1/v5/public/linear", "", "bybit-linear", ("BTCUSDT",), deltas=True))
