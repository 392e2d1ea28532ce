"""Dealing a batch out to the shards, and merging their events back, in linear time.

``deal`` lists each shard's commands of a batch by position, stamping the
batch in the same pass; each shard's kernel runs over its own list, so the
engine never copies batches apart.  ``partition`` does copy: it splits a
batch into one contiguous run per shard (commands keep their order within a
run; a mass cancel of every instrument goes to every shard), for benchmarks
and tests.

``merge_by_command`` merges the shards' event streams, each in command
order and all in one buffer, by walking the commands: each command's events
are one run in its owner shard's stream, copied whole; only a mass cancel of
every instrument gathers events from every shard, ordered by instrument.
``merge_chunks`` is the same walk cut into chunks of commands, which
several threads share while the shards are still running (the engine's
merge); for two shards and a batch whose seqs rise with its commands (one
``Exchange.process`` stamped) it merges each chunk on seq instead, without
reading the commands.  ``merge_events`` is the general k-way merge on
(seq, instrument) both fall back to (and must agree with);
``merge_on_seq`` is that merge over streams in one buffer, for any number
of shards (``Exchange.process_many``).  All are kernels that release the
GIL and copy whole records, which numpy's fancy indexing of structured
arrays does slowly.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.book.layout import ST_DONE
from shardex.book.matching import process_commands_marked
from shardex.crew import await_all
from shardex.lowlevel import prefetch_read, prefetch_write
from shardex.schema import COMMAND_DTYPE, EVENT_DTYPE
from shardex.sync import cpu_pause, cpu_yield, fetch_add, load_acquire, store_release, store_seq_cst

__all__ = ["MC_ABORT", "MC_BAD", "MC_BY_SEQ", "MC_SIZE", "deal", "merge_by_command", "merge_chunks", "merge_events",
           "merge_on_seq", "partition", "process_then_merge", "regions"]

_MASS_CANCEL = 4

#: Commands ahead whose first cache line ``deal`` asks for while it reads the current one.  A
#: batch arriving cold from memory (4,096 commands, 320 KB): 16.0 -> 12.2 us with 64 ahead,
#: 13.4 us with 32, 12.4 us with 128 (one thread, medians over a million commands, 2026-11-23).
DEAL_PREFETCH = 64


@njit(cache=True, nogil=True)
def deal(cmds, shard_of, todo, counts, first_seq, ts):
    """List each shard's commands of a batch by position, and stamp the batch if ``first_seq`` > 0, in one pass.

    Shard ``s``'s commands are ``todo[s, :counts[s]]``, in batch order
    (``todo`` has a row per shard, at least as long as the batch).  A
    command goes to ``shard_of[instrument]``, to shard 0 if its instrument
    is outside ``shard_of`` or unlisted (shard 0 rejects it: its
    ``book_of`` has no row for it), and a mass cancel of every instrument
    (-1) to every shard, which each runs on its own books
    (``matching.process_commands_marked(dealt=True)``).  With ``first_seq``
    > 0 each command also gets ``seq = first_seq + i`` and ``ts``, as
    ``Sequencer.stamp`` would write: the pass that stamps the batch reads
    the instruments for free, and no shard reads every command to find its
    own.
    """
    n = cmds.shape[0]
    k = counts.shape[0]
    nmap = shard_of.shape[0]
    counts[:] = 0
    for i in range(n):
        if i + DEAL_PREFETCH < n:
            if first_seq > 0:
                prefetch_write(cmds, i + DEAL_PREFETCH)
            else:
                prefetch_read(cmds, i + DEAL_PREFETCH)
        if first_seq > 0:
            cmds[i].seq = first_seq + i
            cmds[i].ts = ts
        inst = cmds[i].instrument
        if inst == -1 and cmds[i].kind == _MASS_CANCEL:
            for s in range(k):
                todo[s, counts[s]] = i
                counts[s] += 1
        else:
            s = 0
            if 0 <= inst < nmap:
                s = shard_of[inst]
            todo[s, counts[s]] = i
            counts[s] += 1


@njit(cache=True, nogil=True)
def _partition(cmds, shard_of, nshards, out, starts):
    """Copy each shard's commands, as ``deal`` lists them, into one run per shard of ``out``."""
    todo = np.empty((nshards, cmds.shape[0]), np.int64)
    counts = np.empty(nshards, np.int64)
    deal(cmds, shard_of, todo, counts, 0, 0)
    starts[0] = 0
    for s in range(nshards):
        starts[s + 1] = starts[s] + counts[s]
        for j in range(counts[s]):
            out[starts[s] + j] = cmds[todo[s, j]]
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
def _merge_run(cmds, lo, hi, shard_of, buf, heads, ends, out, j):
    """Events of ``cmds[lo:hi]`` in command order into ``out[j:]``; the row after the last written, or -1.

    Shard ``s``'s events for these commands are ``buf[heads[s]:ends[s]]``, in
    command order (``heads`` is advanced).  A command's events are the run
    of its owner's events that carries its seq, copied whole; a mass cancel
    of every instrument has a run on every shard, merged on instrument (ties:
    lower shard).  -1 where the seqs do not increase strictly or a shard's
    events are not used up exactly (``out`` partly written).
    """
    k = heads.shape[0]
    for i in range(lo, hi):
        seq = cmds[i].seq
        if i > 0 and seq <= cmds[i - 1].seq:
            return -1
        inst = cmds[i].instrument
        if inst == -1 and cmds[i].kind == _MASS_CANCEL:
            while True:
                best = -1
                binst = 0
                for r in range(k):
                    h = heads[r]
                    if h < ends[r] and buf[h].seq == seq and (best < 0 or buf[h].instrument < binst):
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
            e = ends[s]
            while h < e and buf[h].seq == seq:
                out[j] = buf[h]
                h += 1
                j += 1
            heads[s] = h
    for r in range(k):
        if heads[r] != ends[r]:
            return -1
    return j


