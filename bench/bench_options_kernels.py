"""A/B of the Black-76 price + Greeks kernels, interleaved in one process.

    python bench/bench_options_kernels.py [--n 1000000] [--rounds 15] [--json]

Rows: the scalar prange kernel (``black76_kernel``, libm exp/log, one option at a
time; what ``greeks`` ran before the SIMD kernel), the SIMD kernel
(``black76_simd_kernel``) and the numpy/scipy peer of ``shardex bench options``,
all on the issue's grid.  Kernel rows reuse preallocated outputs; the
``greeks()`` rows include the public API's allocation of the outputs.  Every
round runs each row once, in turn, so that a burst of load from other jobs on
a shared machine hits all rows alike; the figures are medians over rounds,
wall clock and CPU time (all threads) per option.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import numba

    from shardex.options import _black, greeks
    from shardex.options._bench import make_inputs, numpy_greeks

    n = args.n
    x = make_inputs(n)
    a = (x["forward"], x["strike"], x["t"], x["vol"], x["is_call"])
    out = [np.empty(n) for _ in range(6)] + [np.empty(0), np.empty(0), np.empty(n, dtype=np.uint8)]
    r_full = np.zeros(n)
    r_one = np.zeros(1)

    def old_api():  # what greeks() did before: rate materialised, scalar kernel, fresh outputs
        o = [np.empty(n) for _ in range(6)] + [np.empty(0), np.empty(0), np.empty(n, dtype=np.uint8)]
        _black.black76_kernel(*a, np.zeros(n), *o)

    rows = {
        "scalar kernel (before)": lambda: _black.black76_kernel(*a, r_full, *out),
        "SIMD kernel (now)": lambda: _black.black76_simd_kernel(*a, r_one, *out),
        "greeks() with scalar kernel (before)": old_api,
        "greeks() (now)": lambda: greeks(*a),
        "numpy/scipy peer (1 thread)": lambda: numpy_greeks(*a),
    }
    wall = {k: [] for k in rows}
    cpu = {k: [] for k in rows}
    for fn in rows.values():
        fn()  # compile / warm up
    for _ in range(args.rounds):
        for k, fn in rows.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    res = {k: {"options_per_second": n / statistics.median(wall[k]), "best_options_per_second": n / min(wall[k]),
               "cpu_ns_per_option": statistics.median(cpu[k]) / n * 1e9} for k in rows}
    meta = {"n": n, "rounds": args.rounds, "threads": numba.get_num_threads()}
    if args.json:
        print(json.dumps({"meta": meta, "rows": res}))
        return
    print(f"Black-76 price + 5 Greeks, {meta}")
    print(f"{'row':40} {'M/s median':>10} {'M/s best':>9} {'CPU ns/opt':>11}")
    for k, v in res.items():
        print(f"{k:40} {v['options_per_second'] / 1e6:10.1f} {v['best_options_per_second'] / 1e6:9.1f}"
              f" {v['cpu_ns_per_option']:11.1f}")


if __name__ == "__main__":
    main()
