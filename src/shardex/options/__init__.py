"""Options: Black-76 pricing, Greeks, implied volatility, smiles and portfolio risk.

The public surface (guarded by ``tests/options/test_public_api.py``):

* ``greeks`` / ``black76_price`` / ``implied_vol``: parallel numba kernels over
  arrays or scalars (units in ``shardex.options.api``).
* ``OptionCode`` and the exceptions: why an element is NaN, why a scalar failed.
"""

from shardex.options._codes import (
    InvalidOptionInputError,
    NoArbitrageBoundError,
    OptionCode,
    OptionError,
    code_message,
)
from shardex.options.api import GreeksResult, black76_price, greeks, implied_vol

__all__ = [
    "GreeksResult",
    "InvalidOptionInputError",
    "NoArbitrageBoundError",
    "OptionCode",
    "OptionError",
    "black76_price",
    "code_message",
    "greeks",
    "implied_vol",
]
