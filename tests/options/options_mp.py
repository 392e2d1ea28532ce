"""Black-76 evaluated with mpmath at 50 significant digits: the reference of the tests."""

from __future__ import annotations

import mpmath as mp

mp.mp.dps = 50


def _n(z):
    return mp.ncdf(z)


def black76_mp(F, K, T, vol, is_call, r=0.0):
    """(price, delta, gamma, vega/100, theta/365, rho/100, vanna/100, volga/1e4) as mpf, same conventions as shardex."""
    F, K, T, vol, r = (mp.mpf(float(a)) for a in (F, K, T, vol, r))
    s = vol * mp.sqrt(T)
    d1 = mp.log(F / K) / s + s / 2
    d2 = d1 - s
    D = mp.exp(-r * T)
    pdf = mp.npdf(d1)
    if is_call:
        price = D * (F * _n(d1) - K * _n(d2))
        delta = D * _n(d1)
        rho = D * K * T * _n(d2) / 100
    else:
        price = D * (K * _n(-d2) - F * _n(-d1))
        delta = -D * _n(-d1)
        rho = -D * K * T * _n(-d2) / 100
    gamma = D * pdf / (F * s)
    vega_raw = D * F * pdf * mp.sqrt(T)
    theta = (r * price - D * F * pdf * vol / (2 * mp.sqrt(T))) / 365
    vanna = -D * pdf * d2 / vol / 100
    volga = vega_raw * d1 * d2 / vol / 10000
    return price, delta, gamma, vega_raw / 100, theta, rho, vanna, volga
