"""Implied volatility: round trips to 1e-10, bounds, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shardex.options import NoArbitrageBoundError, InvalidOptionInputError, OptionCode, greeks, implied_vol

from options_mp import black76_mp
from options_strategies import HOUR, expiries, forwards, log_moneyness, random_grid, vols


def _invertible(price, vega_per_point, vol):
    """Enough time value: one ulp of the price moves the vol by < 1e-12."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return (price > 1e-290) & (
            np.finfo(float).eps * price / (vega_per_point * 100.0) < 1e-12 * np.maximum(vol, 1.0)
        )


def test_round_trip_on_the_issue_grid():
    grid = random_grid(20_000, seed=23)
    args = (grid["forward"], grid["strike"], grid["t"])
    g = greeks(*args, grid["vol"], grid["is_call"])
    vol, codes = implied_vol(g["price"], *args, grid["is_call"], return_codes=True)
    ok = _invertible(g["price"], g["vega"], grid["vol"])
    assert ok.mean() > 0.6
    assert np.all(codes[ok] == OptionCode.OK)
    assert np.max(np.abs(vol[ok] - grid["vol"][ok])) < 1e-10
    # where the time value is lost, the answer is NaN with a reason or still close, never wild
    bad = codes != OptionCode.OK
    assert np.all(np.isnan(vol[bad]))
    assert set(np.unique(codes[bad])) <= {OptionCode.NO_TIME_VALUE}


def test_round_trip_against_mpmath_prices():
    """Invert 50-digit prices rounded to double: the error is the price's rounding only."""
    grid = random_grid(300, seed=29)
    for i in range(300):
        f, k, t, v, c = (grid[key][i] for key in ("forward", "strike", "t", "vol", "is_call"))
        price, _d, _g, vega, *_ = black76_mp(f, k, t, v, c)
        price, vega = float(price), float(vega)
        if not _invertible(np.array(price), np.array(vega), np.array(v)):
            continue
        assert abs(implied_vol(price, f, k, t, c) - v) < 1e-10


@pytest.mark.parametrize("t", [HOUR, 1.0 / 365.0, 0.25, 1.0, 3.0])
@pytest.mark.parametrize("lm", [-1.2, -0.6, -0.05, 0.0, 0.05, 0.6, 1.2])
@pytest.mark.parametrize("v", [0.05, 0.3, 1.0, 2.5])
def test_extremes_of_strike_and_expiry(t, lm, v):
    f = 9350.0
    k = f * math.exp(lm)
    for c in (True, False):
        g = greeks(f, k, t, v, c)
        if not _invertible(np.array(g["price"]), np.array(g["vega"]), np.array(v)):
            continue
        assert abs(implied_vol(g["price"], f, k, t, c) - v) < 1e-10


@settings(max_examples=300, deadline=None)
@given(forwards, log_moneyness, expiries, vols, st.booleans(), st.sampled_from([0.0, 0.03]))
def test_round_trip_property(f, lm, t, v, c, r):
    k = f * math.exp(lm)
    g = greeks(f, k, t, v, c, r)
    assume(_invertible(np.array(g["price"] * math.exp(r * t)), np.array(g["vega"] * math.exp(r * t)), np.array(v)))
    assert implied_vol(g["price"], f, k, t, c, r) == pytest.approx(v, abs=1e-10)


def test_inverse_prices_in_coin():
    f, k, t = 9352.58, 9250.0, 0.0219
    coin = greeks(f, k, t, 0.7687, False, inverse=True)["price"]
    assert implied_vol(coin, f, k, t, False, inverse=True) == pytest.approx(0.7687, abs=1e-12)


def test_prices_outside_bounds_are_nan_with_a_reason():
    f, k, t = 100.0, 90.0, 0.5
    prices = np.array([5.0, 10.0, 100.0, 150.0, 12.0, np.nan])  # below, at intrinsic, at F, above F, ok, nan
    vol, codes = implied_vol(prices, f, k, t, True, return_codes=True)
    assert codes.tolist() == [
        OptionCode.PRICE_BELOW_INTRINSIC,
        OptionCode.NO_TIME_VALUE,
        OptionCode.PRICE_ABOVE_UPPER_BOUND,
        OptionCode.PRICE_ABOVE_UPPER_BOUND,
        OptionCode.OK,
        OptionCode.NON_FINITE_INPUT,
    ]
    assert np.isnan(vol[[0, 1, 2, 3, 5]]).all() and vol[4] > 0
    put_vol, put_codes = implied_vol(np.array([-1.0, 90.0]), f, k, t, False, return_codes=True)
    assert put_codes.tolist() == [OptionCode.PRICE_BELOW_INTRINSIC, OptionCode.PRICE_ABOVE_UPPER_BOUND]


def test_scalar_errors_are_specific():
    with pytest.raises(NoArbitrageBoundError, match="intrinsic"):
        implied_vol(5.0, 100.0, 90.0, 0.5, True)
    with pytest.raises(NoArbitrageBoundError, match="upper bound"):
        implied_vol(100.0, 100.0, 90.0, 0.5, True)
    with pytest.raises(InvalidOptionInputError, match="expired"):
        implied_vol(1.0, 100.0, 90.0, 0.0, True)
    with pytest.raises(InvalidOptionInputError, match="forward"):
        implied_vol(1.0, -100.0, 90.0, 0.5, True)


def test_iv_is_monotone_in_price():
    f, k, t = 100.0, 120.0, 0.3
    prices = np.linspace(0.01, 50.0, 500)
    vol = implied_vol(prices, f, k, t, True)
    assert np.all(np.diff(vol) > 0)
