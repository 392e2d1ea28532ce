"""Many batches through several shards at once, with no barrier per batch (``Exchange.process_many``).

``Exchange.process`` hands a batch to every shard and waits for the slowest
before it takes the next: each batch ends in a barrier, where the faster
shard idles and both read lines the other core just wrote.  ``run_group``
is what each shard thread runs instead, in one compiled call, for a whole
list of batches:

* each thread copies its shards' commands of a batch out of it, stamped
  (``own_commands``), and matches the copy into a ring of ``ring`` event
  slots per shard, batch after batch, up to ``ring - 1`` batches ahead of
  the slowest thread.  Both threads only read the batch, so its cache
  lines are shared rather than handed from core to core, and each kernel
  reads its own commands contiguous and warm: matching over a shard's
  positions in the shared batch (``merge.deal``, as ``process`` does) took
  87-91 ms per million commands and thread, against 75-81 ms for streams
  split beforehand; copying, then matching the copy, took 82-84 ms
  (2026-11-23, two threads, the same books);
* a batch is merged, in batch order, by a thread that finds every thread
  past it (``_try_merge``, a try-lock): the thread ahead, in its wait
  for the slowest, or the last to finish it where none is ahead
  (``_other_ahead``).  Its events go to their place in one array for the
  whole list, and its commands get their stamps, as ``process`` leaves them.

Nothing here changes an outcome: each shard runs the same kernel over the
same commands as under ``process``, and the merge orders events on (seq,
instrument) exactly as ``merge.merge_events`` does.

A shard that must grow (its pool, index or ladder, or its event slot), or
a merge that finds the output array full, stops its thread (mid-batch)
and sets ``SC_STOP``; every other thread stops at its next batch boundary
or wait.  The caller grows what was asked, with no
kernel running, and calls every thread again: each resumes where ``pos``
says it stopped.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.book.layout import ST_DONE
from shardex.book.matching import process_commands_marked
from shardex.engine.merge import merge_on_seq
from shardex.lowlevel import view_like
from shardex.sync import cpu_pause, cpu_yield, fetch_add, load_acquire, store_release, store_seq_cst

__all__ = ["P_BATCH", "P_EVENTS", "P_SHARD", "P_START", "P_STATUS", "SC_MERGED", "SC_SIZE", "SC_STOP",
           "own_commands", "run_group"]

# Slots of the control array, each on a cache line of its own.
SC_STOP = 0  # set by a thread whose shard must grow: every thread returns at its next boundary or wait
SC_MERGED = 8  # batches merged so far (in order)
SC_LOCK = 16  # the merge's try-lock
SC_GROW_OUT = 24  # set by the merger: the rows ``out`` needs for the next batch (it stopped the threads)
SC_SIZE = 32

# Columns of ``pos``, one row per thread: where it stopped (or starts).
P_BATCH = 0  # the batch it is on
P_SHARD = 1  # the index in its group of the shard it is on
P_START = 2  # that shard's next command (a position in the batch)
P_EVENTS = 3  # that shard's events of the batch so far
P_STATUS = 4  # the kernel status that stopped it (ST_DONE: it stopped at a boundary, or finished)
P_WIDTH = 8


@njit(cache=True, nogil=True, inline="always")
def _pause(spins):
    """One poll of a spin-wait: the CPU's pause hint, and every 16th time ``sched_yield``."""
    if spins & 15 == 15:
        cpu_yield()  # should the thread we wait for share our core
    else:
        cpu_pause()
    return spins + 1


@njit(cache=True, nogil=True)
def _min_done(done, threads):
    """Batches every thread has finished: the least of the threads' counts (``done[8 * t]``)."""
    m = load_acquire(done, 0)
    for t in range(1, threads):
        d = load_acquire(done, 8 * t)
        if d < m:
            m = d
    return m


