"""Monte Carlo pricer (numba, parallel) with reproducible, independent random streams.

Reproducibility whatever the thread count: the paths are cut into fixed
blocks of ``BLOCK`` samples; block ``b`` draws from its own xoshiro256**
generator seeded by splitmix64 from ``(seed, b)``, so which thread runs a
block never changes its numbers.  Each block returns its sum and sum of
squares, and the blocks are added in block order afterwards: the result is
bit-identical for 1, 2 or 64 threads.  (Independence of the streams rests on
splitmix64 scattering the seeds over xoshiro's 2^256 state space, the usual
argument for seeding it.)

Model: the forward is a driftless GBM, F_t = F exp(-vol^2 t/2 + vol W_t)
(Black-76's measure); prices are discounted at ``rate``.  Antithetic
variates pair each normal vector Z with -Z; the standard error is taken over
the pair means, so it is honest about the pairing.

Payoffs: ``european`` (terminal), ``asian`` (arithmetic average of the
forward at n_steps equally spaced dates, the last at expiry) and
``asian_geometric`` (geometric average: it has a closed form, which tests use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

__all__ = ["BLOCK", "MCResult", "geometric_asian_price", "mc_price"]

BLOCK = 4096
PAYOFFS = {"european": 0, "asian": 1, "asian_geometric": 2}
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True)
def _splitmix(x):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x, z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True, nogil=True)
def _next(s):
    """xoshiro256**: next 64-bit output; ``s`` is the 4-word state, updated in place."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(cache=True, nogil=True)
def _uniform(s):
    """Uniform in (0, 1): 53 random bits, never 0 (Box-Muller takes its log)."""
    return ((_next(s) >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def _payoff(F, K, is_call, kind, drift, sd, z, sign):
    n = z.shape[0]
    logf = math.log(F)
    acc = 0.0
    for i in range(n):
        logf += drift + sd * sign * z[i]
        if kind == 1:
            acc += math.exp(logf)
        elif kind == 2:
            acc += logf
    if kind == 0:
        x = math.exp(logf)
    elif kind == 1:
        x = acc / n
    else:
        x = math.exp(acc / n)
    return max(x - K, 0.0) if is_call else max(K - x, 0.0)


@njit(cache=True, nogil=True, parallel=True)
def _mc_kernel(F, K, T, vol, is_call, kind, n_steps, n_samples, seed, antithetic, sums, sqs):
    n_blocks = sums.shape[0]
    dt = T / n_steps
    drift = -0.5 * vol * vol * dt
    sd = vol * math.sqrt(dt)
    for b in prange(n_blocks):
        st, _ = _splitmix(np.uint64(seed) ^ (np.uint64(b) * np.uint64(0xD1B54A32D192ED03)))
        s = np.empty(4, dtype=np.uint64)
        for w in range(4):
            st, s[w] = _splitmix(st)
        z = np.empty(n_steps)
        first = b * BLOCK
        last = min(first + BLOCK, n_samples)
        acc = 0.0
        acc2 = 0.0
        spare = 0.0
        have = False
        for _ in range(first, last):
            for i in range(n_steps):  # Box-Muller, using both normals of each pair
                if have:
                    z[i] = spare
                    have = False
                else:
                    r = math.sqrt(-2.0 * math.log(_uniform(s)))
                    th = 2.0 * math.pi * _uniform(s)
                    z[i] = r * math.cos(th)
                    spare = r * math.sin(th)
                    have = True
            x = _payoff(F, K, is_call, kind, drift, sd, z, 1.0)
            if antithetic:
                x = 0.5 * (x + _payoff(F, K, is_call, kind, drift, sd, z, -1.0))
            acc += x
            acc2 += x * x
        sums[b] = acc
        sqs[b] = acc2


@dataclass(frozen=True)
class MCResult:
    """A Monte Carlo price with its standard error; ``n_samples`` counts pairs when antithetic."""

    price: float
    stderr: float
    n_samples: int
    antithetic: bool


def mc_price(forward: float, strike: float, t: float, vol: float, is_call: bool, *, payoff: str = "european",
             n_paths: int = 200_000, n_steps: int = 1, seed: int = 0, antithetic: bool = True,
             rate: float = 0.0) -> MCResult:
    """Monte Carlo price of one option; ``n_paths`` normal vectors (each also used negated if antithetic).

    Runs in parallel over blocks of ``BLOCK`` samples; the same ``seed`` gives
    the same result for any number of threads.  O(n_paths * n_steps).
    """
    if payoff not in PAYOFFS:
        raise ValueError(f"payoff must be one of {sorted(PAYOFFS)}, got {payoff!r}")
    if not (forward > 0 and strike > 0 and t > 0 and vol > 0 and n_paths >= 2 and n_steps >= 1):
        raise ValueError("need forward, strike, t, vol > 0, n_paths >= 2 and n_steps >= 1")
    if payoff == "european":
        n_steps = 1  # the terminal value needs one step of the exact GBM
    n_blocks = -(-n_paths // BLOCK)
    sums = np.empty(n_blocks)
    sqs = np.empty(n_blocks)
    _mc_kernel(float(forward), float(strike), float(t), float(vol), bool(is_call), PAYOFFS[payoff], int(n_steps),
               int(n_paths), int(seed) & 0xFFFFFFFFFFFFFFFF, bool(antithetic), sums, sqs)
    total, total2 = 0.0, 0.0
    for b in range(n_blocks):  # fixed order: the sum does not depend on the thread count
        total += sums[b]
        total2 += sqs[b]
    mean = total / n_paths
    var = max(total2 / n_paths - mean * mean, 0.0) * n_paths / (n_paths - 1)
    disc = math.exp(-rate * t)
    return MCResult(disc * mean, disc * math.sqrt(var / n_paths), int(n_paths), bool(antithetic))


def geometric_asian_price(forward: float, strike: float, t: float, vol: float, is_call: bool, n_steps: int,
                          rate: float = 0.0) -> float:
    """Closed form of the discretely monitored geometric Asian (dates iT/n, i = 1..n) under Black-76."""
    from shardex.options.api import black76_price

    n = n_steps
    var = vol * vol * t * (n + 1) * (2 * n + 1) / (6.0 * n * n)
    mean_log = math.log(forward) - vol * vol * t * (n + 1) / (4.0 * n)
    fwd_g = math.exp(mean_log + 0.5 * var)
    # Black with total variance var: pass it as vol sqrt(var) over one year
    return black76_price(fwd_g, strike, 1.0, math.sqrt(var), is_call, rate * t)
