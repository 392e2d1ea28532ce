"""Deribit live handler against the loopback capture server: same books as the offline replay.

``DERIBIT.ws.1.0`` holds one JSON-RPC connection with ten option books
(``book.<instrument>.raw``: a snapshot, then changes chained by
``prev_change_id``) and their tickers. Everything runs on 127.0.0.1 with an
ephemeral port, at max speed, inside ``asyncio.run``; every run is bounded by
the capture's end, the handler's ``duration`` and ``asyncio.wait_for``. The
heartbeat tests pace the capture (its 30 s in a few seconds) so that a
session spans several heartbeats of a fraction of a second.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import pytest

from shardex.feeds.live.backoff import Backoff
from shardex.feeds.live.events import BestBidAsk, BookInvalid, BookState, MarkPrice
from shardex.feeds.live.handler import DeribitFeedHandler, LiveConfig, LiveConfigError
from shardex.feeds.live._dialects import HEARTBEAT_CLOSE
from shardex.feeds.live.server import CaptureServer, Faults

from .live_helpers import drain as _drain
from .live_helpers import offline_top10

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
    return offline_top10(capture, "deribit", INSTS)


async def _run(capture: Path, faults: Faults | None = None, speed: float = math.inf, min_heartbeat: float = 10.0, **kw):
    async with CaptureServer([capture], speed=speed, faults=faults, idle_timeout=20, min_heartbeat=min_heartbeat) as srv:
        assert srv.ws_url.startswith("ws://127.0.0.1:") and srv.ws_url.endswith("/ws/api/v2")
        cfg = LiveConfig(srv.ws_url, "", "deribit", INSTS, duration=30)
        h = DeribitFeedHandler(cfg, backoff=Backoff(initial=0.01, cap=0.05), **kw)
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
    cfg = LiveConfig("ws://127.0.0.1:1/ws/api/v2", "", "deribit", ("BTC-PERPETUAL",))
    for bad in (0, -1.0, "10", True):
        with pytest.raises(LiveConfigError, match="heartbeat"):
            DeribitFeedHandler(cfg, heartbeat=bad)
    assert DeribitFeedHandler(cfg).heartbeat == 10 and DeribitFeedHandler(cfg, heartbeat=None).heartbeat is None


#: capture seconds per wall second in the heartbeat tests: the capture's 30.4 s play in about 2.5 s
_PACED = 12.0
_BEAT = 0.2


def test_deribit_heartbeat_answered_session_stays_up_book_equal(capture: Path, offline: dict[str, str]):
    h, rep, events, srv = asyncio.run(_run(capture, speed=_PACED, min_heartbeat=0.05, heartbeat=_BEAT))
    assert rep["end"] == "server closed: end of capture"
    assert rep["seconds"] > 10 * _BEAT  # long enough for several heartbeats
    # every test_request answered in time: one connection from start to end
    assert srv.stats["test_requests"] >= 5 and srv.stats["heartbeat_timeouts"] == 0
    assert rep["heartbeats"] == srv.stats["test_requests"]
    assert rep["connections"] == 1 and rep["reconnects"] == rep["disconnects"] == 0 and rep["sub_errors"] == 0
    assert rep["problems"] == []
    for key, b in rep["books"].items():
        assert b["synced"] and b["gaps"] == 0, (key, b)
        assert b["top10_sha256"] == offline[key], key
    # heartbeats and the set_heartbeat / test replies are "other": every stream message is still handled
    assert rep["messages"] - rep["other"] == srv.stats["sent"]


async def _raw_client(srv: CaptureServer, interval: float, answer: bool, timeout: float) -> tuple[list[dict], float, tuple]:
    """Set a heartbeat, answer test requests or not; return what came, seconds until the close (-1: none within
    ``timeout``) and the close (code, reason)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    got: list[dict] = []
    async with connect(srv.ws_url, proxy=None) as ws:
        t0 = time.monotonic()
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "public/set_heartbeat", "params": {"interval": interval}}))
        try:
            async with asyncio.timeout(timeout):
                for _ in range(1000):  # bounded: the server closes, or the timeout
                    doc = json.loads(await ws.recv())
                    got.append(doc)
                    if answer and doc.get("method") == "heartbeat":
                        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 8, "method": "public/test", "params": {}}))
        except ConnectionClosed:
            pass
        except TimeoutError:
            return got, -1.0, ()
        return got, time.monotonic() - t0, (ws.close_code, ws.close_reason)


def test_deribit_server_closes_a_client_that_ignores_test_requests(capture: Path):
    async def go():
        # paced at 1x so the capture (30 s) cannot end the connection first
        async with CaptureServer([capture], speed=1.0, idle_timeout=10, min_heartbeat=0.05) as srv:
            silent = await _raw_client(srv, _BEAT, answer=False, timeout=20 * _BEAT)
            polite = await _raw_client(srv, _BEAT, answer=True, timeout=10 * _BEAT)
            return silent, polite, dict(srv.stats)

    (got, secs, close), (got2, secs2, _), stats = asyncio.run(go())
    assert got[0] == {"jsonrpc": "2.0", "id": 7, "result": "ok"}
    assert got[1] == {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
    assert len(got) == 2  # nothing after the unanswered request but the close
    assert close == HEARTBEAT_CLOSE
    # one interval until the request, at most one more for the answer (plus loopback slack)
    assert 2 * _BEAT <= secs < 2 * _BEAT + 1.0
    # the same server keeps a client that answers: the loop ran to its own timeout, many requests later
    assert secs2 == -1.0 and sum(d.get("method") == "heartbeat" for d in got2) >= 3
    assert stats["heartbeat_timeouts"] == 1 and stats["test_requests"] >= 4


def test_deribit_heartbeat_below_the_venue_minimum_refused_and_reported(capture: Path, offline: dict[str, str]):
    # the server keeps Deribit's 10 s minimum here: the handler's 0.2 s is refused, the books are unaffected
    h, rep, events, srv = asyncio.run(_run(capture, heartbeat=_BEAT))
    assert rep["end"] == "server closed: end of capture" and rep["sub_errors"] == 0
    assert [p for p in rep["problems"] if "heartbeat_error" in p] and srv.stats["test_requests"] == 0
    for key, b in rep["books"].items():
        assert b["synced"] and b["top10_sha256"] == offline[key], key