@njit(cache=True, nogil=True)
def _other_ahead(done, threads, t, k, w):
    """Whether a thread other than ``t`` has finished more than ``k`` batches and is still going.

    That thread will merge what ``t`` has just finished, on its way or in
    its next wait, while ``t`` goes on matching: merging falls to the
    thread with time to spare, not to the one every other waits for (on a
    virtual machine one CPU is at times markedly slower than the other).
    """
    for u in range(threads):
        if u != t:
            d = load_acquire(done, 8 * u)
            if k < d < w:
                return True
    return False


_MASS_CANCEL = 4


@njit(cache=True, nogil=True)
def own_commands(cmds, shard_of, s, out, first_seq, ts):
    """Copy shard ``s``'s commands of a batch into ``out``, in order, stamped from ``first_seq`` if > 0; how many.

    A shard's commands are those ``merge.deal`` lists for it: its
    instruments' (``shard_of``), a mass cancel of every instrument (on every
    shard), and on shard 0 those of unlisted ids, which it rejects.  The
    stamps are what ``Sequencer.stamp`` writes: ``seq = first_seq + i``.
    """
    nmap = shard_of.shape[0]
    n = 0
    for i in range(cmds.shape[0]):
        inst = cmds[i].instrument
        if inst == -1 and cmds[i].kind == _MASS_CANCEL:
            mine = True
        else:
            owner = 0
            if 0 <= inst < nmap:
                owner = shard_of[inst]
            mine = owner == s
        if mine:
            out[n] = cmds[i]
            if first_seq > 0:
                out[n].seq = first_seq + i
                out[n].ts = ts
            n += 1
    return n


@njit(cache=True, nogil=True)
def _stamp(cmds, first_seq, ts):
    """``Sequencer.stamp``'s stamps, written into a batch every shard is done with."""
    for i in range(cmds.shape[0]):
        cmds[i].seq = first_seq + i
        cmds[i].ts = ts


@njit(cache=True, nogil=True)
def _try_merge(w, batches, like, seqs, tss, ev, slot, ring, nev, ctl, done, threads, out, offs, heads, ends):
    """Merge, in batch order, every batch every thread has finished, unless another thread is merging.

    Batch ``m``'s events go to ``out[offs[m]:offs[m + 1]]``, and its
    commands get their stamps (where ``seqs[m]`` > 0).  A thread that
    finds the lock taken leaves: the holder looks again once it has let the
    lock go, so a batch finished meanwhile is not left behind.  Where ``out``
    is too short for the next batch, sets ``SC_GROW_OUT`` and ``SC_STOP``.
    """
    k = nev.shape[1]
    while True:
        m = load_acquire(ctl, SC_MERGED)
        upto = min(_min_done(done, threads), w)
        if m >= upto:
            return
        if fetch_add(ctl, SC_LOCK, 1) != 0:
            return
        m = load_acquire(ctl, SC_MERGED)
        upto = min(_min_done(done, threads), w)
        while m < upto:
            r = m % ring
            total = 0
            for s in range(k):
                heads[s] = (s * ring + r) * slot
                ends[s] = heads[s] + nev[m, s]
                total += nev[m, s]
            j = offs[m]
            if j + total > out.shape[0]:
                ctl[SC_GROW_OUT] = j + total
                store_seq_cst(ctl, SC_STOP, 1)
                break
            merge_on_seq(ev, heads, ends, out, j)
            offs[m + 1] = j + total
            if seqs[m] > 0:
                _stamp(view_like(batches, m, like), seqs[m], tss[m])
            m += 1
            store_release(ctl, SC_MERGED, m)
        store_seq_cst(ctl, SC_LOCK, 0)
        if load_acquire(ctl, SC_STOP) != 0:
            return


@njit(cache=True, nogil=True, inline="always")
def _stop(pos, t, k, gi, start, n, status):
    """Record in ``pos[t]`` where thread ``t`` stopped; ``status``."""
    pos[t, P_BATCH] = k
    pos[t, P_SHARD] = gi
    pos[t, P_START] = start
    pos[t, P_EVENTS] = n
    pos[t, P_STATUS] = status
    return status


