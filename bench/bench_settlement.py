"""Contention sweep of the parallel settlement executor (``shardex bench settlement``).

Runs the sweep against the sequential kernel in the same run, prints the
table and writes the JSON report to ``bench/out/settlement.json``.

    python bench/bench_settlement.py                 # the sweep, medians of 7
    python bench/bench_settlement.py --threshold     # forced-parallel speedup vs txns/level
    python bench/bench_settlement.py --order level   # claim transactions level by level
    python bench/bench_settlement.py --prange        # executor vs a prange-per-level kernel

``--prange`` answers the design question "numba ``parallel=True`` with a
``prange`` over each level, or nogil kernels on our own threads?": it times
both against the sequential kernel on the trade workload.

The machine is shared: compare the speedup with the ``ceiling`` column, the
speedup an embarrassingly parallel loop got at the same moment.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import statistics
import time

import numpy as np

from shardex.ledger.bench import ACCOUNTS, _batch, _ledger, format_table, parallel_capacity, run_sweep, threshold_sweep


def _prange_kernel():
    """Build (lazily: parallel=True compiles slowly) the prange-per-level runner."""
    from numba import njit, prange

    from shardex.ledger._kernels import apply_txn

    @njit(parallel=True, nogil=True)
    def run_levels(order, level_start, txns, balances, positions, margin, inst, marks, mccy, codes, aud, nrec):
        for L in range(level_start.size - 1):  # one parallel region (one launch) per level
            for p in prange(level_start[L], level_start[L + 1]):
                apply_txn(order[p], txns, balances, positions, margin, inst, marks, mccy, codes, aud, nrec, False)

    return run_levels


def compare_prange(repeats: int, threads: int = 2) -> None:
    """Print sequential vs executor vs prange-per-level times on the trade workload."""
    import numba

    from shardex.ledger import _kernels as K
    from shardex.ledger import settle

    numba.set_num_threads(threads)
    run_levels = _prange_kernel()
    print(f"{'accounts':>9}{'txn/level':>10}{'seq ms':>9}{'executor':>10}{'prange':>9}{'exec x':>8}{'prange x':>9}{'ceiling':>8}")
    for n_accounts in ACCOUNTS:
        base = _ledger(n_accounts, "trade", 0)
        txns = _batch(np.random.default_rng(0), n_accounts, "trade", 10_000)
        times = {"seq": [], "exec": [], "prange": []}
        same = True
        for _ in range(repeats + 1):  # the first round compiles, it is dropped below
            for name in times:
                led = base.copy()
                t0 = time.perf_counter()
                if name == "seq":
                    settle(led, txns, mode="sequential")
                elif name == "exec":
                    settle(led, txns, threads=threads, mode="parallel")
                else:
                    codes = np.zeros(txns.size, np.int64)
                    level, order, n_levels, *_ = K.plan(txns, led.n_accounts, 3, led.n_instruments, codes, True)
                    level_start = np.zeros(n_levels + 1, np.int64)
                    level_start[1:] = np.cumsum(np.bincount(level, minlength=n_levels + 1)[1:])
                    slots, nrec = K.new_audit_slots(txns.size), np.zeros(txns.size, np.int64)
                    run_levels(order, level_start, txns, led.balances, led.positions, led.margin, led.inst,
                               led.marks, led.mccy, codes, slots, nrec)  # fmt: skip
                    from shardex.ledger.txn import AUDIT_DTYPE

                    audit = np.zeros(int(nrec.sum()), AUDIT_DTYPE)
                    K.finalize(nrec, slots, led.fee_pool, led.insurance, led.net_flow, audit)
                times[name].append(time.perf_counter() - t0)
                if name == "seq":
                    want = led.state_hash()
                else:
                    same &= led.state_hash() == want
        med = {k: statistics.median(v[1:]) for k, v in times.items()}
        tpl = 10_000 / K.plan(txns, n_accounts, 3, 16, np.zeros(txns.size, np.int64), False)[2]
        print(
            f"{n_accounts:>9}{tpl:>10.0f}{med['seq'] * 1e3:>9.2f}{med['exec'] * 1e3:>10.2f}{med['prange'] * 1e3:>9.2f}"
            f"{med['seq'] / med['exec']:>8.2f}{med['seq'] / med['prange']:>9.2f}{parallel_capacity(threads, 3):>8.2f}"
            f"  {'equal' if same else 'DIFFERENT'}"
        )


def main() -> None:
    """Parse arguments, run, print, save."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--order", choices=["row", "level"], default="row")
    ap.add_argument("--mode", choices=["auto", "parallel"], default="auto")
    ap.add_argument("--threshold", action="store_true")
    ap.add_argument("--prange", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "settlement.json")
    args = ap.parse_args()
    if args.prange:
        compare_prange(args.repeats)
        return
    if args.threshold:
        report = threshold_sweep(repeats=args.repeats, order=args.order)
    else:
        report = run_sweep(repeats=args.repeats, mode=args.mode, order=args.order)
    print(format_table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
