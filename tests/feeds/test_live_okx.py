"""OKX v5 live handler against the loopback capture server: same books as the offline replay.

``OKX.ws.1.0`` holds one connection with three ``books`` instruments (a
future, a swap, spot) whose updates carry CRC32 checksums and no ``seqId``.
It has no ``mark-price``/``index-tickers``/``funding-rate`` messages, so the
mark tests play a derived copy with such messages added (:func:`_with_marks`).
Everything runs on 127.0.0.1 with an ephemeral port, at max speed, inside
``asyncio.run``; every run is bounded by the capture's end, the handler's
``duration`` and ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from pathlib import Path

import pytest

from shardex.feeds.live.backoff import Backoff
from shardex.feeds.live.events import BookInvalid, BookState, MarkPrice, Trade
from shardex.feeds.live.handler import LiveConfig, LiveConfigError, OkxFeedHandler
from shardex.feeds.live.server import CaptureServer, Faults

from .live_helpers import drain as _drain
from .live_helpers import offline_top10

INSTS = ("BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT")


@pytest.fixture(scope="module")
def capture(cf: Path) -> Path:
    return cf / "OKX.ws.1.0"


@pytest.fixture(scope="module")
def offline(capture: Path) -> dict[str, str]:
    """``okx:<instId>`` -> top10_sha256 of ``shardex feeds replay``."""
    return offline_top10(capture, "okx", INSTS)


async def _run(capture: Path, faults: Faults | None = None, channels: tuple[str, ...] = ("trade", "bookTicker")):
    async with CaptureServer([capture], speed=math.inf, faults=faults, idle_timeout=20) as srv:
        cfg = LiveConfig(f"{srv.ws_url}/public", "", "okx", INSTS, channels=channels, duration=30)
        h = OkxFeedHandler(cfg, backoff=Backoff(initial=0.01, cap=0.05))
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


_BOOK_LINE = re.compile(r'^([0-9.]+): (\{"arg":\{"channel":"books".*)$')
_EIGHT_HOURS_MS = 8 * 3600 * 1000
#: every how many book messages of an instrument the derived capture adds its mark, index and funding
_MARK_EVERY = 8


def _with_marks(src: Path, dst: Path) -> dict[str, list[dict]]:
    """Copy capture ``src`` to ``dst``, adding OKX mark, index and funding messages; return them per channel.

    After every :data:`_MARK_EVERY`-th ``books`` message of instrument X (with
    its receive stamp and ``ts``): ``mark-price`` of X with ``markPx`` the
    price of the first bid level it changed, ``index-tickers`` of X's index
    with ``idxPx`` the first ask level's (each as printed by OKX), and for
    the swap ``funding-rate`` with rates that keep trailing zeros and a sign
    (``0.0001kk0``, ``-0.0000kk``) and the next 8-hour boundary as
    ``fundingTime``. Synthetic values in OKX's message shapes.
    """
    served: dict[str, list[dict]] = {"mark-price": [], "index-tickers": [], "funding-rate": []}
    seen: dict[str, int] = {}
    out = []
    for line in src.read_text().splitlines():
        out.append(line)
        m = _BOOK_LINE.match(line)
        if not m:
            continue
        doc = json.loads(m.group(2))
        inst, d = doc["arg"]["instId"], doc["data"][0]
        seen[inst] = k = seen.get(inst, 0) + 1
        if k % _MARK_EVERY or not (d["bids"] and d["asks"]):
            continue
        stamp, ts = m.group(1), d["ts"]
        index = "-".join(inst.split("-")[:2])
        entries = [
            ("mark-price", inst, {"instId": inst, "instType": "SWAP" if inst.endswith("-SWAP") else "FUTURES",
                                  "markPx": d["bids"][0][0], "ts": ts}),
            ("index-tickers", index, {"instId": index, "idxPx": d["asks"][0][0], "high24h": "0", "low24h": "0",
                                      "open24h": "0", "sodUtc0": "0", "sodUtc8": "0", "ts": ts}),
        ]
        if inst.endswith("-SWAP"):
            f_time = str((int(ts) // _EIGHT_HOURS_MS + 1) * _EIGHT_HOURS_MS)
            entries.append(("funding-rate", inst, {"instId": inst, "instType": "SWAP", "method": "next_period",
                                                   "fundingRate": f"0.0001{k % 100:02d}0", "nextFundingRate": f"-0.0000{k % 100:02d}",
                                                   "fundingTime": f_time, "nextFundingTime": str(int(f_time) + _EIGHT_HOURS_MS), "ts": ts}))
        for ch, arg_inst, e in entries:
            served[ch].append(e)
            msg = {"arg": {"channel": ch, "instId": arg_inst}, "data": [e]}
            out.append(f"{stamp}: {json.dumps(msg, separators=(',', ':'))}")
    dst.write_text("\n".join(out) + "\n")
    return served


def test_okx_mark_index_funding_exact_values(capture: Path, offline: dict[str, str], tmp_path: Path):
    served = _with_marks(capture, tmp_path / "OKX.ws.1.0")
    assert len(served["mark-price"]) == len(served["index-tickers"]) > 10 and len(served["funding-rate"]) > 3
    h, rep, events, srv = asyncio.run(_run(tmp_path / "OKX.ws.1.0", channels=("trade", "bookTicker", "markPrice@1s")))
    assert rep["end"] == "server closed: end of capture"
    # funding-rate is asked for the swap only (the server, like OKX, refuses it elsewhere)
    assert rep["sub_errors"] == 0 and rep["undecodable"] == 0 and rep["reconnects"] == 0
    for key, b in rep["books"].items():  # the extra channels leave the books alone
        assert b["synced"] and b["top10_sha256"] == offline[key], key
    assert rep["messages"] - rep["other"] == srv.stats["sent"]
    marks = [e for e in events if isinstance(e, MarkPrice)]
    # one count per entry received; a subscribe that lands after the capture's first entries misses those
    assert 3 * len(INSTS) <= rep["marks"] <= sum(map(len, served.values()))
    assert {m.symbol for m in marks} == set(INSTS)
    by_inst = {inst: [d for d in served["mark-price"] if d["instId"] == inst] for inst in INSTS}
    for inst in INSTS:
        index = "-".join(inst.split("-")[:2])
        idx = [d for d in served["index-tickers"] if d["instId"] == index]
        fund = [d for d in served["funding-rate"] if d["instId"] == inst]
        mine = [m for m in marks if m.symbol == inst]
        # every published value is one served, as the exact string
        assert all(m.venue == "okx" for m in mine)
        assert {m.mark for m in mine} <= {d["markPx"] for d in by_inst[inst]} | {""}
        assert {m.index for m in mine} <= {d["idxPx"] for d in idx} | {""}
        # the last event holds the last value of each channel; the index message came last, so its ts
        last = mine[-1]
        expect_fund = (fund[-1]["fundingRate"], int(fund[-1]["fundingTime"]) * 1_000_000, fund[-1]["nextFundingRate"]) if fund else ("", 0, "")
        assert (last.mark, last.index, last.funding_rate, last.next_funding_ns, last.next_funding_rate) == (
            by_inst[inst][-1]["markPx"], idx[-1]["idxPx"], *expect_fund)
        assert last.exch_ns == int(idx[-1]["ts"]) * 1_000_000
    swap = [m for m in marks if m.symbol == "UNI-USD-SWAP"][-1]
    assert swap.funding_rate.endswith("0") and swap.next_funding_rate.startswith("-0.0000")
    assert all(m.funding_rate == "" and m.next_funding_ns == 0 for m in marks if m.symbol != "UNI-USD-SWAP")


def test_okx_mark_topics_and_server_refuses_funding_off_swaps(capture: Path):
    cfg = LiveConfig("ws://127.0.0.1:1/ws/v5/public", "", "okx", ("BTC-USD-220527", "BTC-USD-SWAP", "BTC-USDT"),
                     channels=("markPrice@1s",))
    topics = OkxFeedHandler(cfg)._topics()
    # one index subscription for the two instruments on BTC-USD; funding for the swap only
    assert topics[3:] == ["mark-price:BTC-USD-220527", "mark-price:BTC-USD-SWAP", "mark-price:BTC-USDT",
                          "index-tickers:BTC-USD", "index-tickers:BTC-USDT", "funding-rate:BTC-USD-SWAP"]

    async def go():
        from websockets.asyncio.client import connect

        async with CaptureServer([capture], speed=math.inf, idle_timeout=10) as srv:
            async with connect(f"{srv.ws_url}/public", proxy=None) as ws:
                for ch, inst in (("funding-rate", "BTC-USDT"), ("funding-rate", "UNI-USD-SWAP"), ("mark-price", "BTC-USDT")):
                    await ws.send(json.dumps({"op": "subscribe", "args": [{"channel": ch, "instId": inst}]}))
                replies = []
                async with asyncio.timeout(10):
                    while len(replies) < 3:  # bounded by the timeout
                        doc = json.loads(await ws.recv())
                        if "event" in doc:
                            replies.append(doc)
            return replies

    replies = asyncio.run(go())
    assert [r["event"] for r in replies] == ["error", "subscribe", "subscribe"]
    assert "funding-rate:BTC-USDT" in replies[0]["msg"]
