"""The Python API of the option kernels: ``greeks``, ``implied_vol``, ``black76_price``.

All three accept scalars or numpy arrays and broadcast them like numpy does.

Units and conventions (undiscounted Black-76 unless ``rate`` is given):

=========  ==================================================================
forward    the forward (futures) price F of the underlying, > 0
strike     K, in the currency of F, > 0
t          time to expiry in years (Deribit: ms to expiry / (365*86400*1000))
vol        decimal volatility (0.8 means 80 %)
rate       continuously compounded discount rate; price = e^{-rate t} * Black
price      premium in the currency of F (USD); ``inverse=True``: in the coin
delta      dV/dF (forward delta, not premium-adjusted)
gamma      d2V/dF2, per unit of F
vega       dV/dvol per 1 vol point (0.01)
theta      dV/dt per calendar day (1/365 year), forward held fixed
rho        dV/drate per 1 rate point (0.01) with the *spot* held fixed, the
           convention of Deribit and of QuantLib's ``BlackCalculator.rho``;
           for a futures option (forward fixed) use -t * price / 100 instead
vanna      d(delta)/dvol per 1 vol point (``second_order=True``)
volga      d(vega)/dvol per 1 vol point (``second_order=True``)
=========  ==================================================================

Inverse (coin-margined, Deribit-style) options pay (F_T - K)^+ / F_T coins, whose
value today is V / F coins (the coin numeraire).  ``inverse=True`` returns
``price`` in coins (V / F) and adds ``delta_premium_adjusted`` = delta - V/F,
the coin-numeraire delta (how many coins of hedge a coin-valued option needs);
the other Greeks stay in the quote currency, as Deribit publishes them.

Bad elements of array inputs come back as NaN with an ``OptionCode`` in
``codes``; bad scalar inputs raise ``InvalidOptionInputError`` (or its subclass
``NoArbitrageBoundError`` for prices outside the bounds).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from shardex.options._black import black76_simd_kernel, black76_simd_price_kernel
from shardex.options._codes import (
    InvalidOptionInputError,
    NoArbitrageBoundError,
    OptionCode,
    code_message,
    describe_codes,
)
from shardex.options._iv import implied_vol_kernel

__all__ = ["GreeksResult", "black76_price", "greeks", "implied_vol", "as_is_call"]

GREEK_KEYS = ("price", "delta", "gamma", "vega", "theta", "rho")
SECOND_ORDER_KEYS = ("vanna", "volga")


def as_is_call(value: Any) -> np.ndarray:
    """Turn ``True``/``False``, 1/0, or 'call'/'put'/'C'/'P' (arrays too) into a bool array."""
    arr = np.asarray(value)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "iuf":
        if not np.all(np.isin(arr, (0, 1))):
            raise InvalidOptionInputError(OptionCode.NON_FINITE_INPUT, "is_call must be a bool, 0/1, or 'call'/'put'")
        return arr.astype(np.bool_)
    if arr.dtype.kind in "UOS":
        low = np.char.lower(arr.astype(str))
        is_call = np.isin(low, ("call", "c"))
        is_put = np.isin(low, ("put", "p"))
        if not np.all(is_call | is_put):
            bad = low[~(is_call | is_put)].ravel()[0]
            raise InvalidOptionInputError(OptionCode.NON_FINITE_INPUT, f"option type must be 'call' or 'put', got {bad!r}")
        return is_call
    raise InvalidOptionInputError(OptionCode.NON_FINITE_INPUT, f"is_call has unsupported dtype {arr.dtype}")


def _broadcast(floats: tuple, is_call: Any) -> tuple[list[np.ndarray], np.ndarray, tuple[int, ...], bool]:
    """Broadcast the inputs; return flat contiguous arrays, the shape, and 'all scalars'."""
    scalar = all(np.ndim(a) == 0 for a in floats) and np.ndim(is_call) == 0
    arrs = [np.asarray(a, dtype=np.float64) for a in floats]
    arrs.append(as_is_call(is_call))
    shape = np.broadcast_shapes(*(a.shape for a in arrs))
    # inputs already of the full shape pass through without a copy; the others are
    # materialised (a writeable copy: read-only views would compile another signature)
    flat = [np.ascontiguousarray(a).reshape(-1) if a.shape == shape
            else np.array(np.broadcast_to(a, shape)).reshape(-1) for a in arrs]
    return flat[:-1], flat[-1], shape, scalar


def _broadcast_with_rate(floats: tuple, rate: Any, is_call: Any) -> tuple:
    """``_broadcast`` of (F, K, t, vol) and the rate; a scalar rate stays a 1-element array.

    The kernels broadcast a length-1 rate themselves, which saves filling and
    reading an n-long array of one number.
    """
    if np.ndim(rate) == 0:
        (f, k, tt, v), calls, shape, scalar = _broadcast(floats, is_call)
        r = np.full(1, rate, dtype=np.float64)
    else:
        (f, k, tt, v, r), calls, shape, scalar = _broadcast((*floats, rate), is_call)
    return f, k, tt, v, r, calls, shape, scalar


class GreeksResult(Mapping):
    """Price and Greeks as a read-only mapping ``name -> array`` (or float for scalar inputs).

    ``codes`` holds the ``OptionCode`` of every element (0 = OK); elements with
    a non-zero code are NaN in every array.
    """

    def __init__(self, data: dict[str, Any], codes: np.ndarray) -> None:
        self._data = data
        self.codes = codes

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"GreeksResult({', '.join(self._data)})"

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the elements that priced (code OK)."""
        return np.asarray(self.codes) == OptionCode.OK

    def reasons(self) -> dict[str, int]:
        """Counts of the non-OK reason codes, by name."""
        return describe_codes(self.codes)


