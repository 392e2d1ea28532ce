"""``shardex bench settlement``: the contention sweep of the settlement executor.

In the manner of the Block-STM paper: batches of 10,000 transactions over 2
to 100,000 accounts, for plain transfers and for trade settlement (positions,
fees and both accounts' margin recomputed over 16 instruments), timing the
executor against the sequential kernel in the same run, per thread count.

Each configuration runs ``repeats`` times, sequential and parallel
alternating on fresh copies of the same ledger; the table reports median
times and the median of the per-pair speedups (pairs taken close together in
time share the machine's load, which matters on a shared machine).  The
``capacity`` column ("ceiling") is the speedup the same threads get right
then on a loop that shares nothing, in a core's caches; the ``kernel_ceiling``
column ("kernel") the speedup of the same threads each settling a slice of
the batch with the sequential kernel on a ledger of its own, timed beside
each pair: what the machine allowed this workload at that moment, its
memory traffic included.  ``line_round_trip_ns`` ("trip ns") is what one
cache line took to reach the other core and come back, measured before each
multi-thread row (``shardex.machine``): the price of every account line the
two threads both touch, which moves with where the host puts the two
virtual CPUs.

The heavy imports happen inside the functions: ``shardex --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone

import typer

__all__ = ["format_table", "parallel_capacity", "run_sweep", "settlement", "threshold_sweep"]

ACCOUNTS = (2, 10, 100, 1_000, 10_000, 100_000)
WORKLOADS = ("transfer", "trade")
THREADS = (1, 2)
N_TXNS = 10_000
N_INSTRUMENTS = 16
MARK = 600_000  # ticks: BTC at 60,000.0 with a 0.1 tick
MULT = 100  # USDT minor units (1e-6) per tick per lot (0.1 tick * 0.001 lot)


def _chase(perm, n):
    """Follow ``n`` links of a permutation: a busy loop that shares nothing."""
    j = 0
    for _ in range(n):
        j = perm[j]
    return j


_chase_kernel = None


def parallel_capacity(threads: int, repeats: int = 5) -> float:
    """The speedup ``threads`` threads get right now on work that shares nothing.

    The machine is shared, so this is the ceiling for the executor in the same
    run: a median of ``repeats`` timings, one thread against ``threads``.
    """
    global _chase_kernel
    import numpy as np
    from numba import njit

    from shardex.ledger.executor import crew

    if _chase_kernel is None:
        _chase_kernel = njit(cache=True, nogil=True)(_chase)
    perm = np.random.default_rng(0).permutation(1 << 14).astype(np.int64)
    _chase_kernel(perm, 10)
    if threads == 1:
        return 1.0
    n = 4_000_000
    workers = crew(threads - 1)
    ratios = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _chase_kernel(perm, n)
        t1 = time.perf_counter()
        workers.run([(_chase_kernel, (perm, n // threads))] * threads)
        ratios.append((t1 - t0) / (time.perf_counter() - t1))
    return statistics.median(ratios)


def _ledger(n_accounts: int, workload: str, seed: int):
    """A funded ledger; for trades, positions already open (warm-up fills)."""
    import numpy as np

    from shardex.ledger import Ledger, LinearPerp, deposit_txns

    led = Ledger(n_accounts, ["USDT", "BTC", "ETH"], [LinearPerp(MULT, 1000, 500)] * N_INSTRUMENTS)
    led.set_marks(np.full(N_INSTRUMENTS, MARK))
    for c in range(3):
        led.settle(deposit_txns(np.arange(n_accounts), c, 10**15), threads=1)
    if workload == "trade":
        rng = np.random.default_rng(seed + 1)
        led.settle(_batch(rng, n_accounts, "trade", min(4 * n_accounts, 200_000)), threads=1)
    return led


def _batch(rng, n_accounts: int, workload: str, n: int):
    import numpy as np

    from shardex.ledger import trade_txns, transfer_txns

    a = rng.integers(0, n_accounts, n)
    b = rng.integers(0, n_accounts - 1, n)
    b = np.where(b >= a, b + 1, b)
    seq = np.arange(n)
    if workload == "transfer":
        return transfer_txns(a, b, rng.integers(0, 3, n), rng.integers(1, 10**6, n), seq=seq)
    qty = rng.integers(1, 100, n) * rng.choice([-1, 1], n)
    price = MARK + rng.integers(-3_000, 3_000, n)
    return trade_txns(a, b, rng.integers(0, N_INSTRUMENTS, n), price, qty, 5, -1, trade_id=seq + 1, seq=seq)


def _time_pair(base, txns, threads: int, mode: str, order: str, first_parallel: bool):
    from shardex.ledger import settle

    out = {}
    for kind in (("par", "seq") if first_parallel else ("seq", "par")):
        led = base.copy()
        t0 = time.perf_counter()
        if kind == "seq":
            res = settle(led, txns, mode="sequential")
        else:
            res = settle(led, txns, threads=threads, mode=mode, order=order)
        out[kind] = (time.perf_counter() - t0, led.state_hash(), res)
    return out


def _time_split(base, txns, threads: int) -> float:
    """Seconds for ``threads`` threads to settle one slice of the batch each, sequentially, on a ledger of its own.

    The same kernel and the same transactions as the sequential run, with
    nothing shared between the threads: no account, no wait, no merge.  Its
    speedup over the sequential run is what the machine allows this
    workload at that moment (memory traffic included, which the chase loop
    of ``parallel_capacity`` does not have), and so the executor's ceiling.
    """
    import numpy as np

    from shardex.ledger import settle
    from shardex.ledger.executor import crew

    slices = np.array_split(txns, threads)
    ledgers = [base.copy() for _ in range(threads)]
    workers = crew(threads - 1)
    sequential = functools.partial(settle, mode="sequential")
    t0 = time.perf_counter()
    workers.run([(sequential, (ledgers[k], slices[k])) for k in range(threads)])
    return time.perf_counter() - t0


def run_sweep(
    accounts=ACCOUNTS,
    workloads=WORKLOADS,
    threads=THREADS,
    repeats: int = 7,
    n_txns: int = N_TXNS,
    seed: int = 0,
    mode: str = "auto",
    order: str = "row",
) -> dict:
    """Run the sweep; return the JSON-able report (``runs`` list, machine, date).

    ``mode="parallel"`` times the threads even where the executor would fall
    back to the sequential kernel (used to choose ``MIN_TXNS_PER_LEVEL``).
    """
    import numpy as np

    from shardex.ledger import settle
    from shardex.ledger.executor import MIN_TXNS_PER_LEVEL
    from shardex.machine import line_round_trip_ns

    # Compile outside the timings (the cache makes this cheap after the first run).
    warm = _ledger(4, "trade", seed)
    settle(warm, _batch(np.random.default_rng(seed), 4, "trade", 64), threads=2, mode="parallel")
    runs = []
    for workload in workloads:
        for n_accounts in accounts:
            base = _ledger(n_accounts, workload, seed)
            txns = _batch(np.random.default_rng(seed), n_accounts, workload, n_txns)
            for n_threads in threads:
                seq_t, par_t, ratios, equal, modes, levels = [], [], [], True, set(), 0
                ceilings = []
                capacity = parallel_capacity(n_threads, repeats=3)
                trip = line_round_trip_ns() if n_threads > 1 else None
                for r in range(repeats):
                    pair = _time_pair(base, txns, n_threads, mode, order, first_parallel=bool(r % 2))
                    seq_t.append(pair["seq"][0])
                    par_t.append(pair["par"][0])
                    ratios.append(pair["seq"][0] / pair["par"][0])
                    if n_threads > 1:
                        ceilings.append(pair["seq"][0] / _time_split(base, txns, n_threads))
                    equal &= pair["seq"][1] == pair["par"][1]
                    equal &= bool(np.array_equal(pair["seq"][2].audit, pair["par"][2].audit))
                    modes.add(pair["par"][2].mode)
                    levels = max(levels, pair["par"][2].n_levels)
                runs.append(
                    {
                        "workload": workload,
                        "accounts": n_accounts,
                        "threads": n_threads,
                        "sequential_seconds": statistics.median(seq_t),
                        "parallel_seconds": statistics.median(par_t),
                        "speedup": statistics.median(ratios),
                        "state_hash_equal": bool(equal),
                        "executor_mode": "/".join(sorted(modes)),
                        "levels": levels,
                        "txns_per_level": (n_txns / levels) if levels else None,
                        "capacity": capacity,
                        "kernel_ceiling": statistics.median(ceilings) if ceilings else 1.0,
                        "line_round_trip_ns": None if trip is None else round(trip, 1),
                    }
                )
    return {
        "benchmark": "settlement",
        "peer": "the sequential settlement kernel, same batch, same run",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "loadavg_at_end": os.getloadavg(),
        },
        "n_txns": n_txns,
        "n_instruments": N_INSTRUMENTS,
        "repeats": repeats,
        "mode": mode,
        "order": order,
        "min_txns_per_level": MIN_TXNS_PER_LEVEL,
        "runs": runs,
    }


def threshold_sweep(repeats: int = 7, order: str = "row") -> dict:
    """Forced-parallel speedup against transactions per level, to choose the fallback threshold."""
    return run_sweep(
        accounts=(4, 8, 16, 32, 64, 128, 256, 512),
        threads=(2,),
        repeats=repeats,
        mode="parallel",
        order=order,
    )


def format_table(report: dict) -> str:
    """The report as a fixed-width text table."""
    head = (
        f"{'workload':<9}{'accounts':>9}{'threads':>8}{'txn/level':>10}{'seq ms':>9}{'par ms':>9}"
        f"{'speedup':>8}{'ceiling':>8}{'kernel':>8}{'trip ns':>8}  mode        equal"
    )
    lines = [head, "-" * len(head)]
    for r in report["runs"]:
        tpl = f"{r['txns_per_level']:.0f}" if r["txns_per_level"] else "-"
        trip = "-" if r.get("line_round_trip_ns") is None else f"{r['line_round_trip_ns']:.0f}"
        lines.append(
            f"{r['workload']:<9}{r['accounts']:>9}{r['threads']:>8}{tpl:>10}"
            f"{r['sequential_seconds'] * 1e3:>9.2f}{r['parallel_seconds'] * 1e3:>9.2f}{r['speedup']:>8.2f}{r['capacity']:>8.2f}"
            f"{r['kernel_ceiling']:>8.2f}{trip:>8}"
            f"  {r['executor_mode']:<11} {r['state_hash_equal']}"
        )
    m = report["machine"]
    lines.append(f"{report['date']}  {m['cpus']} cpus  {m['processor']}  load {tuple(round(x, 2) for x in m['loadavg_at_end'])}")
    return "\n".join(lines)


def settlement(
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    repeats: int = typer.Option(7, help="Runs per configuration; medians are reported."),
    txns: int = typer.Option(N_TXNS, help="Transactions per batch."),
    mode: str = typer.Option("auto", help="Executor mode: auto (with fallback) or parallel (always threads)."),
    order: str = typer.Option("row", help="Claim order of the threads: row or level."),
    threshold: bool = typer.Option(False, "--threshold", help="Run the fallback-threshold sweep instead."),
) -> None:
    """Contention sweep of the parallel settlement executor against the sequential kernel."""
    if threshold:
        report = threshold_sweep(repeats=repeats, order=order)
    else:
        report = run_sweep(repeats=repeats, n_txns=txns, mode=mode, order=order)
    typer.echo(json.dumps(report, indent=2) if json_out else format_table(report))
