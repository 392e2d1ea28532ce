"""Portfolio Greeks and scenario-grid margin."""

from __future__ import annotations

import numpy as np
import pytest

from shardex.options import greeks
from shardex.options.portfolio import (
    CALL,
    FUTURE,
    POSITION_DTYPE,
    PUT,
    ScenarioGrid,
    StandardMargin,
    portfolio_greeks,
    portfolio_margin,
    random_positions,
)


def _book(rows):
    pos = np.zeros(len(rows), dtype=POSITION_DTYPE)
    for i, r in enumerate(rows):
        pos[i] = r
    return pos


def test_greeks_aggregate_per_account():
    pos = _book([(7, 0, CALL, 100.0, 0.5, 0.6, 2.0, 1.0), (7, 0, PUT, 90.0, 0.5, 0.7, -3.0, 1.0),
                 (3, 0, FUTURE, 0.0, 0.0, 0.0, 5.0, 1.0)])
    g = portfolio_greeks(pos, [100.0])
    assert g["account"].tolist() == [3, 7]
    c = greeks(100.0, 100.0, 0.5, 0.6, True)
    p = greeks(100.0, 90.0, 0.5, 0.7, False)
    assert g["delta"][1] == pytest.approx(2 * c["delta"] - 3 * p["delta"], rel=1e-13)
    assert g["vega"][1] == pytest.approx(2 * c["vega"] - 3 * p["vega"], rel=1e-13)
    assert g["delta"][0] == 5.0 and g["gamma"][0] == 0.0


def test_margin_is_worst_loss_plus_floor_by_brute_force():
    pos = _book([(1, 0, CALL, 100.0, 0.25, 0.8, -1.0, 1.0), (1, 0, PUT, 95.0, 0.25, 0.8, 1.0, 1.0),
                 (1, 1, PUT, 2000.0, 0.1, 0.9, -2.0, 0.1)])
    fwd = np.array([100.0, 2100.0])
    grid = ScenarioGrid(max_move=0.2, n_moves=9, vol_shocks=(-0.25, 0.0, 0.25), floor_rate=0.01)
    res = portfolio_margin(pos, fwd, {0: grid, 1: grid})
    expected = 0.0
    for u in (0, 1):
        rows = pos[pos["underlying"] == u]
        worst = 0.0
        for m in grid.moves:
            for s in grid.vol_shocks:
                pnl = sum(r["qty"] * r["contract_size"] * (
                    greeks(fwd[u] * (1 + m), r["strike"], r["t"], r["vol"] * (1 + s), r["kind"] == CALL)["price"]
                    - greeks(fwd[u], r["strike"], r["t"], r["vol"], r["kind"] == CALL)["price"]) for r in rows)
                worst = min(worst, pnl)
        floor = sum(0.01 * -r["qty"] * r["contract_size"] * fwd[u] for r in rows if r["qty"] < 0)
        expected += -worst + floor
    assert res["margin"][0] == pytest.approx(expected, rel=1e-12)


def test_standard_margin_fallback_without_a_grid():
    pos = _book([(1, 0, CALL, 110.0, 0.25, 0.8, -1.0, 1.0), (1, 0, CALL, 90.0, 0.25, 0.8, 1.0, 1.0)])
    res = portfolio_margin(pos, [100.0], {})
    v = greeks(100.0, 110.0, 0.25, 0.8, True)["price"]
    assert res["margin"][0] == pytest.approx(max(0.15 * 100 - 10, 0.10 * 100) + v)
    assert res["worst_loss"][0] == 0.0 and res["standard"][0] == res["margin"][0]
    assert portfolio_margin(pos, [100.0], {}, StandardMargin(0.3, 0.1))["margin"][0] > res["margin"][0]


def test_hedged_book_needs_less_margin_than_naked():
    naked = _book([(1, 0, CALL, 100.0, 0.25, 0.8, -10.0, 1.0)])
    hedged = _book([(1, 0, CALL, 100.0, 0.25, 0.8, -10.0, 1.0), (1, 0, FUTURE, 0.0, 0.0, 0.0, 5.0, 1.0)])
    grid = {0: ScenarioGrid()}
    assert portfolio_margin(hedged, [100.0], grid)["margin"][0] < portfolio_margin(naked, [100.0], grid)["margin"][0]


def test_parallel_result_does_not_depend_on_threads_or_order():
    import numba

    pos, fwd = random_positions(300, 20, seed=4)
    grids = {0: ScenarioGrid(), 1: ScenarioGrid(max_move=0.3)}
    ref = portfolio_margin(pos, fwd, grids)
    shuffled = pos[np.random.default_rng(1).permutation(pos.size)]
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = portfolio_margin(shuffled, fwd, grids)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(ref["account"], one["account"])
    np.testing.assert_allclose(ref["margin"], one["margin"], rtol=1e-12)


def test_bad_positions_raise():
    pos = _book([(1, 0, CALL, 100.0, 0.0, 0.8, -1.0, 1.0)])
    with pytest.raises(ValueError, match="t > 0"):
        portfolio_margin(pos, [100.0], {0: ScenarioGrid()})
    with pytest.raises(ValueError):
        ScenarioGrid(max_move=2.0)
