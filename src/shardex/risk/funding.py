"""Perpetual funding: the premium index and the clamped funding rate.

Formula (Binance USDⓈ-M "Introduction to Funding Rates", the same as BitMEX's
"Perpetual Contracts Guide")::

    F = P + clamp(I - P, -0.05 %, +0.05 %)        then capped to [-cap, +cap]

``P`` is the premium index averaged over the funding interval: each mark
update that carries an index price adds a sample ``(mark - index) / index``;
``I`` the interest rate per interval (0.01 % per 8 h, 0.03 % a day);
``cap`` the rate cap, by default 75 % of (initial - maintenance) margin of
the first tier, BitMEX's rule.  All in parts per million (ppm) because the
ledger's funding transaction takes ppm: a 0.0100 % rate is 100 ppm.
A long of ``q`` lots pays ``q * mark * multiplier * F / 1e6`` minor units
(shorts receive; truncated toward zero, the insurance fund clears).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["DEFAULT_INTEREST_PPM", "PREMIUM_CLAMP_PPM", "default_cap_ppm", "funding_rate_ppm", "premium_ppm"]

#: Interest rate per 8 h interval, ppm (0.01 %).
DEFAULT_INTEREST_PPM = 100
#: Bound on the interest-minus-premium term, ppm (0.05 %).
PREMIUM_CLAMP_PPM = 500


def default_cap_ppm(im_bps: int, mm_bps: int) -> int:
    """BitMEX's cap: 75 % of (initial - maintenance margin), in ppm."""
    return (im_bps - mm_bps) * 100 * 3 // 4


@njit(cache=True, nogil=True)
def premium_ppm(mark, index):
    """One premium sample ``(mark - index) / index`` in ppm, truncated toward zero; ``index > 0``."""
    d = (mark - index) * 1_000_000
    return d // index if d >= 0 else -((-d) // index)


@njit(cache=True, nogil=True)
def funding_rate_ppm(premium_sum, samples, interest, clamp, cap):
    """The clamped funding rate from the interval's premium samples (none: premium 0)."""
    p = 0
    if samples > 0:
        p = premium_sum // samples if premium_sum >= 0 else -((-premium_sum) // samples)
    f = p + min(max(interest - p, -clamp), clamp)
    return min(max(f, -cap), cap)


@njit(cache=True, nogil=True)
def holders(positions, i):
    """Accounts (ascending) with a non-zero position in instrument ``i``."""
    out = np.empty(positions.shape[0], np.int64)
    n = 0
    for a in range(positions.shape[0]):
        if positions[a, i, 0] != 0:
            out[n] = a
            n += 1
    return out[:n]
