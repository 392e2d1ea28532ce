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
table of Taylor polynomials) on the side where it is small, and the
out-of-the-money price is computed first in a factored form whose terms never
cancel catastrophically; the in-the-money price adds the intrinsic value by
put-call parity.  Prices stay within ~1e-12 relative of mpmath.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from shardex.options import _mills_table
from shardex.options import _vmath as vmath
from shardex.options._codes import OptionCode

# OptionCode values as plain ints for the kernels (numba freezes module globals at compile time)
OK = int(OptionCode.OK)
NON_FINITE_INPUT = int(OptionCode.NON_FINITE_INPUT)
NONPOSITIVE_FORWARD = int(OptionCode.NONPOSITIVE_FORWARD)
NONPOSITIVE_STRIKE = int(OptionCode.NONPOSITIVE_STRIKE)
EXPIRED = int(OptionCode.EXPIRED)
NONPOSITIVE_VOL = int(OptionCode.NONPOSITIVE_VOL)

_INV_SQRT2PI = 0.3989422804014327
_DAYS_PER_YEAR = 365.0
_PER_DAY = 1.0 / _DAYS_PER_YEAR


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
    ``_gen_mills_table``), 15 multiply-adds instead of a libm ``erfc`` call.  From 40 on
    (where phi(t) < 1e-347 anyway): Laplace's continued fraction, whose depth
    6 + 600/t^2 reaches full precision there (checked against mpmath).
    """
    if t < 40.0:
        i = int(t * _MILLS_INV_W)
        dt = t - (i + 0.5) * 0.5
        c = _MILLS[i]
        # Estrin's scheme: the same polynomial as Horner's with a 4-deep instead of
        # a 14-deep chain of dependent multiply-adds (the kernels are latency-bound)
        d2 = dt * dt
        d4 = d2 * d2
        lo = (c[0] + c[1] * dt) + (c[2] + c[3] * dt) * d2 + ((c[4] + c[5] * dt) + (c[6] + c[7] * dt) * d2) * d4
        hi = (c[8] + c[9] * dt) + (c[10] + c[11] * dt) * d2 + ((c[12] + c[13] * dt) + c[14] * d2) * d4
        return lo + hi * (d4 * d4)
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
    inv_s = 1.0 / s  # one division, reused: the kernel is latency-bound
    d1 = math.log(F / K) * inv_s + 0.5 * s
    d2 = d1 - s
    # N(-|d|) = phi(d) R(|d|) is accurate relative to itself; the complement is then exact enough
    pdf1 = _INV_SQRT2PI * math.exp(-0.5 * d1 * d1)
    pdf2 = _INV_SQRT2PI * math.exp(-0.5 * d2 * d2)
    r1 = mills_ratio(abs(d1))
    r2 = mills_ratio(abs(d2))
    t1 = pdf1 * r1
    t2 = pdf2 * r2
    if d1 >= 0.0:
        n1, m1 = 1.0 - t1, t1  # N(d1), N(-d1)
    else:
        n1, m1 = t1, 1.0 - t1
    if d2 >= 0.0:
        n2, m2 = 1.0 - t2, t2
    else:
        n2, m2 = t2, 1.0 - t2
    # The out-of-the-money option (the call when F <= K) in the normalised form
    # b = e^{x/2} phi(h1) (R(-h1) - R(-h2)), x = -|ln F/K|, h1 = x/s + s/2, h2 = h1 - s,
    # where F phi(d1) = K phi(d2) is the common factor and {|h1|, |h2|} = {|d1|, |d2|}:
    # no two large terms cancel, so it keeps full relative accuracy far in the wings.
    fpdf = F * pdf1
    if F <= K:
        h1, ra, rb = d1, r1, r2
    else:
        h1, ra, rb = -d2, r2, r1
    if h1 < 0.0:
        otm = fpdf * (ra - rb)
    else:
        otm = min(F, K) - fpdf * (ra + rb)
    if F <= K:
        call, put = otm, otm + (K - F)
    else:
        put, call = otm, otm + (F - K)
    disc = math.exp(-r * T) if r != 0.0 else 1.0
    gamma = disc * pdf1 * inv_s / F
    vega_raw = disc * fpdf * sqrt_t  # per unit of vol
    if is_call:
        price = disc * call
        delta = disc * n1
        rho = disc * K * T * n2 * 0.01
    else:
        price = disc * put
        delta = -disc * m1
        rho = -disc * K * T * m2 * 0.01
    # vol / (2 sqrt T) = vol^2 / (2 s)
    theta = (r * price - disc * fpdf * (0.5 * vol * vol * inv_s)) * _PER_DAY
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


# --------------------------------------------------------------------------------------
# The vectorized kernel.  Same formulas as ``black76_one``, written branch-free on top of
# ``_vmath`` so that LLVM turns the prange loop into SIMD code.  Elements it cannot take
# (bad inputs, F/K subnormal or infinite, infinite d, or one |d| beyond the table at 40
# while the other is inside it) are flagged and redone by ``black76_one`` in a second pass.

_REDO = 255  # temporary code of an element the SIMD pass leaves to the scalar one
_TINY = 2.2250738585072014e-308  # smallest normal double
_INF = math.inf


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _black76_simd(F, K, T, vol, is_call, r):
    """(ok, price, delta, gamma, vega, theta, rho, vanna, volga) without branches or libm calls."""
    ratio = F / K
    ok = ((F > 0.0) & (F < _INF) & (K > 0.0) & (K < _INF) & (T > 0.0) & (T < _INF) & (vol > 0.0)
          & (vol < _INF) & (abs(r) < _INF) & (ratio >= _TINY) & (ratio < _INF))
    sqrt_t = math.sqrt(T)
    s = vol * sqrt_t
    inv_s = 1.0 / s
    d1 = vmath.vlog(ratio) * inv_s + 0.5 * s
    d2 = d1 - s
    a1 = abs(d1)
    a2 = abs(d2)
    # both |d| in the table, or both beyond it (then phi(d1) = phi(d2) = 0 and R does not matter)
    ok = ok & (a1 < _INF) & (a2 < _INF) & ((max(a1, a2) < 40.0) | (min(a1, a2) >= 40.0))
    pdf1 = _INV_SQRT2PI * vmath.vexp(-0.5 * d1 * d1)
    pdf2 = _INV_SQRT2PI * vmath.vexp(-0.5 * d2 * d2)
    r1 = vmath.mills_table(a1)
    r2 = vmath.mills_table(a2)
    t1 = pdf1 * r1
    t2 = pdf2 * r2
    pos1 = d1 >= 0.0
    pos2 = d2 >= 0.0
    n1 = 1.0 - t1 if pos1 else t1
    m1 = t1 if pos1 else 1.0 - t1
    n2 = 1.0 - t2 if pos2 else t2
    m2 = t2 if pos2 else 1.0 - t2
    fpdf = F * pdf1
    otm_call = F <= K
    h1 = d1 if otm_call else -d2
    ra = r1 if otm_call else r2
    rb = r2 if otm_call else r1
    otm = fpdf * (ra - rb) if h1 < 0.0 else min(F, K) - fpdf * (ra + rb)
    call = otm if otm_call else otm + (F - K)
    put = otm + (K - F) if otm_call else otm
    disc = vmath.vexp(-r * T)
    gamma = disc * pdf1 * inv_s / F
    vega_raw = disc * fpdf * sqrt_t
    price = disc * (call if is_call else put)
    delta = disc * n1 if is_call else -disc * m1
    rho = (disc * K * T * 0.01) * (n2 if is_call else -m2)
    theta = (r * price - disc * fpdf * (0.5 * vol * vol * inv_s)) * _PER_DAY
    vanna = -disc * pdf1 * d2 / vol * 0.01
    volga = vega_raw * d1 * d2 / vol * 1e-4
    return ok, price, delta, gamma, vega_raw * 0.01, theta, rho, vanna, volga


@njit(cache=True, nogil=True)
def _redo_scalar(F, K, T, vol, is_call, r, price, delta, gamma, vega, theta, rho, vanna, volga, codes):
    """Second pass: recompute the elements flagged ``_REDO`` with ``black76_one``.  O(n) scan."""
    second = vanna.shape[0] == F.shape[0]
    for i in range(F.shape[0]):
        if codes[i] == _REDO:
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


_BLOCK = 2048  # options per task: its 15 arrays' slices (~250 KB) stay in L2


@njit(cache=True, nogil=True, error_model="numpy")
def _simd_block(F, K, T, vol, is_call, r, price, delta, gamma, vega, theta, rho, vanna, volga, codes):
    """One block of ``black76_simd_kernel`` (slices of its arrays); returns how many were flagged ``_REDO``.

    The loop runs from 0 over slices, not from lo to hi over the whole arrays: numba's
    wraparound of possibly negative indices would otherwise keep LLVM from vectorizing.
    One loop body only (compile time): vanna and volga are always written, into
    block-sized scratch arrays when the caller did not ask for them.
    """
    redo = 0
    for i in range(F.shape[0]):
        ok, p, de, ga, ve, th, rh, va, vo = _black76_simd(F[i], K[i], T[i], vol[i], is_call[i], r[i])
        codes[i] = OK if ok else _REDO
        price[i] = p
        delta[i] = de
        gamma[i] = ga
        vega[i] = ve
        theta[i] = th
        rho[i] = rh
        vanna[i] = va
        volga[i] = vo
        redo += not ok
    return redo


@njit(cache=True, nogil=True)
def _simd_range(F, K, T, vol, is_call, r, price, delta, gamma, vega, theta, rho, vanna, volga, codes, lo, hi):
    """Elements lo..hi-1 of ``black76_simd_kernel``: slice, then ``_simd_block`` (keeps the parfor body small)."""
    rb = r[lo:hi] if r.shape[0] == F.shape[0] else np.full(hi - lo, r[0])
    second = vanna.shape[0] == F.shape[0]
    va = vanna[lo:hi] if second else np.empty(hi - lo)
    vo = volga[lo:hi] if second else np.empty(hi - lo)
    return _simd_block(F[lo:hi], K[lo:hi], T[lo:hi], vol[lo:hi], is_call[lo:hi], rb, price[lo:hi], delta[lo:hi],
                       gamma[lo:hi], vega[lo:hi], theta[lo:hi], rho[lo:hi], va, vo, codes[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def black76_simd_kernel(F, K, T, vol, is_call, r, price, delta, gamma, vega, theta, rho, vanna, volga, codes):
    """``black76_kernel`` vectorized: same layout and results to a few ulp.  O(n) work, n/threads span.

    ``r`` may also have length 1 (one rate for all: no n-long array to fill and read).
    Blocks of ``_BLOCK`` options run in parallel, each a SIMD loop over slices;
    elements flagged ``_REDO`` are then recomputed by ``black76_one``.
    """
    n = F.shape[0]
    nblocks = (n + _BLOCK - 1) // _BLOCK
    redo = 0
    for b in prange(nblocks):
        redo += _simd_range(F, K, T, vol, is_call, r, price, delta, gamma, vega, theta, rho, vanna, volga, codes,
                            b * _BLOCK, min(n, (b + 1) * _BLOCK))
    if redo:
        _redo_scalar(F, K, T, vol, is_call, r if r.shape[0] == n else np.full(n, r[0]), price, delta, gamma, vega,
                     theta, rho, vanna, volga, codes)


@njit(cache=True, nogil=True, error_model="numpy")
def _simd_price_block(F, K, T, vol, is_call, r, price, codes):
    """One block of ``black76_simd_price_kernel``: price only (LLVM drops the Greeks' arithmetic)."""
    redo = 0
    for i in range(F.shape[0]):
        ok, p, _de, _ga, _ve, _th, _rh, _va, _vo = _black76_simd(F[i], K[i], T[i], vol[i], is_call[i], r[i])
        codes[i] = OK if ok else _REDO
        price[i] = p
        redo += not ok
    return redo


@njit(cache=True, nogil=True)
def _redo_price_scalar(F, K, T, vol, is_call, r, price, codes):
    for i in range(F.shape[0]):
        if codes[i] == _REDO:
            c, p, _de, _ga, _ve, _th, _rh, _va, _vo = black76_one(F[i], K[i], T[i], vol[i], is_call[i], r[i])
            codes[i] = c
            price[i] = p


@njit(cache=True, nogil=True)
def _simd_price_range(F, K, T, vol, is_call, r, price, codes, lo, hi):
    rb = r[lo:hi] if r.shape[0] == F.shape[0] else np.full(hi - lo, r[0])
    return _simd_price_block(F[lo:hi], K[lo:hi], T[lo:hi], vol[lo:hi], is_call[lo:hi], rb, price[lo:hi], codes[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def black76_simd_price_kernel(F, K, T, vol, is_call, r, price, codes):
    """Price only, vectorized; bit-identical to the price of ``black76_simd_kernel``.  O(n)."""
    n = F.shape[0]
    nblocks = (n + _BLOCK - 1) // _BLOCK
    redo = 0
    for b in prange(nblocks):
        redo += _simd_price_range(F, K, T, vol, is_call, r, price, codes, b * _BLOCK, min(n, (b + 1) * _BLOCK))
    if redo:
        _redo_price_scalar(F, K, T, vol, is_call, r if r.shape[0] == n else np.full(n, r[0]), price, codes)
