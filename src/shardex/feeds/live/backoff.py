"""Reconnect delays: exponential, capped, with optional jitter from a seeded generator."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delay before reconnect attempt ``n`` (0-based): ``min(cap, initial * factor**n)``, times ``1 ± jitter``.

    ``jitter`` is a fraction (0.2: ±20%) drawn from ``random.Random(seed)``, so
    a test that sets a seed (or ``jitter=0``, the default) gets the same
    delays every run; live use sets a jitter so that many clients dropped at
    once do not reconnect in lockstep. :meth:`reset` after a session that
    reached a synced book starts the sequence again.
    """

    initial: float = 0.1
    factor: float = 2.0
    cap: float = 5.0
    jitter: float = 0.0
    seed: int | None = 0
    attempt: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial < 0 or self.factor < 1 or self.cap < 0 or not 0 <= self.jitter < 1:
            raise ValueError(
                f"backoff needs initial >= 0, factor >= 1, cap >= 0 and 0 <= jitter < 1; got "
                f"initial={self.initial}, factor={self.factor}, cap={self.cap}, jitter={self.jitter}"
            )
        self._rng = random.Random(self.seed)

    def next_delay(self) -> float:
        """The delay (seconds) for the next attempt; advances the attempt count. O(1)."""
        d = min(self.cap, self.initial * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        if self.jitter:
            d *= 1.0 + self.jitter * (2.0 * self._rng.random() - 1.0)
        return d

    def reset(self) -> None:
        """Start again from ``initial`` (after a healthy session)."""
        self.attempt = 0