def _raise_scalar(code: int) -> None:
    if code in (OptionCode.PRICE_BELOW_INTRINSIC, OptionCode.PRICE_ABOVE_UPPER_BOUND):
        raise NoArbitrageBoundError(code)
    raise InvalidOptionInputError(code)


def greeks(
    forward: Any,
    strike: Any,
    t: Any,
    vol: Any,
    is_call: Any,
    rate: Any = 0.0,
    *,
    inverse: bool = False,
    second_order: bool = False,
) -> GreeksResult:
    """Return Black-76 ``price, delta, gamma, vega, theta, rho`` for every input.

    Parameters are documented in the module docstring (units!).  Runs in
    parallel over all cores; O(n) work for n broadcast elements.

    >>> g = greeks(100.0, 100.0, 1.0, 0.2, True)
    >>> round(g["price"], 6), round(g["delta"], 6)
    (7.965567, 0.539828)
    """
    f, k, tt, v, r, calls, shape, scalar = _broadcast_with_rate((forward, strike, t, vol), rate, is_call)
    n = f.shape[0]
    out = {key: np.empty(n) for key in GREEK_KEYS}
    second = {key: np.empty(n if second_order else 0) for key in SECOND_ORDER_KEYS}
    codes = np.empty(n, dtype=np.uint8)
    black76_simd_kernel(f, k, tt, v, calls, r, out["price"], out["delta"], out["gamma"], out["vega"],
                        out["theta"], out["rho"], second["vanna"], second["volga"], codes)
    if second_order:
        out.update(second)
    if inverse:
        coin = out["price"] / f
        out["delta_premium_adjusted"] = out["delta"] - coin
        out["price"] = coin
    if scalar:
        if codes[0] != OptionCode.OK:
            _raise_scalar(int(codes[0]))
        return GreeksResult({key: float(a[0]) for key, a in out.items()}, codes.reshape(()))
    return GreeksResult({key: a.reshape(shape) for key, a in out.items()}, codes.reshape(shape))


def black76_price(forward: Any, strike: Any, t: Any, vol: Any, is_call: Any, rate: Any = 0.0, *, inverse: bool = False) -> Any:
    """Black-76 price only (cheaper than ``greeks``); NaN for bad array elements.  O(n)."""
    f, k, tt, v, r, calls, shape, scalar = _broadcast_with_rate((forward, strike, t, vol), rate, is_call)
    price = np.empty(f.shape[0])
    codes = np.empty(f.shape[0], dtype=np.uint8)
    black76_simd_price_kernel(f, k, tt, v, calls, r, price, codes)
    if inverse:
        price /= f
    if scalar:
        if codes[0] != OptionCode.OK:
            _raise_scalar(int(codes[0]))
        return float(price[0])
    return price.reshape(shape)


def implied_vol(
    price: Any,
    forward: Any,
    strike: Any,
    t: Any,
    is_call: Any,
    rate: Any = 0.0,
    *,
    inverse: bool = False,
    return_codes: bool = False,
) -> Any:
    """Return the Black-76 implied volatility (decimal) of every price.

    Method: safeguarded Halley iteration on Jäckel's transformed objectives
    ("By Implication", 2006) inside a bracket that provably contains the
    unique root, accurate to ~1e-14 relative in total volatility on exact
    prices (see ``shardex.options._iv``).  Not "Let's Be Rational" itself.

    ``price`` is in the currency of ``forward`` (``inverse=True``: in coins,
    i.e. multiplied by ``forward`` first).  Prices below intrinsic value or at
    or above the upper bound (F for calls, K for puts, undiscounted) give NaN
    with a reason code (``return_codes=True`` returns ``(vol, codes)``); a
    scalar input raises ``NoArbitrageBoundError``/``InvalidOptionInputError``.
    Runs in parallel over all cores; O(n) work, 2-4 iterations per option.

    >>> round(implied_vol(7.965567455405804, 100.0, 100.0, 1.0, True), 12)
    0.2
    """
    (p, f, k, tt, r), calls, shape, scalar = _broadcast((price, forward, strike, t, rate), is_call)
    if inverse:
        p = p * f
    vol = np.empty(p.shape[0])
    codes = np.empty(p.shape[0], dtype=np.uint8)
    implied_vol_kernel(p, f, k, tt, calls, r, vol, codes)
    if scalar:
        if codes[0] != OptionCode.OK:
            _raise_scalar(int(codes[0]))
        return (float(vol[0]), int(codes[0])) if return_codes else float(vol[0])
    vol = vol.reshape(shape)
    return (vol, codes.reshape(shape)) if return_codes else vol


def explain(code: int) -> str:
    """The message of one ``OptionCode`` (alias of ``code_message``)."""
    return code_message(code)