def merge_by_command(cmds: np.ndarray, shard_of: np.ndarray, buffer: np.ndarray, starts: np.ndarray,
                     counts: np.ndarray) -> np.ndarray:
    """Merge the shards' events by walking the batch ``cmds`` that made them; one new array.

    Shard ``s``'s events are ``buffer[starts[s]:starts[s] + counts[s]]`` (int64
    arrays of starts and counts), in command order.  One buffer rather than
    one array per shard: a kernel indexing a tuple of arrays by a shard
    number it computes pays a switch per access (merge 16 -> 10 ms per
    million commands).  ``shard_of[instrument]`` is the owner shard of each
    instrument's commands (0 for ids outside it, as for any the engine does
    not list).

    The result is what ``merge_events`` gives on the same streams, without
    comparing event with event (``_merge_run``).  Should the batch break the
    rules this rests on (seqs strictly increasing, each shard's events in
    command order, every event some command's) the k-way merge runs instead.
    ``merge_chunks`` does the same work in chunks, on several threads.
    Runtime: O(commands + events).
    """
    out = np.empty(int(counts.sum()), dtype=EVENT_DTYPE)
    heads = starts.astype(np.int64)
    if _merge_run(cmds, 0, len(cmds), shard_of, buffer, heads, heads + counts, out, 0) != len(out):
        _merge(tuple(buffer[a:a + c] for a, c in zip(starts.tolist(), counts.tolist())), out)
    return out


# Slots of ``merge_chunks``' control array, each on a cache line of its own.
MC_CURSOR = 0  # the next chunk to claim
MC_ABORT = 8  # set by anyone: stop merging (a shard failed or outgrew its region)
MC_BAD = 16  # set by a merger: the batch broke ``_merge_run``'s rules; merge it with ``merge_events``
MC_BY_SEQ = 24  # set by the caller: the batch's seqs rise with its commands; two shards merge on seq
MC_SIZE = 32


@njit(cache=True, nogil=True)
def _merge_two_on_seq(buf, heads, ends, out, j):
    """Two shards' streams ``buf[heads[s]:ends[s]]``, each in (seq, instrument) order, merged into ``out[j:]``.

    ``merge_events``' order (on equal keys shard 0 first); returns the row
    after the last written.  Where the batch's seqs rise with its commands
    this is the order of the walk over commands (``_merge_run``), found
    without reading the commands: a 4,096-command batch's ~4,900 events
    merged in 27 against 33-38 us on one thread (ad hoc, 2026-11-23).  Two
    streams only: choosing among four heads per event took 62 us where the
    walk took 34.
    """
    a, ae, b, be = heads[0], ends[0], heads[1], ends[1]
    while a < ae and b < be:
        sa = buf[a].seq
        sb = buf[b].seq
        if sa < sb or (sa == sb and buf[a].instrument <= buf[b].instrument):
            out[j] = buf[a]
            a += 1
        else:
            out[j] = buf[b]
            b += 1
        j += 1
    while a < ae:
        out[j] = buf[a]
        a += 1
        j += 1
    while b < be:
        out[j] = buf[b]
        b += 1
        j += 1
    return j


@njit(cache=True, nogil=True)
def merge_on_seq(buf, heads, ends, out, j):
    """Several shards' streams ``buf[heads[s]:ends[s]]``, each in (seq, instrument) order, merged into ``out[j:]``.

    ``merge_events``' order: on (seq, instrument), ties to the lower shard.
    ``heads`` may be advanced; returns the row after the last written.  Two
    streams take ``_merge_two_on_seq``'s loop, which compares two heads
    instead of searching them.
    """
    k = heads.shape[0]
    if k == 2:
        return _merge_two_on_seq(buf, heads, ends, out, j)
    while True:
        best = -1
        bseq = 0
        binst = 0
        for s in range(k):
            h = heads[s]
            if h < ends[s]:
                seq = buf[h].seq
                inst = buf[h].instrument
                if best < 0 or seq < bseq or (seq == bseq and inst < binst):
                    best = s
                    bseq = seq
                    binst = inst
        if best < 0:
            return j
        out[j] = buf[heads[best]]
        heads[best] += 1
        j += 1


