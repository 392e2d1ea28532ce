"""Implied-volatility kernel: Black-76, safeguarded Halley iteration in a proven bracket.

Method (not Jäckel's "Let's Be Rational"; the convergence argument is that of
his earlier "By Implication", Wilmott 2006, plus an explicit bracket):

1. Reduce every quote to the *normalised out-of-the-money call*: by put-call
   parity an in-the-money price minus its intrinsic value is the price of the
   opposite option, and a put with log-moneyness x is a call with -x, so we
   solve b(x, s) = beta with x = -|ln(F/K)| <= 0, s = vol*sqrt(T),
   beta = otm_price / sqrt(F K) and
       b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2).
   b rises strictly from 0 to e^{x/2} as s goes from 0 to infinity
   (db/ds = e^{x/2} phi(x/s + s/2) > 0), so exactly one s solves it whenever
   0 < beta < e^{x/2}; otherwise the quote breaks a no-arbitrage bound and the
   result is NaN with a reason code.
2. b is convex below s_c = sqrt(2|x|) and concave above.  Below b(s_c) we solve
   ln b(s) = ln beta (ln b ~ -x^2/(2 s^2) is nearly linear in 1/s^2, so the
   exponentially flat wing converges quickly); above it we solve
   ln(e^{x/2} - b(s)) = ln(e^{x/2} - beta), whose terms never cancel.
3. Every evaluation tightens a bracket [lo, hi] with b(lo) <= beta <= b(hi)
   (initially [0, s_c] or [s_c, inf)).  A Halley step that leaves the bracket is
   replaced by bisection (or doubling while hi is infinite), so the iteration
   converges for every admissible input; with the asymptotic initial guesses
   below it takes 2-4 Halley steps (cubic convergence).

Accuracy: ~1e-14 relative in s on exact inputs; what limits real quotes is the
time value left after subtracting the intrinsic value.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from shardex.options._black import NON_FINITE_INPUT, OK, check_inputs, mills_ratio
from shardex.options._codes import OptionCode

PRICE_BELOW_INTRINSIC = int(OptionCode.PRICE_BELOW_INTRINSIC)
PRICE_ABOVE_UPPER_BOUND = int(OptionCode.PRICE_ABOVE_UPPER_BOUND)
NO_TIME_VALUE = int(OptionCode.NO_TIME_VALUE)
NOT_CONVERGED = int(OptionCode.NOT_CONVERGED)

_INV_SQRT2PI = 0.3989422804014327
_HALF_LN_2PI = 0.9189385332046728
_MAX_ITER = 60
# Halley converges cubically: once a step is below 1e-6 of s the remaining
# error is of order (1e-6)^3, far under the 1e-10 we promise.
_STEP_TOL = 1e-6


@njit(cache=True, nogil=True)
def _ncdf(z):
    """N(z) via the Mills ratio: the lower tail exact to ~2 ulp, the upper one as 1 - tail."""
    tail = _INV_SQRT2PI * math.exp(-0.5 * z * z) * mills_ratio(abs(z))
    return tail if z < 0.0 else 1.0 - tail


@njit(cache=True, nogil=True)
def _norm_quantile_low(p):
    """Rough N^{-1}(p) for 0 < p <= 0.5 (Abramowitz & Stegun 26.2.23, |err| < 4.5e-4).

    Only an initial guess: the Halley iteration removes its error.
    """
    t = math.sqrt(-2.0 * math.log(p))
    z = t - (2.515517 + t * (0.802853 + t * 0.010328)) / (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308)))
    return -z


@njit(cache=True, nogil=True)
def normalised_otm_call(x, s, ex):
    """(b, bmax - b, db/ds, (d2b/ds2)/(db/ds)) of the normalised call at x <= 0, s > 0; ``ex`` = e^{x/2}.

    One exponential per call: with p1 = e^{x/2} phi(h1) = e^{-x/2} phi(h2) = db/ds
    and the Mills ratio R, N(h) = phi(h) R(-h) for h < 0 gives
        h1 < 0:  b = p1 (R(-h1) - R(-h2)),   bmax - b = ex - b
        h1 >= 0: bmax - b = p1 (R(h1) + R(-h2)),   b = ex - (bmax - b)
    (h2 < 0 always).  The first form is the wing formula of ``_black.otm_wing``:
    no catastrophic cancellation however far out of the money.
    """
    h1 = x / s + 0.5 * s
    h2 = h1 - s
    p1 = _INV_SQRT2PI * math.exp(-0.5 * (x * x / (s * s) + 0.25 * s * s))
    if h1 < 0.0:
        b = p1 * (mills_ratio(-h1) - mills_ratio(-h2))
        c = ex - b
    else:
        c = p1 * (mills_ratio(h1) + mills_ratio(-h2))
        b = ex - c
    curv = x * x / (s * s * s) - 0.25 * s
    return b, c, p1, curv


@njit(cache=True, nogil=True)
def solve_normalised(x, beta):
    """Total volatility s with b(x, s) = beta, for x <= 0 and 0 < beta < e^{x/2}.

    Returns (code, s).  O(iterations), 2-4 typically.
    """
    bmax = math.exp(0.5 * x)
    gamma_t = bmax - beta  # target of the upper objective
    if gamma_t <= 0.0:
        return PRICE_ABOVE_UPPER_BOUND, np.nan
    sc = math.sqrt(-2.0 * x)
    # at the inflection point h1 = 0 and h2 = -sc: b(sc) = ex/2 - N(-sc)/ex
    bc = 0.5 * bmax - _ncdf(-sc) / bmax if sc > 0.0 else 0.0
    low = beta < bc
    lbeta = 0.0
    lgam = 0.0
    f1 = 0.0
    f2 = 0.0
    if low:
        lo, hi = 0.0, sc
        lbeta = math.log(beta)
        ax = -x
        # asymptotic wing: ln b ~ -x^2/(2s^2) - s^2/8 + 3 ln s - 2 ln|x| - ln sqrt(2 pi)
        s = ax / math.sqrt(-2.0 * lbeta)
        for _ in range(2):
            u = 3.0 * math.log(s) - 2.0 * math.log(ax) - _HALF_LN_2PI - 0.125 * s * s - lbeta
            if u <= 0.0:
                break
            s = ax / math.sqrt(2.0 * u)
        # second guess: ln b = A - x^2/(2 s^2) calibrated to be exact at sc; it is the
        # better one near sc, where the asymptotic one falls short by 2-3x
        s_cal = ax / math.sqrt(2.0 * (math.log(bc) + 0.25 * ax - lbeta))
        if not s > 0.0 or s_cal > s:
            s = s_cal
        if not (0.0 < s < sc):
            s = 0.5 * sc
    else:
        lo, hi = sc, np.inf
        lgam = math.log(gamma_t)
        # x = 0 limit: bmax - b = 2 N(-s/2); the cosh factor spreads it over both terms
        p = gamma_t / (bmax + 1.0 / bmax)
        s = -2.0 * _norm_quantile_low(min(p, 0.5))
        if not (s > sc):
            s = sc + 0.5 * (sc + 1.0)
    for _ in range(_MAX_ITER):
        b, c, db, curv = normalised_otm_call(x, s, bmax)
        if b < beta:
            lo = s
        else:
            hi = s
        if low:
            if b <= 0.0:
                f = -np.inf
            else:
                f = math.log(b) - lbeta
                f1 = db / b
                f2 = db * curv / b - f1 * f1
        else:
            if c <= 0.0:
                f = np.inf
            else:
                f = math.log(c) - lgam
                f1 = -db / c
                f2 = -db * curv / c - f1 * f1
        if f == 0.0:
            return OK, s
        if math.isfinite(f) and f1 != 0.0:
            newton = -f / f1
            denom = 1.0 + 0.5 * newton * f2 / f1  # = 1 - f f'' / (2 f'^2)
            # Halley's correction; fall back to Newton when it would flip the step
            step = newton / denom if denom > 0.5 else newton
            if abs(step) <= _STEP_TOL * s:
                # converged: the last correction is below the bracket's resolution anyway
                return OK, min(max(s + step, lo), hi)
            s_new = s + step
        else:
            s_new = np.nan
        if not (lo < s_new < hi):
            s_new = 0.5 * (lo + hi) if math.isfinite(hi) else 2.0 * max(s, lo, 1e-3)
        if math.isfinite(hi) and hi - lo <= 4e-16 * hi:
            return OK, 0.5 * (lo + hi)
        s = s_new
    return NOT_CONVERGED, np.nan


@njit(cache=True, nogil=True)
def implied_vol_one(price, F, K, T, is_call, r):
    """(code, vol) of one Black-76 price (discounted at rate r)."""
    code = check_inputs(F, K, T, r)
    if code == OK and not math.isfinite(price):
        code = NON_FINITE_INPUT
    if code != OK:
        return code, np.nan
    fwd_price = price * math.exp(r * T)  # undiscounted Black price
    if is_call:
        intrinsic = F - K if F > K else 0.0
        upper = F
    else:
        intrinsic = K - F if K > F else 0.0
        upper = K
    if fwd_price < intrinsic:
        return PRICE_BELOW_INTRINSIC, np.nan
    if fwd_price >= upper:
        return PRICE_ABOVE_UPPER_BOUND, np.nan
    otm = fwd_price - intrinsic  # the out-of-the-money option's price by parity
    beta = otm / math.sqrt(F * K)
    if not beta > 0.0:
        return NO_TIME_VALUE, np.nan
    x = -abs(math.log(F / K))
    c, s = solve_normalised(x, beta)
    if c != OK:
        return c, np.nan
    if not s > 0.0:
        return NO_TIME_VALUE, np.nan
    return OK, s / math.sqrt(T)


@njit(cache=True, nogil=True, parallel=True)
def implied_vol_kernel(price, F, K, T, is_call, r, vol, codes):
    """Fill ``vol`` and ``codes`` for every price, in parallel.  O(n) work."""
    for i in prange(price.shape[0]):
        c, v = implied_vol_one(price[i], F[i], K[i], T[i], is_call[i], r[i])
        codes[i] = c
        vol[i] = v
