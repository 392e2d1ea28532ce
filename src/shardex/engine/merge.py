"""Dealing a batch out to the shards, and merging their events back, in linear time.

``partition`` splits a command batch into one contiguous run per shard
(commands keep their order within a run; a mass cancel of every instrument
goes to every shard).  ``merge_events`` merges the shards' event streams,
each already in command order, on (seq, instrument): a k-way merge, not a
sort.  Both are kernels that release the GIL and copy whole records, which
numpy's fancy indexing of structured arrays does slowly.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.schema import COMMAND_DTYPE, EVENT_DTYPE

__all__ = ["merge_events", "partition"]

_MASS_CANCEL = 4


@njit(cache=True, nogil=True)
def _partition(cmds, shard_of, nshards, out, starts):
    n = cmds.shape[0]
    counts = np.zeros(nshards, dtype=np.int64)
    for i in range(n):
        inst = cmds[i].instrument
        if cmds[i].kind == _MASS_CANCEL and inst == -1:
            for s in range(nshards):
                counts[s] += 1
        else:
            s = 0
            if 0 <= inst < shard_of.shape[0]:
                s = shard_of[inst]
            counts[s] += 1
    starts[0] = 0
    for s in range(nshards):
        starts[s + 1] = starts[s] + counts[s]
    fill = starts[:-1].copy()
    for i in range(n):
        inst = cmds[i].instrument
        if cmds[i].kind == _MASS_CANCEL and inst == -1:
            for s in range(nshards):
                out[fill[s]] = cmds[i]
                fill[s] += 1
        else:
            s = 0
            if 0 <= inst < shard_of.shape[0]:
                s = shard_of[inst]
            out[fill[s]] = cmds[i]
            fill[s] += 1
    return starts[nshards]


def partition(cmds: np.ndarray, shard_of: np.ndarray, nshards: int, buffer: np.ndarray | None = None) -> list[np.ndarray]:
    """One command array per shard; unknown instruments go to shard 0 (which rejects them).

    The runs are views into ``buffer`` when it is large enough (``nshards *
    len(cmds)`` commands), else into a new array; reusing one buffer batch
    after batch spares the allocator (and the page-table lock the shard
    threads need) a large allocation per batch.
    """
    need = nshards * len(cmds)
    out = buffer if buffer is not None and len(buffer) >= need else np.empty(need, dtype=COMMAND_DTYPE)
    starts = np.zeros(nshards + 1, dtype=np.int64)
    _partition(cmds, shard_of, nshards, out, starts)
    return [out[starts[s]:starts[s + 1]] for s in range(nshards)]


@njit(cache=True, nogil=True)
def _merge(parts, out):
    """k-way merge of the shards' event runs (a tuple of arrays, each in order) into out."""
    k = len(parts)
    heads = np.zeros(k, dtype=np.int64)
    for j in range(out.shape[0]):
        best = -1
        bseq = 0
        binst = 0
        for r in range(k):
            h = heads[r]
            if h < parts[r].shape[0]:
                seq = parts[r][h].seq
                inst = parts[r][h].instrument
                if best < 0 or seq < bseq or (seq == bseq and inst < binst):
                    best = r
                    bseq = seq
                    binst = inst
        out[j] = parts[best][heads[best]]
        heads[best] += 1


def merge_events(parts: list[np.ndarray]) -> np.ndarray:
    """Merge per-shard event streams (each in sequence order) into one new array.

    Within one command the events of one instrument keep their order; a
    command that spans shards (a mass cancel of every instrument) lists its
    instruments in id order, as one shard holding them all would.  The
    kernel reads the shards' buffers in place: one copy of each event, into
    the array returned.
    """
    nonempty = [p for p in parts if len(p)]
    if len(nonempty) <= 1:
        return nonempty[0].copy() if nonempty else np.zeros(0, dtype=EVENT_DTYPE)
    out = np.empty(sum(len(p) for p in parts), dtype=EVENT_DTYPE)
    _merge(tuple(parts), out)  # every part, empty ones too: one compiled kernel per shard count
    return out