@njit(cache=True, nogil=True)
def _await_mark(marks, slot, want, ctl):
    """Spin until ``marks[slot] >= want``; False (and ``ctl[MC_ABORT]`` set) if the merge is called off first."""
    spins = 0
    while True:
        got = load_acquire(marks, slot)
        if got >= want:
            return True
        if got < 0:  # the shard's events left their region (shard.MARKS_ABANDONED)
            store_release(ctl, MC_ABORT, 1)
            return False
        if load_acquire(ctl, MC_ABORT) != 0:
            return False
        spins += 1
        if spins & 15 == 0:
            cpu_yield()  # should the shard we wait for share our core
        else:
            cpu_pause()


@njit(cache=True, nogil=True)
def merge_chunks(cmds, shard_of, buf, starts, marks, width, chunk, ctl, out):
    """Merge a batch's events chunk by chunk as the shards publish them; any number of threads at once.

    The batch is cut into chunks of ``chunk`` commands.  Shard ``s``
    publishes in ``marks[s * width:]`` where each chunk's events end in its
    region ``buf[starts[s]:]`` (``matching.process_commands_marked``).  Each
    caller claims the next chunk (``ctl[MC_CURSOR]``), waits until every
    shard has passed the chunk's end, and copies the chunk's events to their
    place in ``out`` (the chunk's first row is the sum of the shards' marks
    at its start), until none is left.  So a thread whose shard is done
    merges the chunks the other shards have passed while they finish, and
    threads done together split the merge.  Which thread copies a chunk
    changes nothing in ``out``.  Sets ``ctl[MC_BAD]`` where a chunk breaks
    ``_merge_run``'s rules; stops when ``ctl[MC_ABORT]`` is set.  With
    ``ctl[MC_BY_SEQ]`` set (the batch's seqs rise strictly with its
    commands, as ``deal`` stamps them) and two shards, a chunk's events are
    merged on seq (``_merge_two_on_seq``) instead of by walking its commands.
    """
    n = cmds.shape[0]
    k = starts.shape[0]
    nch = (n + chunk - 1) // chunk
    heads = np.empty(k, np.int64)
    ends = np.empty(k, np.int64)
    by_seq = ctl[MC_BY_SEQ] != 0 and k == 2
    while True:
        c = fetch_add(ctl, MC_CURSOR, 1)
        if c >= nch:
            return
        for s in range(k):
            if not _await_mark(marks, s * width, c + 2, ctl):
                return
        j = 0
        for s in range(k):
            at = marks[s * width + 1 + c]
            j += at
            heads[s] = starts[s] + at
            ends[s] = starts[s] + marks[s * width + 2 + c]
        if by_seq:
            _merge_two_on_seq(buf, heads, ends, out, j)
        elif _merge_run(cmds, c * chunk, min((c + 1) * chunk, n), shard_of, buf, heads, ends, out, j) < 0:
            store_release(ctl, MC_BAD, 1)


def regions(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Separate per-shard event arrays copied into ``merge_by_command``'s layout: (buffer, starts, counts)."""
    counts = np.array([len(p) for p in parts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts + 1)[:-1]]).astype(np.int64)
    buffer = np.zeros(int(counts.sum()) + len(parts), dtype=EVENT_DTYPE)
    for p, a in zip(parts, starts.tolist()):
        buffer[a:a + len(p)] = p
    return buffer, starts, counts


@njit(cache=True, nogil=True)
def process_then_merge(flags, slot, value, st, book_of, inst_of_book, ev, marks, todo,
                       cmds, shard_of, buf, starts, all_marks, width, chunk, ctl, out,
                       done_flags, done_slots, done_round, done_spins):
    """One shard thread's whole part of a batch in one compiled call: start the round, match, then merge.

    ``flags[slot] = value`` (the ``Crew`` round, see ``Crew.stage``), then
    ``process_commands_marked`` over this shard's dealt commands ``todo``
    (``deal``) into ``ev`` with its ``marks`` row, then, if the batch is
    done, ``merge_chunks``, then, the merge finished, waits for the crew's
    threads to post their round done (``Crew.finish_line``; ``done_slots``
    empty: no wait).  Returns the matching kernel's ``(status, next_command, n)``; the caller grows
    what a status other than ``ST_DONE`` asks for, resumes, and merges.
    One call instead of two spares the thread taking the GIL between them,
    which it sometimes waited milliseconds for.
    """
    store_seq_cst(flags, slot, value)
    status, start, n = process_commands_marked(st, book_of, inst_of_book, cmds, 0, ev, 0, marks, chunk, todo, True)
    if status == ST_DONE:
        merge_chunks(cmds, shard_of, buf, starts, all_marks, width, chunk, ctl, out)
        await_all(done_flags, done_slots, done_round, done_spins)
    return status, start, n
