"""Deribit live handler against the loopback capture server: same books as the offline replay.

``DERIBIT.ws.1.0`` holds one JSON-RPC connection with ten option books
(``book.<instrument>.raw``: a snapshot, then changes chained by
``prev_change_id``) and their tickers. Everything runs on 127.0.0.1 with an
ephemeral port, at max speed, inside ``asyncio.run``; every run is bounded by
the capture's end, the handler's ``duration`` and ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from shardex.feeds.live.backoff import Backoff
from shardex.feeds.live.events import BestBidAsk, BookInvalid, BookState, MarkPrice
from shardex.feeds.live.handler import DeribitFeedHandler, LiveConfig, LiveConfigError
from shardex.feeds.live.queue import ConflatingQueue
from shardex.feeds.live.server import CaptureServer, Faults
from shardex.feeds.replay import replay_files

INSTS = (
    "BTC-24SEP21-8000-P", "BTC-30JUL21-24000-P", "ETH-30JUL21-2800-C", "BTC-31DEC21-34000-P", "BTC-24SEP21-34000-P",
    "BTC-24JUN22-15000-C", "BTC-31DEC21-300000-C", "ETH-27AUG21-4000-P", "BTC-25MAR22-30000-C", "ETH-23JUL21-2300-C",
)


@pytest.fixture(scope="module")
def capture(cf: Path) -> Path:
    return cf / "DERIBIT.ws.1.0"


@pytest.fixture(scope="module")
def offline(capture: Path) -> dict[str, str]:
    """``deribit:<instrument>`` -> top10_sha256 of ``shardex feeds replay``."""
    out = {k: b["top10_sha256"] for k, b in replay_files([capture]).report()["books"].items()}
    assert set(out) == {f"deribit:{i}" for i in INSTS} and all(out.values())
    return out


async def _drain(queue: ConflatingQueue) -> list:
    return [ev async for ev in queue]


async def _run(capture: Path, faults: Faults | None = None):
    async with CaptureServer([capture], speed=math.inf, faults=faults, idle_timeout=20) as srv:
        assert srv.ws_url.startswith("ws://127.0.0.1:") and srv.ws_url.endswith("/ws/api/v2")
        cfg = LiveConfig(srv.ws_url, "", "deribit", INSTS, duration=30)
        h = DeribitFeedHandler(cfg, backoff=Backoff(initial=0.01, cap=0.05))
        drain = asyncio.ensure_future(_drain(h.queue))
        rep = await asyncio.wait_for(h.run(), 35)
        seen = await asyncio.wait_for(drain, 10)
        await srv.wait_done(10)
        return h, rep, seen, srv


def test_deribit_books_equal_offline_replay(capture: Path, offline: dict[str, str]):
    h, rep, events, srv = asyncio.run(_run(capture))
    assert rep["end"] == "server closed: end of capture"
    assert rep["reconnects"] == 0 and rep["gaps_detected"] == 0 and rep["sub_errors"] == 0
    for key, b in rep["books"].items():
        assert b["synced"] and b["gaps"] == 0, (key, b)
        assert b["top10_sha256"] == offline[key], key
    assert rep["messages"] - rep["other"] == srv.stats["sent"]
    # the tickers (subscribed as ticker.<instrument>.100ms, served from the capture's .raw) give BBO and mark/index
    assert rep["tickers"] > 0 and rep["marks"] == rep["tickers"]
    marks = [e for e in events if isinstance(e, MarkPrice)]
    assert marks and all(m.mark and m.index for m in marks)
    assert any(isinstance(e, BestBidAsk) for e in events)
    # every served book state is the key's; the last one of the busiest book is its final book
    last = [e for e in events if isinstance(e, BookState) and e.key == "deribit:BTC-24SEP21-8000-P"][-1]
    assert last.update_id == rep["books"]["deribit:BTC-24SEP21-8000-P"]["last_update_id"]


def test_deribit_lost_change_gap_resubscribe_resync_book_equal(capture: Path, offline: dict[str, str]):
    h, rep, events, srv = asyncio.run(_run(capture, Faults(drop=frozenset({22, 33}))))
    assert srv.stats["dropped_diffs"] == 2
    assert rep["end"] == "server closed: end of capture" and rep["reconnects"] == 0
    gaps = 0
    for key, b in rep["books"].items():
        assert b["synced"], (key, b["problems"])
        assert b["top10_sha256"] == offline[key], key
        assert b["gaps"] == b["resyncs"]
        gaps += b["gaps"]
    # prev_change_id catches a lost change at the book's next change; a change lost while a
    # resubscribe is in flight is already inside the fresh snapshot (the venue sent it): no gap for it
    assert 1 <= gaps <= 2
    assert rep["resubscribes"] == rep["gaps_detected"] == gaps and rep["sub_errors"] == 0
    assert srv.stats["snapshots_synthesized"] >= gaps
    broken: set[str] = set()
    invalid = 0
    for e in events:
        if isinstance(e, BookInvalid):
            broken.add(e.key)
            invalid += 1
        elif isinstance(e, BookState):
            assert e.key not in broken or e.resync, e
            broken.discard(e.key)
    assert invalid >= 1 and not broken


def test_deribit_config_errors():
    with pytest.raises(LiveConfigError, match="DeribitFeedHandler"):
        DeribitFeedHandler(LiveConfig("ws://127.0.0.1:1/ws/v5/public", "", "okx", ("BTC-USDT",)))
    with pytest.raises(LiveConfigError, match="deltas"):
        DeribitFeedHandler(LiveConfig("ws://127.0.0.1:1/ws/api/v2", "", "deribit", ("BTC-PERPETUAL",), deltas=True))
