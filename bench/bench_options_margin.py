"""Portfolio margin benchmark: 10,000 accounts x 20 positions x a 21x3 scenario grid, 1 and 2 threads.

    python bench/bench_options_margin.py [--accounts 10000] [--positions 20] [--repeats 5]

Prints the median time per thread count and the speed-up; the margins are
checked to be identical for every thread count.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np

from shardex.options import ScenarioGrid, portfolio_margin
from shardex.options.portfolio import random_positions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--positions", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    pos, fwd = random_positions(args.accounts, args.positions, n_underlyings=2, seed=1)
    grids = {0: ScenarioGrid(max_move=0.15, n_moves=21, vol_shocks=(-0.3, 0.0, 0.3)),
             1: ScenarioGrid(max_move=0.25, n_moves=21, vol_shocks=(-0.3, 0.0, 0.3))}
    portfolio_margin(pos[:100], fwd, grids)  # compile
    results = {}
    ref = None
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = portfolio_margin(pos, fwd, grids)
            times.append(time.perf_counter() - t0)
        if ref is None:
            ref = out["margin"]
        assert np.array_equal(ref, out["margin"]), "margins depend on the thread count"
        results[threads] = statistics.median(times)
    evals = pos.size * 21 * 3
    for t, s in results.items():
        print(f"threads={t}: {s:.3f} s median of {args.repeats}  ({evals / s / 1e6:.1f} M revaluations/s)")
    if len(results) > 1:
        print(f"speed-up 1 -> {max(results)} threads: {results[1] / results[max(results)]:.2f}x")


if __name__ == "__main__":
    main()
