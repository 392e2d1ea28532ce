"""Black-76 prices and Greeks against mpmath (50 digits) and QuantLib's BlackCalculator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardex.options import OptionCode, greeks
from shardex.options.api import black76_price

from options_mp import black76_mp
from options_strategies import expiries, forwards, log_moneyness, random_grid, rates, vols

KEYS = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "volga")


def test_prices_and_greeks_match_mpmath_to_1e10_relative():
    grid = random_grid(600, seed=11)
    rate = np.where(np.arange(600) % 3 == 0, 0.05, 0.0)  # a third discounted
    g = greeks(grid["forward"], grid["strike"], grid["t"], grid["vol"], grid["is_call"], rate, second_order=True)
    assert np.all(g.codes == OptionCode.OK)
    worst = dict.fromkeys(KEYS, 0.0)
    for i in range(600):
        ref = black76_mp(grid["forward"][i], grid["strike"][i], grid["t"][i], grid["vol"][i], grid["is_call"][i], rate[i])
        for key, value in zip(KEYS, ref):
            value = float(value)
            if abs(value) < 1e-290:  # underflows to (sub)normal zero in double precision
                assert abs(g[key][i]) < 1e-280
                continue
            worst[key] = max(worst[key], abs(g[key][i] - value) / abs(value))
    assert max(worst.values()) < 1e-10, worst


def test_price_only_kernel_agrees_with_greeks():
    grid = random_grid(2000, seed=3)
    args = (grid["forward"], grid["strike"], grid["t"], grid["vol"], grid["is_call"])
    np.testing.assert_array_equal(black76_price(*args), greeks(*args)["price"])


def test_matches_quantlib_black_calculator_to_1e6():
    ql = pytest.importorskip("QuantLib")
    grid = random_grid(400, seed=5)
    g = greeks(grid["forward"], grid["strike"], grid["t"], grid["vol"], grid["is_call"])
    for i in range(400):
        f, k, t, v, c = (grid[key][i] for key in ("forward", "strike", "t", "vol", "is_call"))
        payoff = ql.PlainVanillaPayoff(ql.Option.Call if c else ql.Option.Put, float(k))
        calc = ql.BlackCalculator(payoff, float(f), float(v * math.sqrt(t)), 1.0)
        pairs = {
            "price": calc.value(),
            "delta": calc.deltaForward(),
            "gamma": calc.gammaForward(),
            "vega": calc.vega(float(t)) / 100.0,
            "theta": calc.theta(float(f), float(t)) / 365.0,
            "rho": calc.rho(float(t)) / 100.0,
        }
        for key, ref in pairs.items():
            # 1e-6 relative; in the far wings QuantLib's own cancellation error
            # (~1e-15 F absolute, checked against mpmath) sets a floor of 1e-14 F
            tol = 1e-6 * max(abs(ref), 1e-8 * f)
            assert abs(g[key][i] - ref) <= tol, (key, i, g[key][i], ref)


@settings(max_examples=200, deadline=None)
@given(forwards, log_moneyness, expiries, vols, rates)
def test_put_call_parity(f, lm, t, v, r):
    k = f * math.exp(lm)
    call = greeks(f, k, t, v, True, r)
    put = greeks(f, k, t, v, False, r)
    disc = math.exp(-r * t)
    assert call["price"] - put["price"] == pytest.approx(disc * (f - k), abs=1e-12 * max(f, k))
    assert call["delta"] - put["delta"] == pytest.approx(disc, abs=1e-12)
    assert call["gamma"] == pytest.approx(put["gamma"], rel=1e-12, abs=1e-300)
    assert call["vega"] == pytest.approx(put["vega"], rel=1e-12, abs=1e-300)


@settings(max_examples=100, deadline=None)
@given(forwards, log_moneyness, expiries, vols, st.booleans())
def test_price_is_within_no_arbitrage_bounds(f, lm, t, v, c):
    k = f * math.exp(lm)
    p = greeks(f, k, t, v, c)["price"]
    intrinsic = max(f - k, 0.0) if c else max(k - f, 0.0)
    assert intrinsic - 1e-12 * f <= p <= (f if c else k)


def test_known_value_and_units():
    g = greeks(100.0, 100.0, 1.0, 0.2, True)
    # textbook ATM value: F (2 N(s/2) - 1)
    assert g["price"] == pytest.approx(100.0 * math.erf(0.1 / math.sqrt(2.0)), rel=1e-14)
    bumped = greeks(100.0, 100.0, 1.0, 0.21, True)["price"]
    assert bumped - g["price"] == pytest.approx(g["vega"], rel=1e-2)  # vega is per vol point
    later = greeks(100.0, 100.0, 1.0 - 1.0 / 365.0, 0.2, True)["price"]
    assert later - g["price"] == pytest.approx(g["theta"], rel=1e-2)  # theta is per calendar day


def test_inverse_price_and_premium_adjusted_delta():
    f, k, t, v = 9352.58, 9250.0, 0.02, 0.7687
    usd = greeks(f, k, t, v, False)
    coin = greeks(f, k, t, v, False, inverse=True)
    assert coin["price"] == pytest.approx(usd["price"] / f, rel=1e-15)
    assert coin["delta"] == usd["delta"]
    assert coin["delta_premium_adjusted"] == pytest.approx(usd["delta"] - usd["price"] / f, rel=1e-14)
    # the premium-adjusted delta is the derivative of the coin value times F: d(V/F)/dF * F = delta - V/F
    h = 1e-3
    up = greeks(f + h, k, t, v, False, inverse=True)["price"]
    dn = greeks(f - h, k, t, v, False, inverse=True)["price"]
    assert (up - dn) / (2 * h) * f == pytest.approx(coin["delta_premium_adjusted"], rel=1e-6)


def test_broadcasting_shapes():
    g = greeks(np.array([[90.0], [110.0]]), np.array([80.0, 100.0, 120.0]), 0.5, 0.6, "call")
    assert g["price"].shape == (2, 3) and g.codes.shape == (2, 3)
    assert np.all(np.diff(g["price"], axis=1) < 0)  # calls fall as the strike rises
    mixed = greeks(100.0, 100.0, 1.0, 0.2, np.array(["C", "put"]))
    assert mixed["delta"][0] > 0 > mixed["delta"][1]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((np.nan, 100.0, 1.0, 0.2), OptionCode.NON_FINITE_INPUT),
        ((-1.0, 100.0, 1.0, 0.2), OptionCode.NONPOSITIVE_FORWARD),
        ((100.0, 0.0, 1.0, 0.2), OptionCode.NONPOSITIVE_STRIKE),
        ((100.0, 100.0, 0.0, 0.2), OptionCode.EXPIRED),
        ((100.0, 100.0, -0.1, 0.2), OptionCode.EXPIRED),
        ((100.0, 100.0, 1.0, 0.0), OptionCode.NONPOSITIVE_VOL),
        ((100.0, 100.0, 1.0, np.inf), OptionCode.NON_FINITE_INPUT),
    ],
)
def test_bad_inputs_are_nan_with_a_code_in_arrays_and_raise_for_scalars(args, code):
    from shardex.options import InvalidOptionInputError

    arrays = [np.array([a, 100.0]) if i < 3 else np.array([a, 0.2]) for i, a in enumerate(args)]
    arrays[2] = np.array([args[2], 1.0])
    g = greeks(*arrays, True)
    assert g.codes.tolist() == [code, OptionCode.OK]
    assert all(math.isnan(g[key][0]) and math.isfinite(g[key][1]) for key in g)
    assert g.reasons() == {code.name: 1}
    with pytest.raises(InvalidOptionInputError) as err:
        greeks(*args, True)
    assert err.value.code == code and isinstance(err.value, ValueError)


def test_bad_option_type_is_a_clear_error():
    from shardex.options import InvalidOptionInputError

    with pytest.raises(InvalidOptionInputError, match="call' or 'put"):
        greeks(100.0, 100.0, 1.0, 0.2, "straddle")
