"""Reason codes the option kernels return, and the exceptions the API raises.

Kernels never raise: each output element carries a ``OptionCode`` (uint8) and
NaN where the code is not ``OK``.  The Python layer turns a bad scalar input
into an ``InvalidOptionInputError`` that names the problem.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from shardex.errors import ShardexError

__all__ = [
    "OptionCode",
    "OptionError",
    "InvalidOptionInputError",
    "NoArbitrageBoundError",
    "code_message",
    "describe_codes",
]


class OptionCode(IntEnum):
    """Why an element of an array result is NaN (``OK``: it is not)."""

    OK = 0
    NON_FINITE_INPUT = 1
    NONPOSITIVE_FORWARD = 2
    NONPOSITIVE_STRIKE = 3
    EXPIRED = 4
    NONPOSITIVE_VOL = 5
    PRICE_BELOW_INTRINSIC = 6
    PRICE_ABOVE_UPPER_BOUND = 7
    NO_TIME_VALUE = 8
    NOT_CONVERGED = 9


_MESSAGES = {
    OptionCode.OK: "ok",
    OptionCode.NON_FINITE_INPUT: "an input is NaN or infinite",
    OptionCode.NONPOSITIVE_FORWARD: "the forward must be positive",
    OptionCode.NONPOSITIVE_STRIKE: "the strike must be positive",
    OptionCode.EXPIRED: "the time to expiry must be positive (the option has expired)",
    OptionCode.NONPOSITIVE_VOL: "the volatility must be positive",
    OptionCode.PRICE_BELOW_INTRINSIC: "the price is below the intrinsic value: no volatility reproduces it",
    OptionCode.PRICE_ABOVE_UPPER_BOUND: "the price is at or above its no-arbitrage upper bound (forward for a call, strike for a put)",
    OptionCode.NO_TIME_VALUE: "the price has no time value left to invert (at intrinsic, or lost to rounding)",
    OptionCode.NOT_CONVERGED: "the implied-volatility iteration did not converge",
}


def code_message(code: int) -> str:
    """Return the human-readable explanation of an ``OptionCode``."""
    try:
        return _MESSAGES[OptionCode(int(code))]
    except ValueError:
        return f"unknown option code {code}"


def describe_codes(codes: np.ndarray) -> dict[str, int]:
    """Count the non-OK codes of an array result: ``{name: count}``.  O(n)."""
    values, counts = np.unique(np.asarray(codes), return_counts=True)
    return {OptionCode(int(v)).name: int(c) for v, c in zip(values, counts) if v != OptionCode.OK}


class OptionError(ShardexError):
    """Base class of the errors of ``shardex.options``."""


class InvalidOptionInputError(OptionError, ValueError):
    """A scalar input cannot be priced or inverted; ``code`` says why."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message or code_message(code))
        self.code = OptionCode(int(code))


class NoArbitrageBoundError(InvalidOptionInputError):
    """A scalar price lies outside the no-arbitrage bounds, so no volatility fits it."""
