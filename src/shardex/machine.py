"""What the machine's cores cost each other: the price of a cache line passed between two threads.

Every line one thread writes and another then reads (a shard's dealt
commands, the events the merge copies, a ledger account two settlement
threads both touch) travels between the two cores' caches.  How long that
takes depends on where the cores sit: next to each other on one chiplet,
sharing its last-level cache, or on two chiplets, through the package's
fabric.  A virtual machine cannot see which (its ``lscpu`` shows whatever
topology the hypervisor presents), and the host may move its virtual CPUs
at any time, so the benchmarks measure it beside their runs.

>>> from shardex.machine import line_round_trip_ns
>>> rt = line_round_trip_ns(rounds=1000)
>>> rt is None or rt > 0
True
"""

from __future__ import annotations

import threading
import time

import numpy as np
from numba import njit

from shardex.sync import cpu_pause, load_acquire, store_release, usable_cores

__all__ = ["CLOSE_NS", "line_round_trip_ns", "placement"]

#: Round trips below this many ns mean two cores that share a last-level cache.  On the
#: project VM (2026-11-23) idle probes fell into 62-82, 138-235 and 421-616 ns; the first
#: group matches cores of one chiplet, the others cores further apart.
CLOSE_NS = 120.0

#: Polls a side may spend waiting, per try, before it calls the try off (about a second at most):
#: where another process takes one of the cores, turns wait for the scheduler, and the probe
#: must end anyway.
_PATIENCE = 20_000_000


@njit(cache=True, nogil=True)
def _volley(flag, me, rounds, patience):
    """Wait until ``flag[0] == me``, then hand the turn to the other side; ``rounds`` times.

    Returns the rounds completed: fewer when either side ran out of
    ``patience`` polls (it then raises ``flag[1]``, which stops the other).
    """
    polls = 0
    for r in range(rounds):
        while load_acquire(flag, 0) != me:
            if load_acquire(flag, 1) != 0:
                return r
            cpu_pause()
            polls += 1
            if polls > patience:
                store_release(flag, 1, 1)
                return r
        store_release(flag, 0, 1 - me)
    return rounds


def line_round_trip_ns(rounds: int = 100_000) -> float | None:
    """Median nanoseconds for one 64-byte line to go to another thread's core and back (three tries).

    Two threads take turns on one flag: each waits for its turn, then
    passes it on, so each round moves the line twice.  ``None`` where this
    process may use only one core: the two sides would take turns on it,
    and the figure would time the scheduler, not the caches.  Where another
    process holds one of the cores, a try ends after about a second of
    waiting and counts what it timed: the figure is then large, and says so.

    For scale: AnandTech's review of Zen 4 (Ryzen 9 7950X, 2022) measured
    one hop at 15-19 ns between cores that share an L3 and up to 79.5 ns
    between its two chiplets.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if usable_cores() < 2:
        return None
    flag = np.zeros(8, np.int64)  # [0]: whose turn; [1]: a side gave up
    _volley(flag, 0, 1, 0)  # compile, or load from the cache, outside the clock
    tries = []
    for _ in range(3):
        flag[:] = 0
        t = threading.Thread(target=_volley, args=(flag, 1, rounds, _PATIENCE), name="shardex-round-trip")
        t.start()
        t0 = time.perf_counter()
        done = _volley(flag, 0, rounds, _PATIENCE)
        dt = time.perf_counter() - t0
        t.join()
        if done > 0:  # a try cut short still timed its rounds: slow ones, as the machine was
            tries.append(dt / done * 1e9)
    return float(np.median(tries)) if tries else None


def placement(round_trip: float | None) -> str | None:
    """``"close"`` (the cores share a last-level cache), ``"far"``, or ``None`` (not measured), from a round trip in ns."""
    if round_trip is None:
        return None
    return "close" if round_trip < CLOSE_NS else "far"
