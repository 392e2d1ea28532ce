"""Smiles: SVI fits per expiry, the butterfly-arbitrage check, marks and PNG plots.

Raw SVI (Gatheral 2004) gives the total implied variance w = vol^2 t at
log-moneyness k = ln(K/F):

    w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2))

Fitting: for fixed (m, sigma) the model is linear in (a, b*rho, b), so a
weighted least-squares solve gives them exactly (the "quasi-explicit"
reduction of Zeliade, 2009); (m, sigma) are found by a coarse grid and twelve
rounds of local grid refinement (halving the step each round).  Constraints b >= 0, |rho| < 1 are enforced
by clipping and re-solving for a.  No scipy needed.

Butterfly arbitrage: a smile is free of it when the density is non-negative,
i.e. Gatheral's g(k) = (1 - k w'/(2w))^2 - w'^2/4 (1/w + 1/4) + w''/2 >= 0
and w > 0; ``butterfly_violations`` reports the log-moneyness where it fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shardex.options.api import greeks, implied_vol

__all__ = ["SviFit", "butterfly_violations", "fit_svi", "mark_from_fits", "plot_smile", "smile_quotes", "fit_chain"]


@dataclass(frozen=True)
class SviFit:
    """Raw SVI parameters of one expiry, with its fit quality (``rmse`` in vol points)."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float
    t: float
    rmse_vol: float = float("nan")
    n_quotes: int = 0

    def total_variance(self, k):
        """w(k); O(len(k))."""
        d = np.asarray(k, dtype=float) - self.m
        return self.a + self.b * (self.rho * d + np.sqrt(d * d + self.sigma * self.sigma))

    def implied_vol(self, k):
        """sqrt(w(k)/t): the fitted implied volatility at log-moneyness k (NaN where w <= 0)."""
        w = self.total_variance(k)
        with np.errstate(invalid="ignore"):
            return np.where(w > 0, np.sqrt(np.maximum(w, 0.0) / self.t), np.nan)

    def g(self, k):
        """Gatheral's butterfly function g(k); negative where the density would be."""
        k = np.asarray(k, dtype=float)
        d = k - self.m
        r = np.sqrt(d * d + self.sigma * self.sigma)
        w = self.total_variance(k)
        w1 = self.b * (self.rho + d / r)
        w2 = self.b * self.sigma * self.sigma / r**3
        return (1 - k * w1 / (2 * w)) ** 2 - w1 * w1 / 4 * (1 / w + 0.25) + w2 / 2

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def _solve_linear(k, w, wt, m, sigma):
    d = k - m
    r = np.sqrt(d * d + sigma * sigma)
    X = np.column_stack([np.ones_like(k), d, r]) * wt[:, None]
    coef, *_ = np.linalg.lstsq(X, w * wt, rcond=None)
    a, c1, c2 = coef
    b = max(c2, 1e-10)
    rho = float(np.clip(c1 / b, -0.999, 0.999))
    if c2 < 1e-10 or abs(c1) > 0.999 * b:  # clipped: re-fit the level only
        a = float(np.sum(wt * wt * (w - b * (rho * d + r))) / np.sum(wt * wt))
    sse = float(np.sum((wt * (w - (a + b * (rho * d + r)))) ** 2))
    return sse, (float(a), float(b), rho, float(m), float(sigma))


def fit_svi(k, vol, t: float, weights=None) -> SviFit:
    """Fit raw SVI to implied vols ``vol`` at log-moneyness ``k`` of one expiry ``t`` (years).

    ``weights`` (e.g. vega) default to 1.  O(n * 400 * 4) small least-squares solves.
    """
    k = np.asarray(k, dtype=float)
    vol = np.asarray(vol, dtype=float)
    ok = np.isfinite(k) & np.isfinite(vol) & (vol > 0)
    k, vol = k[ok], vol[ok]
    wt = np.ones_like(k) if weights is None else np.asarray(weights, dtype=float)[ok]
    if k.size < 5:
        raise ValueError(f"an SVI fit needs at least 5 quotes, got {k.size}")
    w = vol * vol * t
    span = max(k.max() - k.min(), 0.05)
    ms = np.linspace(k.min() - 0.25 * span, k.max() + 0.25 * span, 21)
    ss = np.geomspace(0.005, 2.0, 21)
    best = min(((_solve_linear(k, w, wt, m, s)) for m in ms for s in ss), key=lambda x: x[0])
    dm, ds = ms[1] - ms[0], np.log(ss[1] / ss[0])
    for _ in range(12):  # local refinement around the best (m, sigma)
        m0, s0 = best[1][3], best[1][4]
        cand = [(_solve_linear(k, w, wt, m, s)) for m in m0 + dm * np.linspace(-1, 1, 7)
                for s in s0 * np.exp(ds * np.linspace(-1, 1, 7))]
        best = min([best, *cand], key=lambda x: x[0])
        dm, ds = dm / 2, ds / 2
    a, b, rho, m, sigma = best[1]
    fit = SviFit(a, b, rho, m, sigma, float(t), n_quotes=int(k.size))
    rmse = float(np.sqrt(np.nanmean((fit.implied_vol(k) - vol) ** 2)) * 100)
    return SviFit(a, b, rho, m, sigma, float(t), rmse, int(k.size))


