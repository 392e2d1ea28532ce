"""Portfolio margin per account: the scenario grid of ``shardex.options.portfolio`` on the book's positions.

An account switched to portfolio margin (``RiskExchange.set_margin_mode``)
has the margin of its **margin-currency pool** (perpetuals, futures, linear
options) computed by ``shardex.options.portfolio.portfolio_margin`` instead
of the tiers and the standard option rule:

* every position becomes a ``POSITION_DTYPE`` row: an option is a call or
  put on its underlying instrument, with its strike, the years to expiry at
  the command's timestamp (at least ``min_years``), the configured
  volatility ``vol`` and ``qty = lots * lot_size`` contracts of
  ``contract_size``; a perpetual or future is a ``FUTURE`` row (delta one)
  on itself, so an option and its underlying perpetual share one
  underlying and offset each other;
* forwards are the underlyings' marks in USD (``mark * tick_size``);
* ``portfolio_margin`` revalues each underlying's positions on the
  ``grid`` (forward moves x volatility shocks) and returns the worst loss
  plus ``floor_rate`` of the short options' notional, in USD, which is
  converted to minor units rounded up.

Initial margin = the scenario margin of the worse way the open orders can
fill: ``max(PM(positions + buys), PM(positions - sells))`` (every buy
filled, or every sell filled, over all instruments of the pool), where the
buys are those of perpetuals and futures only: an option buy holds its
premium in full, which is all it can lose, so it enters the scenarios once
filled (ignoring a resting buy's hedge is the conservative side).
Maintenance margin = ``maintenance_ratio`` x ``PM(positions)`` (our choice,
0.8 by default: an account opened at its initial margin is not liquidated
by the next mark).  Option buys still hold their premium (``holds``).
Inverse options (the coin's pool) keep the standard rule: their value in
coins is not linear in the scenario's USD values (see docs/risk.md).

Floats live only inside this computation (Black-76 values); what comes out
is an integer requirement in minor units, and the same inputs give the same
integers (each account is computed alone, in a fixed order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from shardex.instruments import Instrument, InstrumentKind, OptionType
from shardex.options.portfolio import CALL, FUTURE, POSITION_DTYPE, PUT, ScenarioGrid, portfolio_margin
from shardex.risk.options import O_CCY

__all__ = ["MARGIN_MODES", "PortfolioMargin"]

#: The per-account margin modes, by name, and their codes in ``RiskExchange.pm_mode``.
MARGIN_MODES = {"standard": 0, "portfolio": 1}
NS_PER_YEAR = 365 * 86_400 * 10**9


@dataclass(frozen=True)
class PortfolioMargin:
    """Configuration of portfolio margin (module doc).

    Parameters
    ----------
    vol
        Annualized volatility (decimal, 0.6 = 60 %) the options are valued
        at, one for all or one per underlying instrument id.
    grid
        ``ScenarioGrid`` of every underlying (moves of the forward, shocks of
        the volatility, the short-option floor rate).
    maintenance_ratio
        Maintenance margin as a fraction of the positions' scenario margin,
        in (0, 1].
    min_years
        Time to expiry used for an option at or past its expiry that has not
        been settled yet (default one hour).
    """

    vol: float | Mapping[int, float] = 0.6
    grid: ScenarioGrid = field(default_factory=ScenarioGrid)
    maintenance_ratio: float = 0.8
    min_years: float = 1 / (365 * 24)

    def __post_init__(self) -> None:
        vols = self.vol.values() if isinstance(self.vol, Mapping) else [self.vol]
        if not all(isinstance(v, (int, float)) and 0 < v < 10 for v in vols):
            raise ValueError(f"vol must be a decimal volatility in (0, 10), got {self.vol!r}")
        if not 0 < self.maintenance_ratio <= 1:
            raise ValueError(f"maintenance_ratio must be in (0, 1], got {self.maintenance_ratio}")
        if not self.min_years > 0:
            raise ValueError(f"min_years must be positive, got {self.min_years}")

    def vol_of(self, underlying: int) -> float:
        """The volatility options on ``underlying`` are valued at."""
        if isinstance(self.vol, Mapping):
            if underlying not in self.vol:
                raise KeyError(f"PortfolioMargin.vol names no volatility for underlying {underlying}")
            return float(self.vol[underlying])
        return float(self.vol)


class PortfolioBook:
    """The per-instrument constants of the margin-currency pool, and the scenario computation.

    Built once by ``RiskExchange``; ``requirements`` turns lots into margins.
    """

    def __init__(self, config: PortfolioMargin, instruments: Sequence[Instrument], opt: np.ndarray, mccy: int,
                 currency_decimals: int) -> None:
        self.config = config
        n = len(instruments)
        self.members = np.array([opt[x.id, O_CCY] == mccy and x.kind != InstrumentKind.SPOT for x in instruments],
                                bool)
        self.kind = np.full(n, FUTURE, np.int8)
        self.under = np.arange(n, dtype=np.int32)
        self.strike = np.zeros(n)
        self.expiry_ns = np.zeros(n, np.int64)
        self.vol = np.zeros(n)
        self.lot = np.array([float(x.lot_size) for x in instruments])
        self.csize = np.array([float(x.contract_size) for x in instruments])
        self.tick = np.array([float(x.tick_size) for x in instruments])  # USD per tick (forwards)
        for x in instruments:
            if x.kind == InstrumentKind.OPTION and self.members[x.id]:
                u = instruments[x.underlying]
                self.kind[x.id] = CALL if x.option_type == OptionType.CALL else PUT
                self.under[x.id] = u.id
                self.strike[x.id] = float(Decimal(x.strike))
                self.expiry_ns[x.id] = x.expiry_ns
                self.vol[x.id] = config.vol_of(u.id)
        self.grids = {int(u): config.grid for u in np.unique(self.under[self.members])}
        self.scale = 10**currency_decimals

    def requirements(self, scenarios: np.ndarray, marks: np.ndarray, now_ns: int) -> np.ndarray:
        """Scenario margin of each row of ``scenarios`` (int64 lots ``[k, n_instruments]``), minor units, rounded up.

        Instruments outside the pool are ignored.  Complexity: O(positions x
        grid points), one parallel ``portfolio_margin`` call for all rows.
        """
        lots = np.where(self.members, scenarios, 0)
        rows_k, rows_i = np.nonzero(lots)
        out = np.zeros(len(scenarios), np.int64)
        if not len(rows_k):
            return out
        pos = np.zeros(len(rows_k), POSITION_DTYPE)
        pos["account"] = rows_k
        pos["underlying"] = self.under[rows_i]
        pos["kind"] = self.kind[rows_i]
        pos["strike"] = self.strike[rows_i]
        years = (self.expiry_ns[rows_i] - now_ns) / NS_PER_YEAR
        is_opt = self.kind[rows_i] != FUTURE
        pos["t"] = np.where(is_opt, np.maximum(years, self.config.min_years), 0.0)
        pos["vol"] = self.vol[rows_i]
        pos["qty"] = lots[rows_k, rows_i] * self.lot[rows_i]
        pos["contract_size"] = self.csize[rows_i]
        forwards = marks * self.tick
        res = portfolio_margin(pos, forwards, self.grids)
        out[res["account"]] = np.ceil(res["margin"] * self.scale).astype(np.int64)
        return out
