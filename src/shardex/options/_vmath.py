"""Branch-free ``exp``, ``log`` and Mills ratio that LLVM can vectorize (numba).

libm's ``exp``/``log`` are opaque calls: a loop that calls them runs one option
at a time.  These versions are straight-line arithmetic (range reduction by bit
manipulation, a polynomial, selects instead of branches), so a ``prange`` loop
built from them is vectorized by LLVM with the widest SIMD of the host (AVX-512
on the benchmark machine: 8 options per instruction).

Accuracy (checked against mpmath in ``tests/options/test_simd_kernel.py``):
``vexp`` <= 1 ulp for -745 < x < 709.7 (0 below, inf above), ``vlog`` <= 1 ulp for
normal positive x (fdlibm's ``__ieee754_log`` polynomial), ``mills_table``
as ``_black.mills_ratio`` for 0 <= t < 40 (the same table, without the
continued fraction beyond 40: the caller handles that range).

They assume finite, in-range arguments; callers route the rest (NaN, inf,
subnormal) to the scalar libm-based path.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from shardex.options import _mills_table


@intrinsic
def _f64_bits(typingctx, x):
    """Reinterpret a float64 as int64 (no conversion)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _bits_f64(typingctx, x):
    """Reinterpret an int64 as float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: n * _LN2_HI is exact for |n| < 2^20
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2^52: adding it rounds to an integer held in the low mantissa bits
_ROUND_BITS = 0x4338000000000000

# 1/k! for k = 2..13: the Taylor series of e^r on |r| <= ln2/2 to 13 terms, truncation < 4e-18
_E2 = 1.0 / 2.0
_E3 = 1.0 / 6.0
_E4 = 1.0 / 24.0
_E5 = 1.0 / 120.0
_E6 = 1.0 / 720.0
_E7 = 1.0 / 5040.0
_E8 = 1.0 / 40320.0
_E9 = 1.0 / 362880.0
_E10 = 1.0 / 3628800.0
_E11 = 1.0 / 39916800.0
_E12 = 1.0 / 479001600.0
_E13 = 1.0 / 6227020800.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def vexp(x):
    """e^x without libm, branch-free.  <= 1 ulp; 0 for x < -745.2, inf for x > 709.8.

    x = n ln2 + r with |r| <= ln2/2; e^r by its Taylor polynomial (Estrin's
    scheme); 2^n applied as two exact power-of-two factors so that results in
    the subnormal range are rounded once.  NaN in, garbage out (callers screen NaN).
    """
    x = min(max(x, -760.0), 720.0)
    k = x * _INV_LN2 + _ROUND
    n = _f64_bits(k) - _ROUND_BITS
    nf = k - _ROUND
    r = (x - nf * _LN2_HI) - nf * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    # 1 + (r + r^2 q(r)): the leading 1 is added last, so the sum rounds about once
    q01 = _E2 + _E3 * r
    q23 = _E4 + _E5 * r
    q45 = _E6 + _E7 * r
    q67 = _E8 + _E9 * r
    q89 = _E10 + _E11 * r
    qab = _E12 + _E13 * r
    q = ((q01 + q23 * r2) + (q45 + q67 * r2) * r4) + ((q89 + qab * r2) * r8)
    p = 1.0 + (r + r2 * q)
    n1 = n >> 1
    n2 = n - n1
    s1 = _bits_f64((n1 + 1023) << 52)
    s2 = _bits_f64((n2 + 1023) << 52)
    return p * s1 * s2


# fdlibm e_log.c: log(1+f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f), |error| < 1 ulp
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_MANT = 0x000FFFFFFFFFFFFF
_SQRT2_MANT = 0x6A09E667F3BCD  # mantissa bits of sqrt(2)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def vlog(x):
    """ln x without libm, branch-free, for normal positive finite x.  <= 1 ulp.

    x = 2^k m with sqrt(1/2) <= m < sqrt(2), f = m - 1; fdlibm's minimax
    polynomial in s = f / (2 + f).  Zero, negative, subnormal, inf and NaN
    arguments give garbage: callers screen them.
    """
    bits = _f64_bits(x)
    mant = bits & _MANT
    # shift the mantissa to [sqrt(1/2), sqrt(2)): m >= sqrt(2) takes the next exponent
    up = mant >= _SQRT2_MANT
    e = (bits >> 52) - 1023 + np.int64(up)
    m = _bits_f64(mant | ((1023 - np.int64(up)) << 52))
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    rr = t2 + t1
    hfsq = 0.5 * f * f
    k = np.float64(e)
    return k * _LN2_HI - ((hfsq - (s * (hfsq + rr) + k * _LN2_LO)) - f)


_MILLS_FLAT = np.ascontiguousarray(_mills_table.COEFFS).reshape(-1)  # frozen into the kernels
_MILLS_ROW = _mills_table.DEGREE + 1
_MILLS_LAST = _mills_table.COEFFS.shape[0] - 1
_MILLS_INV_W = 1.0 / _mills_table.WIDTH
_MILLS_W = _mills_table.WIDTH


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def mills_table(t):
    """R(t) = (1 - N(t)) / phi(t) for 0 <= t < 40 from the Taylor table, branch-free.

    The row index is clamped to the table, so t >= 40 returns a finite but
    meaningless value: callers either multiply it by phi(t) = 0 or route the
    element to the scalar path.
    """
    i = min(np.int64(t * _MILLS_INV_W), _MILLS_LAST)
    dt = t - (i + 0.5) * _MILLS_W
    b = i * _MILLS_ROW
    c = _MILLS_FLAT
    d2 = dt * dt
    d4 = d2 * d2
    lo = (c[b] + c[b + 1] * dt) + (c[b + 2] + c[b + 3] * dt) * d2 + (
        (c[b + 4] + c[b + 5] * dt) + (c[b + 6] + c[b + 7] * dt) * d2) * d4
    hi = (c[b + 8] + c[b + 9] * dt) + (c[b + 10] + c[b + 11] * dt) * d2 + (
        (c[b + 12] + c[b + 13] * dt) + c[b + 14] * d2) * d4
    return lo + hi * (d4 * d4)
