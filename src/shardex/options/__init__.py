"""Options: Black-76 pricing, Greeks, implied volatility, smiles and portfolio risk.

The public surface (guarded by ``tests/options/test_public_api.py``):

* ``greeks`` / ``black76_price`` / ``implied_vol``: parallel numba kernels over
  arrays or scalars (units in ``shardex.options.api``).
* ``OptionCode`` and the exceptions: why an element is NaN, why a scalar failed.
* ``OptionSpec`` / ``OptionChain`` / ``Settlement``: listed options, linear or inverse.
* ``fit_svi`` / ``SviFit`` / ``butterfly_violations``: smiles.
* ``portfolio_greeks`` / ``portfolio_margin`` / ``ScenarioGrid`` / ``POSITION_DTYPE``.
* ``mc_price``: Monte Carlo with reproducible streams, European and Asian payoffs.
"""

from shardex.options._codes import (
    InvalidOptionInputError,
    NoArbitrageBoundError,
    OptionCode,
    OptionError,
    code_message,
)
from shardex.options.api import GreeksResult, black76_price, greeks, implied_vol
from shardex.options.chain import OptionChain, OptionSpec, Settlement
from shardex.options.montecarlo import MCResult, mc_price
from shardex.options.portfolio import POSITION_DTYPE, ScenarioGrid, StandardMargin, portfolio_greeks, portfolio_margin
from shardex.options.smile import SviFit, butterfly_violations, fit_svi

__all__ = [
    "GreeksResult",
    "InvalidOptionInputError",
    "MCResult",
    "NoArbitrageBoundError",
    "OptionChain",
    "OptionCode",
    "OptionError",
    "OptionSpec",
    "POSITION_DTYPE",
    "ScenarioGrid",
    "Settlement",
    "StandardMargin",
    "SviFit",
    "black76_price",
    "butterfly_violations",
    "code_message",
    "fit_svi",
    "greeks",
    "implied_vol",
    "mc_price",
    "portfolio_greeks",
    "portfolio_margin",
]
