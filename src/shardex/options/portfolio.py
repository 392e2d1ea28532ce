"""Portfolio Greeks and scenario-grid portfolio margin, in parallel across accounts.

Positions are rows of ``POSITION_DTYPE`` (any order; one call handles all
accounts).  Values are in the quote currency (USD) per contract times
``contract_size``; for inverse venues divide by the index price to get coins.

Portfolio margin of an account, per underlying it holds (no offsets between
underlyings): revalue every position at each scenario of that underlying's
``ScenarioGrid`` -- the forward moved by ``moves`` (relative, in steps to
+-max_move) combined with the volatility scaled by (1 + shock) for each of
``vol_shocks`` -- and take

    margin = max(0, -worst scenario P&L) + floor_rate * sum |short option notional|

An underlying without a grid falls back to the **standard margin** of short
options (``StandardMargin``: per short contract max(base_rate F - OTM amount,
min_rate F) + the option's value; futures: im_rate F per contract; long
options need nothing beyond their premium).  The risk engine can call
``portfolio_margin`` with its positions and marks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from shardex.options._black import black76_one

__all__ = ["POSITION_DTYPE", "CALL", "PUT", "FUTURE", "ScenarioGrid", "StandardMargin", "portfolio_greeks",
           "portfolio_margin"]

CALL, PUT, FUTURE = 0, 1, 2

POSITION_DTYPE = np.dtype([
    ("account", "<i8"),
    ("underlying", "<i4"),
    ("kind", "i1"),       # CALL, PUT or FUTURE (a delta-one position in the forward)
    ("strike", "<f8"),
    ("t", "<f8"),         # years to expiry
    ("vol", "<f8"),       # decimal implied vol (mark)
    ("qty", "<f8"),       # contracts, signed: negative is short
    ("contract_size", "<f8"),
])


@dataclass(frozen=True)
class ScenarioGrid:
    """Moves of the forward (relative) x shocks of the volatility (relative) for one underlying."""

    max_move: float = 0.15
    n_moves: int = 21
    vol_shocks: tuple[float, ...] = (-0.3, 0.0, 0.3)
    floor_rate: float = 0.01

    def __post_init__(self) -> None:
        if not (0 < self.max_move < 1) or self.n_moves < 1 or not self.vol_shocks:
            raise ValueError("a scenario grid needs 0 < max_move < 1, n_moves >= 1 and one vol shock at least")
        if min(self.vol_shocks) <= -1:
            raise ValueError("vol shocks are relative and must stay above -100 %")

    @property
    def moves(self) -> np.ndarray:
        """The relative moves of the forward, evenly spaced in [-max_move, +max_move]."""
        return np.linspace(-self.max_move, self.max_move, self.n_moves) if self.n_moves > 1 else np.zeros(1)


@dataclass(frozen=True)
class StandardMargin:
    """The fallback: margin of short options and futures without a scenario grid."""

    base_rate: float = 0.15
    min_rate: float = 0.10
    future_rate: float = 0.02


@njit(cache=True, nogil=True)
def _value(kind, F, K, T, vol):
    if kind == FUTURE:
        return F
    _c, p, _d, _g, _v, _t, _r, _va, _vo = black76_one(F, K, T, vol, kind == CALL, 0.0)
    return p


@njit(cache=True, nogil=True, parallel=True)
def _margin_kernel(offsets, under, kind, strike, t, vol, qty, csize, fwd, moves, n_moves, shocks, n_shocks, floor_rate,
                   has_grid, std, out_margin, out_loss, out_floor, out_std):
    n_acc = offsets.shape[0] - 1
    for a in prange(n_acc):
        lo, hi = offsets[a], offsets[a + 1]
        loss_total = 0.0
        floor_total = 0.0
        std_total = 0.0
        start = lo
        while start < hi:  # one underlying at a time (rows sorted by underlying within the account)
            u = under[start]
            end = start
            while end < hi and under[end] == u:
                end += 1
            F = fwd[u]
            if has_grid[u]:
                base = np.empty(end - start)  # today's values, once per position
                for p in range(start, end):
                    base[p - start] = _value(kind[p], F, strike[p], t[p], vol[p])
                worst = 0.0
                for i in range(n_moves[u]):
                    Fs = F * (1.0 + moves[u, i])
                    for j in range(n_shocks[u]):
                        s = 1.0 + shocks[u, j]
                        pnl = 0.0
                        for p in range(start, end):
                            pnl += qty[p] * csize[p] * (_value(kind[p], Fs, strike[p], t[p], vol[p] * s) - base[p - start])
                        if pnl < worst:
                            worst = pnl
                loss_total += -worst
                for p in range(start, end):
                    if kind[p] != FUTURE and qty[p] < 0:
                        floor_total += floor_rate[u] * (-qty[p]) * csize[p] * F
            else:
                for p in range(start, end):
                    n = abs(qty[p]) * csize[p]
                    if kind[p] == FUTURE:
                        std_total += std[2] * n * F
                    elif qty[p] < 0:
                        otm = max(strike[p] - F, 0.0) if kind[p] == CALL else max(F - strike[p], 0.0)
                        v = _value(kind[p], F, strike[p], t[p], vol[p])
                        std_total += n * (max(std[0] * F - otm, std[1] * F) + v)
            start = end
        out_loss[a] = loss_total
        out_floor[a] = floor_total
        out_std[a] = std_total
        out_margin[a] = loss_total + floor_total + std_total


@njit(cache=True, nogil=True, parallel=True)
def _greeks_kernel(offsets, under, kind, strike, t, vol, qty, csize, fwd, out):
    for a in prange(offsets.shape[0] - 1):
        for k in range(5):
            out[a, k] = 0.0
        for p in range(offsets[a], offsets[a + 1]):
            n = qty[p] * csize[p]
            if kind[p] == FUTURE:
                out[a, 0] += n * fwd[under[p]]
                out[a, 1] += n
                continue
            _c, pr, de, ga, ve, th, _r, _va, _vo = black76_one(fwd[under[p]], strike[p], t[p], vol[p], kind[p] == CALL, 0.0)
            out[a, 0] += n * pr
            out[a, 1] += n * de
            out[a, 2] += n * ga
            out[a, 3] += n * ve
            out[a, 4] += n * th


def _sorted(positions: np.ndarray):
    pos = np.asarray(positions)
    if pos.dtype != POSITION_DTYPE:
        raise TypeError(f"positions must have POSITION_DTYPE, got {pos.dtype}")
    order = np.lexsort((pos["underlying"], pos["account"]))
    pos = pos[order]
    accounts, starts = np.unique(pos["account"], return_index=True)
    offsets = np.append(starts, pos.size).astype(np.int64)
    bad = ~((pos["t"] > 0) | (pos["kind"] == FUTURE)) | ~((pos["vol"] > 0) | (pos["kind"] == FUTURE))
    if np.any(bad) or np.any(~np.isfinite(pos["qty"])):
        raise ValueError("every option position needs t > 0 and vol > 0, and every qty must be finite")
    cols = [np.ascontiguousarray(pos[c]) for c in ("underlying", "kind", "strike", "t", "vol", "qty", "contract_size")]
    return accounts, offsets, cols


def portfolio_greeks(positions: np.ndarray, forwards) -> dict[str, np.ndarray]:
    """Per-account sums of value, delta, gamma, vega (per vol pt) and theta (per day); parallel over accounts.

    ``forwards[u]`` is the forward of underlying ``u``.  Returns arrays indexed
    like ``account`` (sorted account ids).  O(positions).
    """
    accounts, offsets, cols = _sorted(positions)
    fwd = np.ascontiguousarray(forwards, dtype=np.float64)
    out = np.empty((accounts.size, 5))
    _greeks_kernel(offsets, *cols, fwd, out)
    return {"account": accounts, "value": out[:, 0], "delta": out[:, 1], "gamma": out[:, 2], "vega": out[:, 3],
            "theta": out[:, 4]}


def portfolio_margin(positions: np.ndarray, forwards, grids: dict[int, ScenarioGrid],
                     standard: StandardMargin = StandardMargin()) -> dict[str, np.ndarray]:
    """Scenario-grid margin of every account (see the module docstring); parallel over accounts.

    ``grids`` maps underlying index -> ``ScenarioGrid``; underlyings missing
    from it get ``standard`` margin.  Returns ``account, margin, worst_loss,
    floor, standard`` arrays.  O(positions x scenarios) work.
    """
    accounts, offsets, cols = _sorted(positions)
    fwd = np.ascontiguousarray(forwards, dtype=np.float64)
    n_u = fwd.size
    max_m = max([g.n_moves for g in grids.values()] or [1])
    max_s = max([len(g.vol_shocks) for g in grids.values()] or [1])
    moves = np.zeros((n_u, max_m))
    shocks = np.zeros((n_u, max_s))
    n_moves = np.zeros(n_u, dtype=np.int64)
    n_shocks = np.zeros(n_u, dtype=np.int64)
    floor = np.zeros(n_u)
    has = np.zeros(n_u, dtype=np.bool_)
    for u, g in grids.items():
        moves[u, : g.n_moves] = g.moves
        shocks[u, : len(g.vol_shocks)] = g.vol_shocks
        n_moves[u], n_shocks[u], floor[u], has[u] = g.n_moves, len(g.vol_shocks), g.floor_rate, True
    std = np.array([standard.base_rate, standard.min_rate, standard.future_rate])
    out = [np.empty(accounts.size) for _ in range(4)]
    _margin_kernel(offsets, *cols, fwd, moves, n_moves, shocks, n_shocks, floor, has, std, *out)
    return {"account": accounts, "margin": out[0], "worst_loss": out[1], "floor": out[2], "standard": out[3]}


def random_positions(n_accounts: int, per_account: int, n_underlyings: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded synthetic book (for benchmarks and tests): positions and forwards."""
    rng = np.random.default_rng(seed)
    n = n_accounts * per_account
    pos = np.zeros(n, dtype=POSITION_DTYPE)
    fwd = rng.uniform(1_000.0, 60_000.0, n_underlyings)
    pos["account"] = np.repeat(np.arange(n_accounts), per_account)
    pos["underlying"] = rng.integers(0, n_underlyings, n)
    pos["kind"] = rng.choice([CALL, PUT, FUTURE], n, p=[0.45, 0.45, 0.10])
    pos["strike"] = fwd[pos["underlying"]] * np.exp(rng.uniform(-0.5, 0.5, n))
    pos["t"] = rng.uniform(1 / 365, 1.0, n)
    pos["vol"] = rng.uniform(0.3, 1.5, n)
    pos["qty"] = np.round(rng.normal(0, 10, n), 1)
    pos["contract_size"] = 1.0
    return pos, fwd
