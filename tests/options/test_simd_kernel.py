"""The vectorized Black-76 kernel and its branch-free exp/log against mpmath and the scalar kernel."""

from __future__ import annotations

import math

import mpmath
import numpy as np
from numba import njit

from shardex.options._black import (
    _BLOCK,
    black76_kernel,
    black76_simd_kernel,
    black76_simd_price_kernel,
    mills_ratio,
)
from shardex.options._vmath import mills_table, vexp, vlog

from options_strategies import random_grid

FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "volga")


@njit(cache=True)
def _map_exp(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = vexp(a[i])
    return out


@njit(cache=True)
def _map_log(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = vlog(a[i])
    return out


@njit(cache=True)
def _map_mills(a):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = mills_table(a[i])
    return out


def _ulps(got: float, exact: mpmath.mpf) -> float:
    e = float(exact)
    return abs(got - e) / math.ulp(e)


def test_vexp_is_within_one_ulp_of_mpmath():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-708.0, 709.0, 3000), rng.uniform(-2.0, 2.0, 3000), [0.0, -0.0, 1.0, -1.0]])
    got = _map_exp(x)
    with mpmath.workdps(40):
        worst = max(_ulps(g, mpmath.exp(mpmath.mpf(float(v)))) for g, v in zip(got, x))
    assert worst <= 1.0, worst
    assert _map_exp(np.array([0.0]))[0] == 1.0
    assert list(_map_exp(np.array([-760.0, -1e300, -800.0]))) == [0.0, 0.0, 0.0]
    assert _map_exp(np.array([-744.0]))[0] == math.exp(-744.0)  # subnormal: one rounding
    assert _map_exp(np.array([710.0]))[0] == math.inf


def test_vlog_is_within_one_ulp_of_mpmath():
    rng = np.random.default_rng(6)
    x = np.concatenate([np.exp(rng.uniform(-700.0, 700.0, 3000)), np.exp(rng.uniform(-1.3, 1.3, 3000)),
                        [1.0, 2.0, 0.5, math.sqrt(2.0), math.nextafter(math.sqrt(2.0), 0.0), 2.2250738585072014e-308,
                         1.7976931348623157e308]])
    got = _map_log(x)
    with mpmath.workdps(40):
        worst = max(_ulps(g, mpmath.log(mpmath.mpf(float(v)))) if v != 1.0 else abs(g) for g, v in zip(got, x))
    assert worst <= 1.0, worst
    assert _map_log(np.array([1.0]))[0] == 0.0


def test_mills_table_is_the_scalar_mills_ratio_below_40():
    t = np.random.default_rng(7).uniform(0.0, 40.0, 20_000)
    np.testing.assert_array_equal(_map_mills(t), np.array([mills_ratio(v) for v in t]))


def _run(kernel, F, K, T, V, C, r, second=True):
    n = F.shape[0]
    out = {key: np.full(n if (second or key not in ("vanna", "volga")) else 0, -1.0) for key in FIELDS}
    codes = np.full(n, 77, dtype=np.uint8)
    kernel(F, K, T, V, C, r, *(out[key] for key in FIELDS), codes)
    return out, codes


def _assert_close(a, b, rel):
    both_nan = np.isnan(a) & np.isnan(b)
    scale = np.maximum(np.abs(b), 1e-300)
    diff = np.where(both_nan, 0.0, np.abs(a - b) / scale)
    assert np.all(diff <= rel), float(np.nanmax(diff))


def test_simd_kernel_agrees_with_scalar_kernel_on_the_grid():
    n = 3 * _BLOCK + 17  # several blocks and a ragged last one
    g = random_grid(n, seed=21)
    F, K, T, V, C = g["forward"], g["strike"], g["t"], g["vol"], g["is_call"]
    r = np.where(np.arange(n) % 4 == 0, 0.03, 0.0)
    old, old_codes = _run(black76_kernel, F, K, T, V, C, r)
    new, new_codes = _run(black76_simd_kernel, F, K, T, V, C, r)
    np.testing.assert_array_equal(new_codes, old_codes)
    for key in FIELDS:
        # both are ~1e-12 from mpmath; they differ by a few ulp of d amplified by d^2 in the far wings
        _assert_close(new[key], old[key], 1e-11)
    # a scalar rate passed as a 1-element array is the same as the full array of it
    full, _ = _run(black76_simd_kernel, F, K, T, V, C, np.full(n, 0.03))
    one, _ = _run(black76_simd_kernel, F, K, T, V, C, np.array([0.03]))
    for key in FIELDS:
        np.testing.assert_array_equal(one[key], full[key])
    # without second-order outputs the first-order ones do not change
    first, _ = _run(black76_simd_kernel, F, K, T, V, C, r, second=False)
    for key in FIELDS[:6]:
        np.testing.assert_array_equal(first[key], new[key])
    price = np.empty(n)
    codes = np.empty(n, dtype=np.uint8)
    black76_simd_price_kernel(F, K, T, V, C, r, price, codes)
    np.testing.assert_array_equal(price, new["price"])
    np.testing.assert_array_equal(codes, new_codes)


def test_elements_the_simd_pass_cannot_take_are_redone_by_the_scalar_kernel():
    nan, inf = math.nan, math.inf
    rows = [  # F, K, T, vol, is_call, r
        (100.0, 100.0, 1.0, 0.2, True, 0.0),  # ordinary
        (nan, 100.0, 1.0, 0.2, True, 0.0), (100.0, inf, 1.0, 0.2, False, 0.0), (-1.0, 100.0, 1.0, 0.2, True, 0.0),
        (100.0, 0.0, 1.0, 0.2, True, 0.0), (100.0, 100.0, 0.0, 0.2, True, 0.0), (100.0, 100.0, 1.0, -0.1, True, 0.0),
        (100.0, 100.0, 1.0, nan, True, 0.0), (100.0, 100.0, 1.0, 0.2, True, inf),
        (1e300, 1e-10, 1.0, 0.5, True, 0.0), (1e-300, 1e10, 1.0, 0.5, False, 0.0),  # F/K overflows / subnormal
        (1.0, math.exp(600.0), 900.0, 2.0, True, 0.0), (1.0, math.exp(700.0), 900.0, 2.0, False, 0.01),  # |d1| < 40 <= |d2|
        (100.0, 300.0, 1e-12, 0.3, True, 0.0), (100.0, 30.0, 1e-12, 0.3, False, 0.0),  # both |d| far beyond 40
        (100.0, 100.0 * math.exp(-1.2), 1.0 / 8760, 0.05, True, 0.0),
    ]
    cols = list(zip(*rows))
    F, K, T, V = (np.array(c, dtype=np.float64) for c in cols[:4])
    C = np.array(cols[4], dtype=np.bool_)
    r = np.array(cols[5], dtype=np.float64)
    old, old_codes = _run(black76_kernel, F, K, T, V, C, r)
    new, new_codes = _run(black76_simd_kernel, F, K, T, V, C, r)
    np.testing.assert_array_equal(new_codes, old_codes)
    assert new_codes[0] == 0 and np.all(new_codes[1:9] != 0)
    for key in FIELDS:
        _assert_close(new[key], old[key], 1e-11)
        assert np.all(np.isnan(new[key][new_codes != 0]))
