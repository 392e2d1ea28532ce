"""The sequencer: one total order for every command, and the only clock.

It stamps each batch with gap-free sequence numbers and a timestamp that never
goes backwards (if the wall clock steps back, the last timestamp is reused).
Replay feeds stamped commands straight to the engine, so it never reads a clock.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


class Sequencer:
    """Stamps batches with ``seq`` (gap-free, from ``next_seq``) and ``ts`` (ns, non-decreasing).

    Parameters
    ----------
    next_seq
        The sequence number the next command gets.
    clock
        Returns nanoseconds since the epoch; read once per batch.
    """

    def __init__(self, next_seq: int = 1, clock: Callable[[], int] = time.time_ns, last_ts: int = 0) -> None:
        if next_seq < 1:
            raise ValueError("sequence numbers start at 1")
        self.next_seq = int(next_seq)
        self.last_ts = int(last_ts)
        self._clock = clock

    def stamp(self, cmds: np.ndarray) -> np.ndarray:
        """Set ``seq`` and ``ts`` of every command of the batch in place; returns the batch."""
        first, ts = self.reserve(len(cmds))
        cmds["seq"] = np.arange(first, first + len(cmds), dtype=np.int64)
        cmds["ts"] = ts
        return cmds

    def reserve(self, n: int) -> tuple[int, int]:
        """Take the next ``n`` sequence numbers and the batch's timestamp: ``(first seq, ts)``.

        For a caller that writes the stamps itself in a pass it makes anyway
        (``Exchange.process`` does, in ``merge.deal``); ``stamp`` is this plus the writing.
        """
        ts = max(int(self._clock()), self.last_ts)
        first = self.next_seq
        self.next_seq += n
        self.last_ts = ts
        return first, ts

    def observe(self, cmds: np.ndarray) -> None:
        """Advance past an already stamped batch (replay); refuses a gap or a step back in time."""
        if len(cmds) == 0:
            return
        first = int(cmds["seq"][0])
        if first != self.next_seq or np.any(np.diff(cmds["seq"]) != 1):
            raise ValueError(f"replayed batch starts at seq {first}, expected {self.next_seq} with no gaps")
        if int(cmds["ts"][0]) < self.last_ts or np.any(np.diff(cmds["ts"]) < 0):
            raise ValueError("replayed batch has timestamps that go backwards")
        self.next_seq = first + len(cmds)
        self.last_ts = int(cmds["ts"][-1])