@njit(cache=True, nogil=True)
def run_group(t, threads, group, tables, book_ofs, inst_of_books, nbooks, w, batches, like, seqs, tss, shard_of,
              cbuf, width, ev, slot, ring, nev, ctl, done, out, offs, pos, no_marks, no_todo):
    """Thread ``t``'s whole part of a list of batches: copy and match its shards' commands, merge.

    ``group``: the shards this thread runs, one after another within each
    batch; ``tables[i]``, ``book_ofs[i]`` and ``inst_of_books[i, :nbooks[i]]``
    are shard ``group[i]``'s handle table and book maps (``book_ofs`` rows
    padded with NIL).  Batch ``k`` of ``w`` is handle ``k`` of the table
    ``batches`` (``lowlevel.handles``; ``like``: an array of its dtype);
    its stamps start at ``seqs[k]``, with ``tss[k]`` (0: it is stamped
    already).  Shard ``s``'s commands of the batch are copied to
    ``cbuf[s * width:]``, its events go to ``ev[(s * ring + k % ring) *
    slot:][:slot]`` and their count to ``nev[k, s]``.  ``done[8 * t]``
    counts the batches thread ``t`` has finished; ``out[offs[k]:offs[k +
    1]]`` receives batch ``k``'s merged events (``offs[0]``: where the
    first goes).  Starts, and stops, where ``pos[t]`` says (``P_*``).
    Returns the status of the shard that stopped it, ``ST_DONE`` if none did.
    """
    k, gi, start, n = pos[t, P_BATCH], pos[t, P_SHARD], pos[t, P_START], pos[t, P_EVENTS]
    heads = np.empty(nev.shape[1], np.int64)
    ends = np.empty(nev.shape[1], np.int64)
    spins = 0
    while k < w:
        # this batch's event slots are free once the batch that used them before is merged
        while load_acquire(ctl, SC_MERGED) < k - ring + 1:
            _try_merge(w, batches, like, seqs, tss, ev, slot, ring, nev, ctl, done, threads, out, offs, heads, ends)
            if load_acquire(ctl, SC_MERGED) >= k - ring + 1:
                break
            if load_acquire(ctl, SC_STOP) != 0:
                return _stop(pos, t, k, gi, start, n, ST_DONE)
            spins = _pause(spins)
        r = k % ring
        cmds = view_like(batches, k, like)
        for i in range(gi, group.shape[0]):
            s = group[i]
            # copied again on a resume after growth: the same commands, stamped the same (the batch is
            # stamped in place only once merged)
            mine = cbuf[s * width:(s + 1) * width]
            m = own_commands(cmds, shard_of, s, mine, seqs[k], tss[k])
            lo = (s * ring + r) * slot
            status, start, n = process_commands_marked(tables[i], book_ofs[i], inst_of_books[i, :nbooks[i]],
                                                       mine[:m], start, ev[lo:lo + slot], n, no_marks, 0, no_todo,
                                                       False)
            if status != ST_DONE:
                store_seq_cst(ctl, SC_STOP, 1)
                return _stop(pos, t, k, i, start, n, status)
            nev[k, s] = n
            start = 0
            n = 0
        gi = 0
        k += 1
        store_seq_cst(done, 8 * t, k)
        if not _other_ahead(done, threads, t, k, w):
            _try_merge(w, batches, like, seqs, tss, ev, slot, ring, nev, ctl, done, threads, out, offs, heads, ends)
        if load_acquire(ctl, SC_STOP) != 0:
            break
    # resumed after the last batch: merge what the other threads finished meanwhile
    _try_merge(w, batches, like, seqs, tss, ev, slot, ring, nev, ctl, done, threads, out, offs, heads, ends)
    return _stop(pos, t, k, 0, 0, 0, ST_DONE)