def butterfly_violations(fit: SviFit, k_min: float = -1.5, k_max: float = 1.5, n: int = 601) -> np.ndarray:
    """Log-moneyness points in [k_min, k_max] where g(k) < 0 or w(k) <= 0 (empty: arbitrage-free there)."""
    k = np.linspace(k_min, k_max, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        bad = (fit.g(k) < 0) | (fit.total_variance(k) <= 0)
    return k[bad]


def smile_quotes(frame: pd.DataFrame) -> pd.DataFrame:
    """Out-of-the-money quotes of a Deribit frame with their implied vols.

    Mid IV from the best bid and ask (coins, inverted by ``implied_vol``) when
    both exist, otherwise the exchange's mark IV.  Columns: ``expiry_ms, t, k,
    vol, bid_vol, ask_vol, mark_vol, strike, is_call, forward``.
    """
    f = frame["forward"].to_numpy()
    k_abs = frame["strike"].to_numpy()
    otm = np.where(frame["is_call"], k_abs >= f, k_abs < f)
    fr = frame[otm].copy()
    f, kk, t, c = (fr[x].to_numpy() for x in ("forward", "strike", "t", "is_call"))
    out = pd.DataFrame({"expiry_ms": fr["expiry_ms"].to_numpy(), "t": t, "k": np.log(kk / f), "strike": kk,
                        "is_call": c, "forward": f, "mark_vol": fr["mark_iv"].to_numpy()})
    for side in ("bid", "ask"):
        col = f"best_{side}_price"
        if col in fr:
            p = fr[col].to_numpy() * f
            v = implied_vol(np.where(p > 0, p, np.nan), f, kk, t, c)
            out[f"{side}_vol"] = v
        else:
            out[f"{side}_vol"] = np.nan
    mid = 0.5 * (out["bid_vol"] + out["ask_vol"])
    out["vol"] = np.where(np.isfinite(mid), mid, out["mark_vol"])
    return out


def fit_chain(frame: pd.DataFrame) -> dict[int, SviFit]:
    """One SVI fit per expiry of a Deribit frame (expiries with fewer than 5 quotes are skipped)."""
    quotes = smile_quotes(frame)
    fits = {}
    for expiry, q in quotes.groupby("expiry_ms"):
        if len(q) >= 5:
            fits[int(expiry)] = fit_svi(q["k"], q["vol"], float(q["t"].mean()))
    return fits


def mark_from_fits(frame: pd.DataFrame, fits: dict[int, SviFit]) -> pd.DataFrame:
    """Mark IV and mark price (USD and coins) of every listed option from the fitted smiles."""
    k = np.log(frame["strike"].to_numpy() / frame["forward"].to_numpy())
    iv = np.full(len(frame), np.nan)
    for expiry, fit in fits.items():
        sel = frame["expiry_ms"].to_numpy() == expiry
        iv[sel] = fit.implied_vol(k[sel])
    g = greeks(frame["forward"].to_numpy(), frame["strike"].to_numpy(), frame["t"].to_numpy(), iv, frame["is_call"].to_numpy())
    return pd.DataFrame({"instrument_name": frame["instrument_name"].to_numpy(), "mark_iv": iv, "mark_price_usd": g["price"],
                         "mark_price_coin": g["price"] / frame["forward"].to_numpy(), "code": g.codes})


def plot_smile(fit: SviFit, quotes: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Write a PNG of the fitted smile with the bid/ask/mid quotes (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    kk = np.linspace(min(quotes["k"].min(), -0.1) - 0.1, max(quotes["k"].max(), 0.1) + 0.1, 300)
    ax.plot(kk, fit.implied_vol(kk) * 100, "-", color="tab:blue", label="SVI fit")
    if quotes["bid_vol"].notna().any():
        ax.plot(quotes["k"], quotes["bid_vol"] * 100, "^", color="tab:green", ms=4, label="bid IV")
        ax.plot(quotes["k"], quotes["ask_vol"] * 100, "v", color="tab:red", ms=4, label="ask IV")
    ax.plot(quotes["k"], quotes["vol"] * 100, "o", mfc="none", color="k", ms=5, label="quote used (mid / mark)")
    bad = butterfly_violations(fit, kk.min(), kk.max())
    if bad.size:
        ax.plot(bad, fit.implied_vol(bad) * 100, "x", color="tab:orange", label="butterfly violation")
    ax.set_xlabel("log-moneyness ln(K/F)")
    ax.set_ylabel("implied vol (%)")
    ax.set_title(title or f"SVI smile, t = {fit.t * 365:.1f} days, rmse {fit.rmse_vol:.2f} vol pts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
