"""Dealing a batch out to the shards, and merging their events back, in linear time.

``partition`` splits a command batch into one contiguous run per shard
(commands keep their order within a run; a mass cancel of every instrument
goes to every shard).  The engine itself no longer copies batches apart:
every shard walks the whole batch and skips the others' commands
(``matching.process_commands``); ``partition`` remains for benchmarks and
tests.

``merge_by_command`` merges the shards' event streams, each in command
order and all in one buffer, by walking the commands: each command's events
are one run in its owner shard's stream, copied whole; only a mass cancel of
every instrument gathers events from every shard, ordered by instrument.
``merge_events`` is the general k-way merge on (seq, instrument) it falls
back to (and must agree with).  All are kernels that release the GIL and copy whole records,
which numpy's fancy indexing of structured arrays does slowly.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.schema import COMMAND_DTYPE, EVENT_DTYPE

__all__ = ["merge_by_command", "merge_events", "partition", "regions"]

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


@njit(cache=True, nogil=True)
def _merge_commands(cmds, shard_of, buf, starts, counts, out):
    """Events of ``cmds`` in command order from the shards' regions of ``buf`` into ``out``; rows written or -1.

    A command's events are the run of its owner's region that carries its
    seq; each region's first free row gets a sentinel seq, below every seq
    of the batch, which ends every run.  -1 where the seqs do not increase
    strictly or some region is not used up (``out`` partly written).
    """
    k = starts.shape[0]
    n = cmds.shape[0]
    if n == 0 or cmds[0].seq == np.iinfo(np.int64).min:
        return -1
    for r in range(k):
        buf[starts[r] + counts[r]].seq = cmds[0].seq - 1
    heads = starts.copy()
    j = 0
    prev = 0
    for i in range(n):
        seq = cmds[i].seq
        if i > 0 and seq <= prev:
            return -1
        prev = seq
        inst = cmds[i].instrument
        if inst == -1 and cmds[i].kind == _MASS_CANCEL:
            # Every shard has a run for this command: merge them on instrument (ties: lower shard).
            while True:
                best = -1
                binst = 0
                for r in range(k):
                    h = heads[r]
                    if buf[h].seq == seq and (best < 0 or buf[h].instrument < binst):
                        best = r
                        binst = buf[h].instrument
                if best < 0:
                    break
                out[j] = buf[heads[best]]
                heads[best] += 1
                j += 1
        else:
            s = 0
            if 0 <= inst < shard_of.shape[0]:
                s = shard_of[inst]
            h = heads[s]
            while buf[h].seq == seq:
                out[j] = buf[h]
                h += 1
                j += 1
            heads[s] = h
    for r in range(k):
        if heads[r] != starts[r] + counts[r]:
            return -1
    return j


def merge_by_command(cmds: np.ndarray, shard_of: np.ndarray, buffer: np.ndarray, starts: np.ndarray,
                     counts: np.ndarray) -> np.ndarray:
    """Merge the shards' events by walking the batch ``cmds`` that made them; one new array.

    Shard ``s``'s events are ``buffer[starts[s]:starts[s] + counts[s]]`` (int64
    arrays of starts and counts), in command order, each region followed by
    at least one free row (the walk writes a sentinel there).  One buffer
    rather than one array per shard: a kernel indexing a tuple of arrays by
    a shard number it computes pays a switch per access (merge 16 -> 10 ms
    per million commands).  ``shard_of[instrument]`` is the owner shard of
    each instrument's commands (0 for ids outside it, as for any the engine
    does not list).

    The result is what ``merge_events`` gives on the same streams, without
    comparing event with event: each command's events are copied as one run
    from its owner, and only a mass cancel of every instrument gathers its
    events from every shard, ordered by instrument.  Should the batch break
    the rules this rests on (seqs strictly increasing, each shard's events in
    command order, every event some command's) the k-way merge runs instead.
    Runtime: O(commands + events).
    """
    out = np.empty(int(counts.sum()), dtype=EVENT_DTYPE)
    if _merge_commands(cmds, shard_of, buffer, starts, counts, out) != len(out):
        _merge(tuple(buffer[a:a + c] for a, c in zip(starts.tolist(), counts.tolist())), out)
    return out


def regions(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Separate per-shard event arrays copied into ``merge_by_command``'s layout: (buffer, starts, counts)."""
    counts = np.array([len(p) for p in parts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts + 1)[:-1]]).astype(np.int64)
    buffer = np.zeros(int(counts.sum()) + len(parts), dtype=EVENT_DTYPE)
    for p, a in zip(parts, starts.tolist()):
        buffer[a:a + len(p)] = p
    return buffer, starts, counts
