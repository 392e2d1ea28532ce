"""Black-76 price and Greeks kernels (numba, parallel across cores).

Conventions (the Python API in ``shardex.options.api`` documents them for users):

* ``F`` forward, ``K`` strike (same currency), ``T`` years, ``vol`` a decimal
  (0.8 = 80 %), ``r`` the continuously compounded discount rate, D = e^{-rT}.
* price   V = D * (F N(d1) - K N(d2)) for a call, D * (K N(-d2) - F N(-d1)) for a put.
* delta   dV/dF (forward delta, not premium-adjusted).
* gamma   d2V/dF2.
* vega    dV/dvol per 1 vol point (dV/dvol / 100).
* theta   -dV/dT with the forward held fixed, per calendar day (/365).
* rho     dV/dr per 1 rate point with the *spot* held fixed (F = S e^{rT}):
          +D K T N(d2)/100 for a call, -D K T N(-d2)/100 for a put; this is the
          rho Deribit publishes and QuantLib's ``BlackCalculator.rho`` returns.
* vanna   d(delta)/dvol per 1 vol point; volga d(vega)/dvol per 1 vol point.

Accuracy: every normal CDF is taken as phi(d) R(|d|) (Mills ratio R, from a
table of Taylor polynomials) on the side where it is small, and the out-of-the-money price is computed first (its two
terms never cancel catastrophically); the in-the-money price adds the
intrinsic value by put-call parity.  This keeps prices to ~1e-13 relative.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from shardex.options import _mills_table

# codes, mirrored from OptionCode as plain ints for the kernels
OK = 0
NON_FINITE_INPUT = 1
NONPOSITIVE_FORWARD = 2
NONPOSITIVE_STRIKE = 3
EXPIRED = 4
NONPOSITIVE_VOL = 5

_INV_SQRT2 = 0.7071067811865476
_INV_SQRT2PI = 0.3989422804014327
_DAYS_PER_YEAR = 365.0


@njit(cache=True, nogil=True)
def check_inputs(F, K, T, r):
    """Return the code of the first bad input among forward, strike, time, rate."""
    if not (math.isfinite(F) and math.isfinite(K) and math.isfinite(T) and math.isfinite(r)):
        return NON_FINITE_INPUT
    if F <= 0.0:
        return NONPOSITIVE_FORWARD
    if K <= 0.0:
        return NONPOSITIVE_STRIKE
    if T <= 0.0:
        return EXPIRED
    return OK


_MILLS = _mills_table.COEFFS  # module-level array: numba freezes it into the kernels
_MILLS_INV_W = 1.0 / _mills_table.WIDTH


@njit(cache=True, nogil=True)
def mills_ratio(t):
    """R(t) = (1 - N(t)) / phi(t) for t >= 0, to ~2 ulp.

    Below 40: the degree-14 Taylor polynomial of the interval (width 0.5, see
    ``_gen_mills_table``), 15 FMAs instead of a libm ``erfc`` call.  From 40 on
    (where phi(t) < 1e-347 anyway): Laplace's continued fraction, whose depth
    6 + 600/t^2 reaches full precision there (checked against mpmath).
    """
    if t < 40.0:
        i = int(t * _MILLS_INV_W)
        dt = t - (i + 0.5) * 0.5
        acc = _MILLS[i, 14]
        for k in range(13, -1, -1):
            acc = acc * dt + _MILLS[i, k]
        return acc
    n = int(6.0 + 600.0 / (t * t))
    r = t
    for k in range(n, 0, -1):
        r = t + k / r
    return 1.0 / r


@njit(cache=True, nogil=True)
def norm_cdf_neg_abs(d, pdf):
    """N(-|d|) given pdf = phi(d): the small tail, accurate relative to itself."""
    return pdf * mills_ratio(abs(d))


@njit(cache=True, nogil=True)
def otm_wing(x, s):
    """Normalised OTM call b(x, s) = e^{x/2}N(h1) - e^{-x/2}N(h2) for x <= 0 when h1 < -WING.

    Far in the wing the two terms agree to |h|/s digits, and rounding in h1, h2
    would be amplified by |h|^3/s (3e-10 on a 1-hour option).  Factoring out
    e^{x/2}phi(h1) = e^{-x/2}phi(h2) leaves a difference of Mills ratios,
    which are flat in h, so only their last-bit errors remain (~|h|/s ulp).
    """
    h1 = x / s + 0.5 * s
    h2 = h1 - s
    front = _INV_SQRT2PI * math.exp(-0.5 * (x * x / (s * s) + 0.25 * s * s))
    return front * (mills_ratio(-h1) - mills_ratio(-h2))


#: the wing formula is used where h1 < -WING and |h1|^3 > WING_RATIO * s: the direct
#: formula's error is ~ |h1|^3 eps / s, under 1e-11 outside that region
WING = 5.0
WING_RATIO = 1e5
#: below h1 = -UNDERFLOW the normalised price e^{-h^2/2}... is under 1e-300: it is 0
UNDERFLOW = 37.0


@njit(cache=True, nogil=True)
def in_wing(h1, s):
    """True where the direct OTM formula would lose digits (see ``otm_wing``)."""
    return h1 < -WING and -h1 * h1 * h1 > WING_RATIO * s


@njit(cache=True, nogil=True)
def black76_one(F, K, T, vol, is_call, r):
    """Price and Greeks of one option: (code, price, delta, gamma, vega, theta, rho, vanna, volga)."""
    nan = np.nan
    code = check_inputs(F, K, T, r)
    if code == OK:
        if not math.isfinite(vol):
            code = NON_FINITE_INPUT
        elif vol <= 0.0:
            code = NONPOSITIVE_VOL
    if code != OK:
        return code, nan, nan, nan, nan, nan, nan, nan, nan
    sqrt_t = math.sqrt(T)
    s = vol * sqrt_t
    d1 = math.log(F / K) / s + 0.5 * s
    d2 = d1 - s
    # N(-|d|) = phi(d) R(|d|) is accurate relative to itself; the complement is then exact enough
    pdf1 = _INV_SQRT2PI * math.exp(-0.5 * d1 * d1)
    pdf2 = _INV_SQRT2PI * math.exp(-0.5 * d2 * d2)
    t1 = norm_cdf_neg_abs(d1, pdf1)
    t2 = norm_cdf_neg_abs(d2, pdf2)
    if d1 >= 0.0:
        n1, m1 = 1.0 - t1, t1  # N(d1), N(-d1)
    else:
        n1, m1 = t1, 1.0 - t1
    if d2 >= 0.0:
        n2, m2 = 1.0 - t2, t2
    else:
        n2, m2 = t2, 1.0 - t2
    # out-of-the-money first: the call when F <= K, the put otherwise
    x_otm = -abs(math.log(F / K))
    h1 = x_otm / s + 0.5 * s
    if in_wing(h1, s):
        otm = math.sqrt(F * K) * otm_wing(x_otm, s) if h1 > -UNDERFLOW else 0.0
        if F <= K:
            call, put = otm, otm + (K - F)
        else:
            put, call = otm, otm + (F - K)
    elif F <= K:
        call = F * n1 - K * n2
        put = call + (K - F)
    else:
        put = K * m2 - F * m1
        call = put + (F - K)
    disc = math.exp(-r * T) if r != 0.0 else 1.0
    fpdf = F * pdf1
    gamma = disc * pdf1 / (F * s)
    vega_raw = disc * fpdf * sqrt_t  # per unit of vol
    if is_call:
        price = disc * call
        delta = disc * n1
        rho = disc * K * T * n2 * 0.01
    else:
        price = disc * put
        delta = -disc * m1
        rho = -disc * K * T * m2 * 0.01
    theta = (r * price - disc * fpdf * vol / (2.0 * sqrt_t)) / _DAYS_PER_YEAR
    vanna = -disc * pdf1 * d2 / vol * 0.01
    volga = vega_raw * d1 * d2 / vol * 1e-4
    return OK, price, delta, gamma, vega_raw * 0.01, theta, rho, vanna, volga


@njit(cache=True, nogil=True, parallel=True)
def black76_kernel(F, K, T, vol, is_call, r, price, delta, gamma, vega, theta, rho, vanna, volga, codes):
    """Fill the output arrays for every option, in parallel.  O(n) work, n/threads span.

    Inputs are 1-D arrays of one length ``n`` (``is_call`` bool); outputs are
    preallocated float64 arrays of length ``n`` (``vanna``/``volga`` may be of
    length 0 to skip the second-order Greeks) and ``codes`` uint8.
    """
    n = F.shape[0]
    second = vanna.shape[0] == n
    for i in prange(n):
        c, p, de, ga, ve, th, rh, va, vo = black76_one(F[i], K[i], T[i], vol[i], is_call[i], r[i])
        codes[i] = c
        price[i] = p
        delta[i] = de
        gamma[i] = ga
        vega[i] = ve
        theta[i] = th
        rho[i] = rh
        if second:
            vanna[i] = va
            volga[i] = vo


@njit(cache=True, nogil=True, parallel=True)
def black76_price_kernel(F, K, T, vol, is_call, r, price, codes):
    """Price only (no Greeks), in parallel; same layout as ``black76_kernel``.  O(n)."""
    for i in prange(F.shape[0]):
        c, p, _de, _ga, _ve, _th, _rh, _va, _vo = black76_one(F[i], K[i], T[i], vol[i], is_call[i], r[i])
        codes[i] = c
        price[i] = p
