"""Monte Carlo: closed forms, antithetics, reproducibility across thread counts."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from shardex.options import greeks
from shardex.options.montecarlo import geometric_asian_price, mc_price


@pytest.mark.parametrize(("k", "c"), [(100.0, True), (80.0, False), (130.0, True)])
def test_european_matches_black76_within_4_standard_errors(k, c):
    res = mc_price(100.0, k, 0.5, 0.8, c, n_paths=200_000, seed=42)
    exact = greeks(100.0, k, 0.5, 0.8, c)["price"]
    assert abs(res.price - exact) < 4 * res.stderr
    assert res.stderr < 0.01 * exact + 0.01


def test_antithetic_reduces_the_standard_error():
    plain = mc_price(100.0, 100.0, 1.0, 0.5, True, n_paths=100_000, antithetic=False, seed=1)
    anti = mc_price(100.0, 100.0, 1.0, 0.5, True, n_paths=100_000, antithetic=True, seed=1)
    assert anti.stderr < 0.8 * plain.stderr


def test_geometric_asian_matches_closed_form_and_arithmetic_is_above():
    geo = mc_price(100.0, 100.0, 1.0, 0.6, True, payoff="asian_geometric", n_steps=12, n_paths=100_000, seed=7)
    exact = geometric_asian_price(100.0, 100.0, 1.0, 0.6, True, 12)
    assert abs(geo.price - exact) < 4 * geo.stderr
    arith = mc_price(100.0, 100.0, 1.0, 0.6, True, payoff="asian", n_steps=12, n_paths=100_000, seed=7)
    assert arith.price > geo.price  # AM >= GM path by path
    assert arith.price < greeks(100.0, 100.0, 1.0, 0.6, True)["price"]  # averaging lowers the vol


def test_reproducible_whatever_the_thread_count():
    old = numba.get_num_threads()
    results = []
    try:
        for n in sorted({1, old}):
            numba.set_num_threads(n)
            results.append(mc_price(100.0, 95.0, 0.3, 0.7, False, payoff="asian", n_steps=5, n_paths=50_000, seed=9))
    finally:
        numba.set_num_threads(old)
    assert all(r == results[0] for r in results)
    other = mc_price(100.0, 95.0, 0.3, 0.7, False, payoff="asian", n_steps=5, n_paths=50_000, seed=10)
    assert other.price != results[0].price


def test_bad_arguments():
    with pytest.raises(ValueError, match="payoff"):
        mc_price(100.0, 100.0, 1.0, 0.5, True, payoff="lookback")
    with pytest.raises(ValueError):
        mc_price(100.0, 100.0, 0.0, 0.5, True)
    assert np.isfinite(mc_price(100.0, 100.0, 1.0, 0.5, True, n_paths=5000).price)
