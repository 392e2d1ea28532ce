"""What a second thread gets on this machine, by kind of work: the ceiling under the scaling targets.

The 2-shard and 2-thread settlement targets (>= 1.8x) assume two cores that
do not slow each other down.  This script measures how true that is, right
now, for work that shares nothing:

    python bench/machine_scaling.py              # 7 interleaved rounds, table on stdout
    python bench/machine_scaling.py --json bench/out/machine_scaling.json

Kinds of work, each timed on one thread and then on two threads doing the
same work at once on their own data (speedup = 2 x one-thread time / two-thread
time; 2.0 means the second core came free):

* ``dgemm``: 192x192 matrix products, BLAS held to one thread: arithmetic
  on data in a core's own caches;
* ``walk-1mb`` / ``walk-8mb`` / ``walk-128mb``: random read-modify-write in
  a private array of that size (a core's L2, the shared L3, memory): every
  value read is added to a running sum that is written back, one chain of
  adds through every step;
* ``scatter-64kb`` / ``scatter-1mb``: random increments plus a second random
  read per step, nothing chaining the steps but the address generator, so
  the core keeps as many accesses in flight as it can: the settlement
  kernel's kind of work on accounts that fit a core's caches;
* ``round trip``: one 64-byte line passed back and forth between the two
  threads (``shardex.machine.line_round_trip_ns``), in ns: what every line
  one core writes and the other reads costs (the engine's dealt commands,
  its merged events, the settlement ledger's accounts), and so where the
  host has placed the two virtual CPUs;
* ``shard``: one matching shard's half of ``shardex bench shards``'s
  workload (1M commands over 64 instruments, dealt to 2 shards), timed
  alone and next to each neighbour: a ``dgemm`` thread, a ``walk-128mb``
  thread, the other shard.  Reported as its time next to each over its
  time alone (1.0: no interference; below 1.0 the machine sped up meanwhile).

Rounds are interleaved so that the machine's slow and fast spells hit every
kind alike; medians and ranges are printed.  The numba kernels here compile
when the script starts (a few seconds, untimed).
"""

from __future__ import annotations

import os

# BLAS must use one thread per call, or dgemm would measure BLAS's own threading.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from bench_matching import machine, sign_and_save  # noqa: E402
from shardex.machine import line_round_trip_ns  # noqa: E402

WALK_SIZES = {"walk-1mb": 1 << 17, "walk-8mb": 1 << 20, "walk-128mb": 1 << 24}  # int64 elements
WALK_STEPS = 4_000_000
SCATTER_SIZES = {"scatter-64kb": 1 << 13, "scatter-1mb": 1 << 17}  # int64 elements
SCATTER_STEPS = 8_000_000
DGEMM_N = 192
DGEMM_REPS = 400


@njit(nogil=True, cache=False)
def _walk(a, steps, seed):
    """``steps`` random read-modify-writes in ``a`` (size a power of two), xorshift addresses."""
    x = seed
    mask = a.size - 1
    acc = 0
    for _ in range(steps):
        x ^= (x << 13) & 0xFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFF
        j = x & mask
        acc += a[j]
        a[j] = acc & 0xFF
    return acc


@njit(nogil=True, cache=False)
def _scatter(a, steps, seed):
    """``steps`` random increments and reads in ``a`` (size a power of two); no step waits for another's value."""
    x = seed
    mask = a.size - 1
    acc = 0
    for _ in range(steps):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        j = (x >> 20) & mask
        a[j] += 1
        acc += a[(j * 7) & mask]
    return acc


def _dgemm(a, b, reps):
    for _ in range(reps):
        np.dot(a, b)  # releases the GIL


def _together(jobs) -> float:
    """Wall seconds for ``jobs`` (callables) run at once, one thread each."""
    threads = [threading.Thread(target=j) for j in jobs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


class Neighbour:
    """Work kept running on another thread until ``stop``: repeated short calls, so it stops promptly."""

    def __init__(self, step):
        self._step, self._done = step, threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self):
        while not self._done.is_set():
            self._step()

    def __enter__(self):
        self._thread.start()
        time.sleep(0.01)  # running before the clock starts
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


