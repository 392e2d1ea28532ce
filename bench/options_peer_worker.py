"""One peer of bench_options.py, run inside that peer's own virtual environment.

usage: python options_peer_worker.py PEER INPUTS.npz REPEATS  -> one JSON line on stdout
Each peer prices (price + delta, gamma, vega, theta, rho) and inverts the same
inputs as shardex; per-option peers use the first `n_slow` options.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time

import numpy as np


CPU = {}


def timed(fn, repeats, key="greeks"):
    """Median wall time of ``repeats`` runs after a warm-up; CPU seconds per run go to CPU[key]."""
    out = fn()  # warm-up (and the values for the error check)
    ts, cs = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    CPU[key] = statistics.median(cs)
    return statistics.median(ts), out


def main() -> None:
    peer, path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    d = np.load(path)
    F, K, T, V, C, P = d["forward"], d["strike"], d["t"], d["vol"], d["is_call"], d["price"]
    n_slow = int(d["n_slow"])
    flags = np.where(C, "c", "p")
    res = {"peer": peer}
    r0 = np.zeros_like(F)
    if peer == "numpy_scipy":
        from scipy.special import ndtr

        def run():
            st = np.sqrt(T)
            s = V * st
            d1 = np.log(F / K) / s + 0.5 * s
            d2 = d1 - s
            sign = np.where(C, 1.0, -1.0)
            n1, n2 = ndtr(sign * d1), ndtr(sign * d2)
            pdf = np.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
            return (sign * (F * n1 - K * n2), sign * n1, pdf / (F * s), F * pdf * st / 100,
                    -F * pdf * V / (2 * st) / 365, sign * K * T * n2 / 100)

        t, out = timed(run, repeats)
        res.update(greeks_per_s=F.size / t, price=out[0])
    elif peer == "pyvolr":
        from pyvolr import black76 as b

        fl = flags.tolist()

        def run():
            b.greeks(fl, F, K, T, r0, V)
            return b.price(fl, F, K, T, r0, V)

        t, out = timed(run, repeats)
        res.update(greeks_per_s=F.size / t, price=np.asarray(out))
        t, iv = timed(lambda: b.implied_vol(P, fl, F, K, T, r0, on_error="ignore"), repeats, "iv")
        res.update(iv_per_s=F.size / t, iv=np.asarray(iv, dtype=float))
    elif peer == "opengreeks":
        from opengreeks import black76 as b

        # its array functions take one flag for the whole array: calls and puts go in two calls
        ci, pi = np.flatnonzero(C), np.flatnonzero(~C)
        parts = [(fl, idx, F[idx], K[idx], T[idx], V[idx], P[idx], r0[idx]) for fl, idx in (("c", ci), ("p", pi))]

        def run():
            out = np.empty(F.size)
            for fl, idx, f, k, tt, v, _p, r in parts:
                out[idx] = b.black_array(fl, f, k, tt, 0.0, v)
                for g in (b.delta_array, b.gamma_array, b.vega_array, b.theta_array, b.rho_array):
                    try:
                        g(fl, f, k, tt, 0.0, v)
                    except TypeError:  # gamma and vega take no flag
                        g(f, k, tt, 0.0, v)
            return out

        t, out = timed(run, repeats)
        res.update(greeks_per_s=F.size / t, price=np.asarray(out))

        def inv():
            out = np.empty(F.size)
            for fl, idx, f, k, tt, _v, p, r in parts:
                out[idx] = b.implied_volatility_array(p, f, k, 0.0, tt, fl)
            return out

        t, iv = timed(inv, repeats, "iv")
        res.update(iv_per_s=F.size / t, iv=np.asarray(iv, dtype=float))
    elif peer == "py_vollib_vectorized":
        import py_vollib_vectorized as pvv

        fl = flags
        t, out = timed(lambda: (pvv.get_all_greeks(fl, F, K, T, r0, V, model="black", return_as="dict"),
                                pvv.vectorized_black(fl, F, K, T, r0, V, return_as="numpy"))[1], repeats)
        res.update(greeks_per_s=F.size / t, price=np.asarray(out).ravel())
        t, iv = timed(lambda: pvv.vectorized_implied_volatility_black(P, F, K, r0, T, fl, on_error="ignore",
                                                                      return_as="numpy"), repeats, "iv")
        res.update(iv_per_s=F.size / t, iv=np.asarray(iv, dtype=float).ravel())
    elif peer == "vollib":
        from vollib.black import black
        from vollib.black.greeks.analytical import delta, gamma, rho, theta, vega
        from vollib.black.implied_volatility import implied_volatility

        m = min(n_slow, 5000)

        def run():
            out = np.empty(m)
            for i in range(m):
                a = (flags[i], float(F[i]), float(K[i]), float(T[i]), 0.0, float(V[i]))
                out[i] = black(*a)
                delta(*a), gamma(*a), vega(*a), theta(*a), rho(*a)
            return out

        t, out = timed(run, 1)
        res.update(greeks_per_s=m / t, price=out, n_used=m)

        def inv():
            out = np.full(m, np.nan)
            for i in range(m):
                try:
                    out[i] = implied_volatility(float(P[i]), float(F[i]), float(K[i]), 0.0, float(T[i]), flags[i])
                except Exception:  # vollib raises below intrinsic / above max
                    pass
            return out

        t, iv = timed(inv, 1, "iv")
        res.update(iv_per_s=m / t, iv=iv)
    elif peer == "quantlib":
        import QuantLib as ql

        m = n_slow

        def run():
            out = np.empty(m)
            for i in range(m):
                f, k, tt, v = float(F[i]), float(K[i]), float(T[i]), float(V[i])
                c = ql.BlackCalculator(ql.PlainVanillaPayoff(ql.Option.Call if C[i] else ql.Option.Put, k), f,
                                       v * math.sqrt(tt), 1.0)
                out[i] = c.value()
                c.deltaForward(), c.gammaForward(), c.vega(tt), c.theta(f, tt), c.rho(tt)
            return out

        t, out = timed(run, 1)
        res.update(greeks_per_s=m / t, price=out, n_used=m)
    else:
        raise SystemExit(f"unknown peer {peer}")
    m_used = res.get("n_used", F.size)
    res["greeks_cpu_ns"] = CPU["greeks"] / m_used * 1e9
    if "iv" in CPU:
        res["iv_cpu_ns"] = CPU["iv"] / m_used * 1e9
    # the arrays go back through a file; only scalars on stdout
    arrays = {k: res.pop(k) for k in ("price", "iv") if k in res}
    np.savez(path.replace(".npz", f".{peer}.out.npz"), **arrays)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
