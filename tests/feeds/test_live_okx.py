"""OKX v5 live handler against the loopback capture server: same books as the offline replay.

``OKX.ws.1.0`` holds one connection with three ``books`` instruments (a
future, a swap, spot) whose updates carry CRC32 checksums and no ``seqId``.
Everything runs on 127.0.0.1 with an ephemeral port, at max speed, inside
``asyncio.run``; every run is bounded by the capture's end, the handler's
``duration`` and ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from shardex.feeds.live.backoff import Backoff
from shardex.feeds.live.events import BookInvalid, BookState, Trade
from shardex.feeds.live.handler import LiveConfig, LiveConfigError, OkxFeedHandler
from shardex.feeds.live.queue import ConflatingQueue
from shardex.feeds.live.server import CaptureServer, Faults
from shardex.feeds.replay import replay_files

INSTS = ("BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT")


@pytest.fixture(scope="module")
def capture(cf: Path) -> Path:
    return cf / "OKX.ws.1.0"


@pytest.fixture(scope="module")
def offline(capture: Path) -> dict[str, str]:
    """``okx:<instId>`` -> top10_sha256 of ``shardex feeds replay``."""
    out = {k: b["top10_sha256"] for k, b in replay_files([capture]).report()["books"].items()}
    assert set(out) == {f"okx:{i}" for i in INSTS} and all(out.values())
    return out


async def _drain(queue: ConflatingQueue) -> list:
    return [ev async for ev in queue]


async def _run(capture: Path, faults: Faults | None = None):
    async with CaptureServer([capture], speed=math.inf, faults=faults, idle_timeout=20) as srv:
        h = OkxFeedHandler(LiveConfig(f"{srv.ws_url}/public", "", "okx", INSTS, duration=30), backoff=Backoff(initial=0.01, cap=0.05))
        drain = asyncio.ensure_future(_drain(h.queue))
        rep = await asyncio.wait_for(h.run(), 35)
        seen = await asyncio.wait_for(drain, 10)
        await srv.wait_done(10)
        return h, rep, seen, srv


def test_okx_books_equal_offline_replay(capture: Path, offline: dict[str, str]):
    h, rep, events, srv = asyncio.run(_run(capture))
    assert rep["end"] == "server closed: end of capture"
    assert rep["reconnects"] == 0 and rep["gaps_detected"] == 0 and rep["sub_errors"] == 0
    for key, b in rep["books"].items():
        assert b["synced"] and b["gaps"] == 0 and b["checksum_mismatch"] == 0, (key, b)
        assert b["checksum_ok"] > 0
        assert b["top10_sha256"] == offline[key], key
    assert sum(isinstance(e, Trade) for e in events) == rep["trades"] > 0
    assert rep["messages"] - rep["other"] == srv.stats["sent"]


def test_okx_lost_update_checksum_gap_resubscribe_resync_book_equal(capture: Path, offline: dict[str, str]):
    h, rep, events, srv = asyncio.run(_run(capture, Faults(drop_every=40)))
    assert srv.stats["dropped_diffs"] == 287 // 40
    assert rep["end"] == "server closed: end of capture" and rep["reconnects"] == 0
    gaps = 0
    for key, b in rep["books"].items():
        assert b["synced"], (key, b["problems"])
        assert b["top10_sha256"] == offline[key], key
        assert b["gaps"] == b["resyncs"] == b["checksum_mismatch"]
        gaps += b["gaps"]
    # a lost update is caught by the next update's checksum, unless it only touched levels
    # beyond the top 25 (the checksum's reach): then the book is still exact where it is served
    assert 1 <= gaps <= srv.stats["dropped_diffs"]
    assert rep["resubscribes"] == rep["gaps_detected"] == gaps
    broken: set[str] = set()
    for e in events:
        if isinstance(e, BookInvalid):
            broken.add(e.key)
        elif isinstance(e, BookState):
            assert e.key not in broken or e.resync, e
            broken.discard(e.key)


def test_okx_config_errors():
    with pytest.raises(LiveConfigError, match="OkxFeedHandler"):
        OkxFeedHandler(LiveConfig("ws://127.0.0.1:1/v5/public/linear", "", "bybit-linear", ("BTCUSDT",)))
    with pytest.raises(LiveConfigError, match="deltas"):
        OkxFeedHandler(LiveConfig("ws://127.0.0.1:1/ws/v5/public", "", "okx", ("BTC-USDT",), deltas=True))