class ShardHalves:
    """The two shards' streams of ``shardex bench shards`` (1M commands, 64 instruments), run from fresh engines."""

    def __init__(self, commands: int = 1_000_000, n_instruments: int = 64, batch: int = 4096):
        from shardex.engine.benchmarks import _fixed_clock, _split_streams, _warm, reference_run
        from shardex.engine.exchange import Exchange
        from shardex.engine.loadgen import instruments, order_flow

        cmds = order_flow(commands, n_instruments=n_instruments, seed=42)
        _warm(n_instruments)
        self.streams = _split_streams(cmds, n_instruments, 2, batch)
        _, _, capacity = reference_run(cmds, n_instruments, 2, batch)
        self._new = lambda: Exchange(instruments(n_instruments), shards=2, clock=_fixed_clock,
                                     order_capacity=capacity, pretouch=True)

    def time(self, neighbour: str, walk_arr, mats) -> float:
        """Seconds for shard 0's stream with ``neighbour`` running beside it (``none``, ``dgemm``, ``walk``, ``shard``)."""
        from shardex.lowlevel import prefault

        ex = self._new()
        prefault(256)

        def run(s):
            for b in self.streams[s]:
                ex.shards[s].process_into(b)

        try:
            if neighbour == "shard":
                other = threading.Thread(target=run, args=(1,))
                other.start()
                t0 = time.perf_counter()
                run(0)
                dt = time.perf_counter() - t0
                other.join()
                return dt
            steps = {"dgemm": lambda: _dgemm(*mats, 4), "walk": lambda: _walk(walk_arr, 200_000, 3)}
            if neighbour == "none":
                t0 = time.perf_counter()
                run(0)
                return time.perf_counter() - t0
            with Neighbour(steps[neighbour]):
                t0 = time.perf_counter()
                run(0)
                return time.perf_counter() - t0
        finally:
            ex.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds; medians are reported")
    ap.add_argument("--no-shard", action="store_true", help="skip the matching shard (the synthetic kinds only)")
    ap.add_argument("--json", type=Path, default=None, help="write the report to this file")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(1)
    mats = [(rng.random((DGEMM_N, DGEMM_N)), rng.random((DGEMM_N, DGEMM_N))) for _ in range(2)]
    arrays = {k: [np.zeros(n, np.int64) for _ in range(2)] for k, n in WALK_SIZES.items()}
    scattered = {k: [np.zeros(n, np.int64) for _ in range(2)] for k, n in SCATTER_SIZES.items()}
    _walk(arrays["walk-1mb"][0], 10, 1)  # compile
    _scatter(scattered["scatter-64kb"][0], 10, 1)
    _dgemm(*mats[0], 2)
    halves = None if args.no_shard else ShardHalves()

    speedups: dict[str, list[float]] = {k: [] for k in ["dgemm", *WALK_SIZES, *SCATTER_SIZES]}
    shard: dict[str, list[float]] = {k: [] for k in ("none", "dgemm", "walk", "shard")}
    trips: list[float] = []
    for r in range(args.rounds):
        one = _together([lambda: _dgemm(*mats[0], DGEMM_REPS)])
        two = _together([lambda i=i: _dgemm(*mats[i], DGEMM_REPS) for i in range(2)])
        speedups["dgemm"].append(2 * one / two)
        for k, (a, b) in arrays.items():
            one = _together([lambda: _walk(a, WALK_STEPS, 1)])
            two = _together([lambda: _walk(a, WALK_STEPS, 1), lambda: _walk(b, WALK_STEPS, 2)])
            speedups[k].append(2 * one / two)
        for k, (a, b) in scattered.items():
            one = _together([lambda: _scatter(a, SCATTER_STEPS, 1)])
            two = _together([lambda: _scatter(a, SCATTER_STEPS, 1), lambda: _scatter(b, SCATTER_STEPS, 2)])
            speedups[k].append(2 * one / two)
        trips.append(line_round_trip_ns())
        if halves is not None:
            for k in shard:
                shard[k].append(halves.time(k, arrays["walk-128mb"][1], mats[1]))
        line = "  ".join(f"{k} {v[-1]:.2f}x" for k, v in speedups.items()) + f"  round trip {trips[-1]:.0f} ns"
        if halves is not None:
            line += "  shard alone {:.0f} ms".format(shard["none"][-1] * 1e3)
        print(f"round {r + 1}/{args.rounds}: {line}", flush=True)

    def summary(v):
        return {"median": round(statistics.median(v), 3), "min": round(min(v), 3), "max": round(max(v), 3),
                "all": [round(x, 3) for x in v]}

    report = {"benchmark": "machine_scaling", "machine": machine(), "rounds": args.rounds,
              "two_thread_speedup": {k: summary(v) for k, v in speedups.items()},
              "round_trip_ns": summary(trips)}
    print(f"\n{'work':<12}{'2-thread speedup':>18}{'range':>16}")
    for k, v in speedups.items():
        print(f"{k:<12}{statistics.median(v):>17.2f}x{min(v):>9.2f}-{max(v):.2f}")
    print(f"{'round trip':<12}{statistics.median(trips):>15.0f} ns{min(trips):>9.0f}-{max(trips):.0f}")
    if halves is not None:
        alone = shard["none"]
        slow = {k: [t / a for t, a in zip(shard[k], alone)] for k in ("dgemm", "walk", "shard")}
        report["shard_alone_seconds"] = summary(alone)
        report["shard_slowdown_next_to"] = {k: summary(v) for k, v in slow.items()}
        print(f"\nmatching shard (half of bench shards' stream) alone: median {statistics.median(alone) * 1e3:.1f} ms"
              f" ({min(alone) * 1e3:.0f}-{max(alone) * 1e3:.0f})")
        for k, v in slow.items():
            print(f"  next to {k:<6} {statistics.median(v):.2f}x the time alone  ({min(v):.2f}-{max(v):.2f})")
    sign_and_save(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
