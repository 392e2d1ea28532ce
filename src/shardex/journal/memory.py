"""``MemoryLog``: a ``CommandLog`` held in memory, for tests and benchmarks of other stages."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import numpy as np

from shardex.errors import JournalError
from shardex.journal.errors import SequenceError
from shardex.schema import COMMAND_DTYPE

__all__ = ["MemoryLog"]


class MemoryLog:
    """A ``CommandLog`` that keeps copies of the batches in a list; nothing is durable.

    It follows the same sequence rules as ``Journal``, so engine tests can run
    against it and catch sequencing bugs without touching a disk.
    """

    def __init__(self, *, start_seq: int = 1, dtype: np.dtype = COMMAND_DTYPE) -> None:
        self.dtype = np.dtype(dtype)
        self._batches: list[np.ndarray] = []
        self._firsts: list[int] = []
        self._first_seq = start_seq
        self._next_seq = start_seq
        self._closed = False

    @property
    def first_seq(self) -> int:
        """The lowest sequence number held."""
        return self._first_seq

    @property
    def next_seq(self) -> int:
        """The sequence number the next batch must start with."""
        return self._next_seq

    @property
    def durable_seq(self) -> int:
        """Everything appended counts as durable: there is nowhere else to put it."""
        return self._next_seq - 1

    def append(self, batch: np.ndarray, *, sync: bool = True) -> int:
        """Store a copy of ``batch``; return its last seq (``SequenceError`` on a gap); ``sync`` changes nothing."""
        if self._closed:
            raise JournalError("memory log is closed")
        if batch.dtype != self.dtype or batch.ndim != 1:
            raise TypeError(f"append takes a 1-d numpy array of dtype {self.dtype}")
        n = len(batch)
        if n == 0:
            return self._next_seq - 1
        seqs = batch["seq"]
        if int(seqs[0]) != self._next_seq or (n > 1 and not bool((np.diff(seqs) == 1).all())):
            raise SequenceError(f"memory log: batch starts at seq {int(seqs[0])}, expected {self._next_seq}, or has a gap")
        self._batches.append(batch.copy())
        self._firsts.append(self._next_seq)
        self._next_seq += n
        return self._next_seq - 1

    def read(self, from_seq: int | None = None) -> Iterator[np.ndarray]:
        """Yield the stored batches from ``from_seq`` on (the first one sliced)."""
        start = self._first_seq if from_seq is None else from_seq
        if not self._first_seq <= start <= self._next_seq:
            raise JournalError(f"memory log holds seq {self._first_seq}..{self._next_seq - 1}; cannot read from {start}")
        i = max(bisect.bisect_right(self._firsts, start) - 1, 0)
        batches, firsts = list(self._batches[i:]), list(self._firsts[i:])
        for first, batch in zip(firsts, batches):
            yield batch[start - first :] if first < start else batch

    def truncate_before(self, seq: int) -> int:
        """Drop whole batches lying below ``seq``; return how many went."""
        keep = 0
        while keep < len(self._batches) - 1 and self._firsts[keep + 1] <= seq:
            keep += 1
        del self._batches[:keep], self._firsts[:keep]
        if self._firsts:
            self._first_seq = self._firsts[0]
        return keep

    def sync(self) -> None:
        """Nothing to do."""

    def close(self) -> None:
        """Refuse later appends."""
        self._closed = True
