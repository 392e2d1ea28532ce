"""Options benchmark: shardex against every peer that installs, on the same inputs, in one run.

Besides wall-clock options/s, every row reports CPU nanoseconds per option
(process time summed over all threads): on a shared machine the wall clock
depends on what else runs, the CPU time much less.

    bash bench/setup_options_peers.sh          # once: peers' venvs under bench/.venvs/
    python bench/bench_options.py [--n 1000000] [--repeats 5] [--json]

Workload: the issue's grid (moneyness e^-1.2..e^1.2, 1 hour..3 years, vol
5 %..250 %, calls and puts), seeded.  "Greeks" = price + delta, gamma, vega,
theta, rho.  Vectorized peers get all n options; per-option peers (vollib,
QuantLib) a prefix of 20,000 / 5,000.  Each timing is the median of
``--repeats`` runs after a warm-up; ratios are shardex / peer.  Errors are
measured against shardex's mpmath-checked values (prices: relative, with a
1e-14 F floor; IV: absolute, on invertible options only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
PEERS = {  # peer -> venv (None: this interpreter)
    "numpy_scipy": None,
    "pyvolr": "options-peers",
    "opengreeks": "options-og",
    "py_vollib_vectorized": "options-pvv",
    "vollib": "options-peers",
    "quantlib": "options-peers",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-slow", type=int, default=20_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset")
    args = ap.parse_args()

    import numba

    from shardex.options import greeks, implied_vol
    from shardex.options._bench import _median_time, make_inputs

    x = make_inputs(args.n)
    a = (x["forward"], x["strike"], x["t"], x["vol"], x["is_call"])
    t0 = time.perf_counter()
    g = greeks(*a)  # first call: JIT or cache load
    first_call = time.perf_counter() - t0
    price = g["price"]
    t_g = _median_time(lambda: greeks(*a), args.repeats)
    t_iv = _median_time(lambda: implied_vol(price, *a[:3], x["is_call"]), args.repeats)
    c0 = time.process_time()
    greeks(*a)
    c1 = time.process_time()
    implied_vol(price, *a[:3], x["is_call"])
    c2 = time.process_time()
    vol = implied_vol(price, *a[:3], x["is_call"])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        invertible = (price > 1e-290) & (np.finfo(float).eps * price / (g["vega"] * 100) < 1e-12)
    rows = [{"peer": "shardex", "greeks_per_s": args.n / t_g, "iv_per_s": args.n / t_iv,
             "greeks_cpu_ns": (c1 - c0) / args.n * 1e9, "iv_cpu_ns": (c2 - c1) / args.n * 1e9,
             "price_err": 0.0, "iv_err": float(np.nanmax(np.abs(vol - x["vol"])[invertible]))}]
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    inputs = out_dir / "options_inputs.npz"
    np.savez(inputs, **x, price=price, n_slow=args.n_slow)
    scale = np.maximum(np.abs(price), 1e-8 * x["forward"])
    for peer in args.peers.split(","):
        venv = PEERS[peer]
        py = sys.executable if venv is None else str(VENVS / venv / "bin" / "python")
        if not Path(py).exists():
            rows.append({"peer": peer, "error": f"venv {venv} missing: run bench/setup_options_peers.sh"})
            continue
        proc = subprocess.run([py, str(HERE / "options_peer_worker.py"), peer, str(inputs), str(args.repeats)],
                              capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0:
            rows.append({"peer": peer, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]})
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        arr = np.load(str(inputs).replace(".npz", f".{peer}.out.npz"))
        if "price" in arr:
            p = arr["price"]
            m = p.size
            r["price_err"] = float(np.nanmax(np.abs(p - price[:m]) / scale[:m]))
        if "iv" in arr:
            iv = arr["iv"]
            m = iv.size
            sel = invertible[:m] & np.isfinite(iv)
            r["iv_err"] = float(np.max(np.abs(iv[sel] - x["vol"][:m][sel]))) if sel.any() else None
            r["iv_failed_fraction"] = float(np.mean(~np.isfinite(iv[invertible[:m]])))
        rows.append(r)
    me = rows[0]
    for r in rows[1:]:
        if "greeks_per_s" in r:
            r["greeks_ratio"] = me["greeks_per_s"] / r["greeks_per_s"]
        if "iv_per_s" in r:
            r["iv_ratio"] = me["iv_per_s"] / r["iv_per_s"]
    meta = {"date": date.today().isoformat(), "machine": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "numba_threads": numba.get_num_threads(), "n": args.n,
            "repeats": args.repeats, "first_call_seconds": first_call, "iv_invertible_fraction": float(invertible.mean())}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}))
        return
    print(f"options bench {meta}")
    print(f"{'peer':22} {'greeks M/s':>11} {'x shardex':>10} {'IV M/s':>9} {'x shardex':>10} {'price err':>10} {'IV err':>9}"
          f" {'greeks cpu ns':>13} {'IV cpu ns':>10}")
    for r in rows:
        if "error" in r:
            print(f"{r['peer']:22} not run: {r['error']}")
            continue
        def f(key, fmt):
            v = r.get(key)
            return format(v, fmt) if isinstance(v, (int, float)) else "-"
        print(f"{r['peer']:22} {f('greeks_per_s', '11.4g') if 'greeks_per_s' not in r else format(r['greeks_per_s'] / 1e6, '11.3f')}"
              f" {f('greeks_ratio', '10.1f')} {format(r['iv_per_s'] / 1e6, '9.3f') if 'iv_per_s' in r else '        -'}"
              f" {f('iv_ratio', '10.1f')} {f('price_err', '10.1e')} {f('iv_err', '9.1e')}"
              f" {f('greeks_cpu_ns', '13.1f')} {f('iv_cpu_ns', '10.1f')}")


if __name__ == "__main__":
    main()
