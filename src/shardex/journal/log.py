"""``CommandLog``: the seam between the engine and whatever stores its commands.

The engine only ever talks to this protocol, so the local ``Journal`` can be
replaced by a replicated log (a NATS JetStream stream, see docs/journal.md)
without touching the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["CommandLog"]


@runtime_checkable
class CommandLog(Protocol):
    """An append-only, gap-free log of command batches (structured arrays).

    Invariants every implementation keeps:

    - commands carry consecutive ``seq`` values; ``append`` refuses a batch
      that does not start at ``next_seq`` or has a gap inside
      (``SequenceError``);
    - once ``append`` returns, the batch is as durable as the log's policy
      promises, and ``read`` returns it, byte for byte, in order;
    - after a failure that loses durability the log refuses every later
      append (``JournalFailedError``): the caller must stop acknowledging.
    """

    @property
    def first_seq(self) -> int:
        """The lowest sequence number still held (retention may have dropped older ones)."""
        ...

    @property
    def next_seq(self) -> int:
        """The sequence number the next appended batch must start with."""
        ...

    @property
    def durable_seq(self) -> int:
        """The highest sequence number known to be durable (``first_seq - 1`` if none)."""
        ...

    def append(self, batch: np.ndarray, *, sync: bool = True) -> int:
        """Append one batch as one record; return its last ``seq`` once durable per policy.

        ``sync=False`` stores the batch but leaves making it durable to the
        caller's next ``sync()``, which it must wait for before acknowledging
        the batch (so that the wait can overlap other work).
        """
        ...

    def read(self, from_seq: int | None = None) -> Iterator[np.ndarray]:
        """Yield the batches holding ``from_seq`` onwards (default: ``first_seq``), in order."""
        ...

    def truncate_before(self, seq: int) -> int:
        """Drop stored commands below ``seq`` where the storage unit allows; return how many units went."""
        ...

    def sync(self) -> None:
        """Make everything appended so far durable now, whatever the policy."""
        ...

    def close(self) -> None:
        """Sync and release the log; later calls fail."""
        ...
