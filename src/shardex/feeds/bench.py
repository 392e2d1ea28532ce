"""``shardex bench feeds``: replay captures end to end with every check on, and time it.

Timed: parse, the venue's sync rule, apply, the bookTicker cross-check and the
best bid/ask read after every book message, for every message of the files,
from the decompressed bytes in memory. Not timed, reported apart: reading and
decompressing the files (``read_seconds``) and the one-off numba compile
(``compile_seconds``, 0 when the on-disk cache is warm).
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from shardex.feeds.builders.binance import BinanceBook
from shardex.feeds.readers import family, read, read_hftbacktest
from shardex.feeds.replay import Replay

__all__ = ["warm_up", "load", "run_once", "bench_feeds", "bench_threads"]


def warm_up() -> float:
    """Compile (or load from cache) the Binance kernel; returns the seconds it took."""
    t = time.perf_counter()
    b = BinanceBook("warm", "x", True)
    b.on_snapshot(b'{"lastUpdateId":2,"bids":[["1.0","1"]],"asks":[["2.0","1"]]}', 0)
    b.on_message(b'{"e":"depthUpdate","s":"X","U":1,"u":3,"pu":0,"b":[["1.0","2"]],"a":[]}', 0)
    b.feed_capture(b'1 {"stream":"x@bookTicker","data":{"u":3,"s":"X","b":"1.0","B":"2","a":"2.0","A":"1"}}\n', "warm", 1)
    return time.perf_counter() - t


def load(paths: Iterable[str | Path]) -> list[Any]:
    """Read and decompress every file once (hftbacktest: the raw buffer; others: their messages)."""
    out: list[Any] = []
    for p in paths:
        if family(p) == "hftbacktest":
            cap = read_hftbacktest(p)
            out.append(cap if cap.venue.startswith("binance") else list(cap.messages()))
        else:
            out.append(list(read(p)))
    return out


def run_once(loaded: list[Any]) -> Replay:
    """Replay pre-loaded files as one stream into fresh books."""
    r = Replay()
    for item in loaded:
        if isinstance(item, list):
            r.feed_all(item)
        else:
            key = f"{item.venue}:{item.symbol.upper()}"
            book = r.books.get(key)
            if book is None:
                book = r.books[key] = BinanceBook(key, item.symbol, item.venue == "binance-futures")
            book.feed_capture(item.raw, str(item.path), item.ts_mult)
    return r


def _summary(r: Replay, seconds: float) -> dict[str, Any]:
    n = sum(b.stats()["book_messages"] for b in r.books.values())
    shas = {k: b.top10_sha256() for k, b in sorted(r.books.items())}
    return {
        "book_messages": n,
        "seconds": seconds,
        "messages_per_second": n / seconds if seconds > 0 else 0.0,
        "top10_sha256": next(iter(shas.values())) if len(shas) == 1 else shas,
    }


def bench_feeds(paths: list[str | Path], repeat: int = 5) -> dict[str, Any]:
    """Median of ``repeat`` end-to-end replays of the files as one stream."""
    compile_s = warm_up()
    t = time.perf_counter()
    loaded = load(paths)
    read_s = time.perf_counter() - t
    times, cpu = [], []
    r = None
    for _ in range(max(1, repeat)):
        t, c = time.perf_counter(), time.thread_time()
        r = run_once(loaded)
        times.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    assert r is not None
    out = _summary(r, statistics.median(times))
    out.update(
        cpu_seconds=statistics.median(cpu),  # this thread's CPU time: what a busy shared box does not inflate
        read_seconds=read_s,
        compile_seconds=compile_s,
        runs=[round(x, 5) for x in times],
        files=[str(p) for p in paths],
    )
    return out


def bench_threads(streams: list[list[str | Path]], repeat: int = 5) -> dict[str, Any]:
    """Each stream (a list of files) on its own thread at once, against the same streams one after another.

    The kernels release the GIL, so on two cores two feeds should take about
    the time of one. Returns medians and ``scaling`` = sequential / parallel.
    """
    warm_up()
    loaded = [load(s) for s in streams]
    seq, par, busy = [], [], []
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        for item in loaded:
            run_once(item)
        seq.append(time.perf_counter() - t)
        threads = [threading.Thread(target=run_once, args=(item,)) for item in loaded]
        t, c = time.perf_counter(), time.process_time()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        par.append(time.perf_counter() - t)
        busy.append((time.process_time() - c) / par[-1])
    s, p = statistics.median(seq), statistics.median(par)
    return {
        "streams": len(streams),
        "sequential_seconds": s,
        "parallel_seconds": p,
        "scaling": s / p if p > 0 else 0.0,
        # on a shared box the fastest runs are the ones other work did not slow down
        "scaling_best": min(seq) / min(par) if min(par) > 0 else 0.0,
        # CPU seconds per wall second while the threads ran: ~2 means both ran at once
        # (the GIL was released), whatever else the machine was doing
        "cores_busy": statistics.median(busy),
    }
