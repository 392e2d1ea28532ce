"""Hypothesis strategies and seeded grids shared by the option tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

HOUR = 1.0 / 8760.0

forwards = st.floats(min_value=1.0, max_value=200_000.0, allow_nan=False, allow_infinity=False)
log_moneyness = st.floats(min_value=-1.2, max_value=1.2, allow_nan=False)
expiries = st.floats(min_value=np.log(HOUR), max_value=np.log(3.0)).map(np.exp)
vols = st.floats(min_value=0.05, max_value=2.5, allow_nan=False)
rates = st.floats(min_value=-0.02, max_value=0.10, allow_nan=False)


def random_grid(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    """The grid of the issue: moneyness e^-1.2..e^1.2, 1 hour..3 years, 5 %..250 % vol, both types."""
    rng = np.random.default_rng(seed)
    forward = rng.uniform(50.0, 150_000.0, n)
    return {
        "forward": forward,
        "strike": forward * np.exp(rng.uniform(-1.2, 1.2, n)),
        "t": np.exp(rng.uniform(np.log(HOUR), np.log(3.0), n)),
        "vol": rng.uniform(0.05, 2.5, n),
        "is_call": rng.random(n) < 0.5,
    }
