"""``shardex bench options``: throughput of the kernels against in-process peers.

Inputs are the issue's grid (moneyness e^-1.2..e^1.2, 1 hour..3 years, vol
5 %..250 %, both types), seeded.  Timings are the median of ``repeats`` runs
after one warm-up call (so JIT compilation is not timed).  Peers that are not
installed report ``None``.  ``bench/bench_options.py`` adds the peers that
need their own virtual environments (pyvolr, opengreeks, py_vollib_vectorized).
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np

from shardex.options.api import greeks, implied_vol


def make_inputs(n: int, seed: int = 2024) -> dict[str, np.ndarray]:
    """The benchmark grid: forward, strike, t, vol, is_call arrays of length n."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(50.0, 150_000.0, n)
    return {"forward": f, "strike": f * np.exp(rng.uniform(-1.2, 1.2, n)),
            "t": np.exp(rng.uniform(math.log(1 / 8760), math.log(3.0), n)), "vol": rng.uniform(0.05, 2.5, n),
            "is_call": rng.random(n) < 0.5}


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def numpy_greeks(f, k, t, v, c):
    """The plain vectorized numpy/scipy peer: price and five Greeks (same units as shardex)."""
    from scipy.special import ndtr

    st = np.sqrt(t)
    s = v * st
    d1 = np.log(f / k) / s + 0.5 * s
    d2 = d1 - s
    sign = np.where(c, 1.0, -1.0)
    n1, n2 = ndtr(sign * d1), ndtr(sign * d2)
    pdf = np.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    price = sign * (f * n1 - k * n2)
    delta = sign * n1
    gamma = pdf / (f * s)
    vega = f * pdf * st / 100
    theta = -f * pdf * v / (2 * st) / 365
    rho = sign * k * t * n2 / 100
    return price, delta, gamma, vega, theta, rho


def run_bench(n: int = 1_000_000, repeats: int = 5, n_slow: int = 20_000) -> dict:
    """Measure and return the keys of the issue (options/s; errors)."""
    import numba

    x = make_inputs(n)
    args = (x["forward"], x["strike"], x["t"], x["vol"], x["is_call"])
    res: dict = {"n": n, "threads": numba.get_num_threads()}
    res["greeks_options_per_second"] = n / _median_time(lambda: greeks(*args), repeats)
    prices = greeks(*args)["price"]
    res["iv_options_per_second"] = n / _median_time(lambda: implied_vol(prices, *args[:3], x["is_call"]), repeats)
    g = greeks(*args)
    vol, codes = implied_vol(prices, *args[:3], x["is_call"], return_codes=True)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        invertible = (prices > 1e-290) & (np.finfo(float).eps * prices / (g["vega"] * 100) < 1e-12)
    res["iv_max_abs_error"] = float(np.nanmax(np.abs(vol[invertible] - x["vol"][invertible])))
    res["iv_invertible_fraction"] = float(invertible.mean())
    try:
        numpy_greeks(*(a[:1000] for a in args))
        res["numpy_options_per_second"] = n / _median_time(lambda: numpy_greeks(*args), repeats)
    except ImportError:
        res["numpy_options_per_second"] = None
    n_slow = min(n_slow, n)
    sub = {key: a[:n_slow] for key, a in x.items()}
    try:
        import QuantLib as ql

        def ql_all():
            out = np.empty((n_slow, 6))
            for i in range(n_slow):
                f, kk, tt, vv, cc = (float(sub[key][i]) for key in ("forward", "strike", "t", "vol", "is_call"))
                calc = ql.BlackCalculator(ql.PlainVanillaPayoff(ql.Option.Call if cc else ql.Option.Put, kk), f,
                                          vv * math.sqrt(tt), 1.0)
                out[i] = (calc.value(), calc.deltaForward(), calc.gammaForward(), calc.vega(tt) / 100,
                          calc.theta(f, tt) / 365, calc.rho(tt) / 100)
            return out

        t_ql = _median_time(ql_all, max(1, repeats // 2))
        res["quantlib_options_per_second"] = n_slow / t_ql
        ref = ql_all()
        ours = greeks(sub["forward"], sub["strike"], sub["t"], sub["vol"], sub["is_call"])
        mine = np.column_stack([ours[key] for key in ("price", "delta", "gamma", "vega", "theta", "rho")])
        # relative, with QuantLib's own far-wing cancellation floor of 1e-14 F (see tests)
        scale = np.maximum(np.abs(ref), 1e-8 * sub["forward"][:, None])
        res["max_rel_error_vs_quantlib"] = float(np.max(np.abs(mine - ref) / scale))
    except ImportError:
        res["quantlib_options_per_second"] = None
        res["max_rel_error_vs_quantlib"] = None
    try:
        from vollib.black import black as vb
        from vollib.black.greeks.analytical import delta as vd, gamma as vg, rho as vr, theta as vt, vega as vv

        m = min(n_slow, 5000)

        def vollib_all():
            for i in range(m):
                fl = "c" if sub["is_call"][i] else "p"
                a = (fl, float(sub["forward"][i]), float(sub["strike"][i]), float(sub["t"][i]), 0.0, float(sub["vol"][i]))
                vb(*a), vd(*a), vg(*a), vv(*a), vt(*a), vr(*a)

        res["vollib_options_per_second"] = m / _median_time(vollib_all, 1)
    except ImportError:
        res["vollib_options_per_second"] = None
    if res["numpy_options_per_second"]:
        res["ratio_vs_numpy"] = res["greeks_options_per_second"] / res["numpy_options_per_second"]
    return res
