"""A matching shard: the books of a set of instruments, the loop that feeds them, and the thread that runs it.

One shard is driven by one thread at a time; its kernel releases the GIL, so
shards on different threads match truly in parallel.  ``ShardCrew`` hands a
batch to each of its threads and their results back in microseconds, where a
``ThreadPoolExecutor`` takes tens (see its docstring).
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from typing import Any, Callable

import numpy as np
from numba import njit

from shardex.book.layout import (
    B_HAS_LAST, B_LAST, B_ORDERS, B_STOP_HEAD, B_STOP_TAIL, B_STOPS, B_TRADES, B_VOLUME, BOOK_COLS, C_BOOK,
    M_ORDERS_USED, NIL,
    ST_DONE, ST_GROW_EVENTS, BookState,
)
from shardex.book.matching import FOREIGN, process_commands, process_commands_marked
from shardex.book.views import depth, l3
from shardex.instruments import Instrument
from shardex.schema import EVENT_DTYPE
from shardex.sync import cpu_pause, cpu_yield, load_acquire, store_seq_cst


class MatchingShard:
    """The order books of some instruments, processing command batches into events.

    Parameters
    ----------
    instruments
        The instruments this shard owns.  Commands for other instruments are
        rejected with ``UNKNOWN_INSTRUMENT``.
    order_capacity
        Initial order pool rows; the pool doubles when full.
    """

    def __init__(self, instruments: list[Instrument] = (), order_capacity: int = 1024) -> None:
        self.instruments: list[Instrument] = []
        self.state = BookState(np.zeros((0, 6), dtype=np.int64), order_capacity=order_capacity)
        self.book_of = np.full(0, NIL, dtype=np.int64)
        self.inst_of_book = np.zeros(0, dtype=np.int64)
        self._ev = np.zeros(4096, dtype=EVENT_DTYPE)
        for ins in sorted(instruments, key=lambda i: i.id):
            self.add(ins)

    def add(self, ins: Instrument) -> None:
        """Give this shard the book of ``ins`` (a new, empty book).

        Books are kept in instrument id order, whatever order they are listed
        in, so that anything that walks every book (a mass cancel of all
        instruments) does so in the same order on any number of shards.
        """
        st = self.state
        if ins.id < len(self.book_of) and self.book_of[ins.id] != NIL:
            raise ValueError(f"instrument id {ins.id} is already listed on this shard")
        b = int(np.searchsorted(self.inst_of_book, ins.id))
        self.instruments.insert(b, ins)
        st.rules = np.insert(st.rules, b, np.array(ins.rules_row(), dtype=np.int64), axis=0)
        row = np.zeros(BOOK_COLS, dtype=np.int64)
        row[B_STOP_HEAD] = row[B_STOP_TAIL] = NIL  # empty stop list
        st.books = np.insert(st.books, b, row, axis=0)
        width = st.lad_key.shape[1]
        st.lad_key = np.insert(st.lad_key, 2 * b, np.zeros((2, width), dtype=np.int64), axis=0)
        st.lad_lv = np.insert(st.lad_lv, 2 * b, np.zeros((2, width), dtype=np.int64), axis=0)
        st.lad_n = np.insert(st.lad_n, 2 * b, np.zeros(2, dtype=np.int64))
        # Live orders of the books after the new one move down a row.
        ocold = st.ocold
        ocold[ocold[:, C_BOOK] >= b, C_BOOK] += 1
        self.inst_of_book = np.insert(self.inst_of_book, b, np.int64(ins.id))
        self.book_of = np.full(max(len(self.book_of), ins.id + 1), NIL, dtype=np.int64)
        self.book_of[self.inst_of_book] = np.arange(len(self.inst_of_book), dtype=np.int64)

    def book(self, instrument_id: int) -> int:
        """Book row of an instrument id on this shard, or -1."""
        if 0 <= instrument_id < len(self.book_of):
            return int(self.book_of[instrument_id])
        return NIL

    def process(self, cmds: np.ndarray) -> np.ndarray:
        """Run a batch (``COMMAND_DTYPE``, already sequenced); return its events in an array of their own.

        The kernel writes straight into the returned array, whose unused
        tail is then given back (``resize``, no copy): 13% faster on the
        1M-command benchmark than filling the shard's buffer and copying out.
        Runtime: O(commands + fills); the kernel holds no Python objects and
        releases the GIL.
        """
        n, ev = self._run(cmds, np.empty(2 * len(cmds) + 64, dtype=EVENT_DTYPE))
        ev.resize(n, refcheck=False)  # ev is ours alone: nothing else refers to it yet
        return ev

    def process_into(self, cmds: np.ndarray, route: np.ndarray | None = None, shard: int = -1,
                     go: tuple[np.ndarray, int, int] | None = None, marks: np.ndarray | None = None,
                     chunk: int = 0) -> int:
        """Run a batch and leave its events in ``self.events_buffer[:n]``; return n.

        With ``route`` (and ``shard`` >= 0) this shard is one of several that
        all walk the whole batch: ``route`` stands for ``book_of`` and maps
        the other shards' instruments to ``matching.FOREIGN``, whose commands
        are skipped (see ``Exchange.apply`` and ``matching.process_commands``).
        ``go``: a ``ShardCrew.stage`` flag to set as the kernel starts.
        ``marks`` and ``chunk`` > 0: publish where each chunk of ``chunk``
        commands ends among the events, as the kernel goes
        (``matching.process_commands_marked``), for a merge that starts
        before the batch is done.  If the events outgrow ``events_buffer``
        (which then moves), ``marks[0]`` is set to ``MARKS_ABANDONED`` and
        no more marks are published for this batch.
        """
        ev = self._ev
        if len(ev) < 2 * len(cmds) + 64:
            ev = self._ev = np.zeros(2 * len(cmds) + 64, dtype=EVENT_DTYPE)
        book_of = self.book_of if route is None else route
        # one kernel call and no Python frame more in the common case: this is the
        # path of one command per call, where the call overhead is the cost
        if go is None and chunk == 0:
            status, start, n = process_commands(self.state.handles(), book_of, self.inst_of_book, cmds, 0, ev, 0, shard)
        else:
            if chunk == 0:
                marks = _NO_MARKS
            if go is None:
                go = (_NO_GO, 0, 0)
            status, start, n = _go_then_process(go[0], go[1], go[2], self.state.handles(), book_of, self.inst_of_book,
                                                cmds, 0, ev, 0, shard, marks, chunk)
        if status == ST_DONE:
            return n
        n, self._ev = self._run(cmds, ev, start, n, status, book_of, shard, marks, chunk)
        return n

    def _run(self, cmds: np.ndarray, ev: np.ndarray, start: int = 0, n: int = 0,
             status: int | None = None, book_of: np.ndarray | None = None, shard: int = -1,
             marks: np.ndarray | None = None, chunk: int = 0) -> tuple[int, np.ndarray]:
        """Run the kernel over ``cmds[start:]`` into ``ev`` (``n`` events in it already), growing as it asks.

        ``status``: what a call the caller already made returned for ``cmds[start]`` (handled first).
        ``book_of``, ``shard``, ``marks`` and ``chunk``: as ``process_into``'s ``route``, ``shard``, ``marks``
        and ``chunk``.
        """
        st = self.state
        if book_of is None:
            book_of = self.book_of
        if chunk == 0:
            marks = _NO_MARKS
        while True:
            if status is None:
                status, start, n = process_commands_marked(st.handles(), book_of, self.inst_of_book, cmds, start, ev, n,
                                                           shard, marks, chunk)
            if status == ST_DONE:
                return n, ev
            if status == ST_GROW_EVENTS:
                grown = np.empty(2 * len(ev) + 64, dtype=EVENT_DTYPE)
                grown[:n] = ev[:n]
                ev = grown
                if chunk:  # the marks published so far point into the old buffer: a merge must not wait for more
                    marks[0] = MARKS_ABANDONED
                    marks, chunk = _NO_MARKS, 0
            else:
                st.ensure(status)
            status = None

    def route(self, shard: int, listed: np.ndarray) -> np.ndarray:
        """This shard's map for ``process_into(route=...)``: own instruments to book rows, others to FOREIGN.

        ``listed``: a boolean per instrument id, listed anywhere in the
        engine.  Shard 0 maps unlisted ids to NIL (it rejects their
        commands); the other shards skip them.
        """
        out = np.full(len(listed), FOREIGN, dtype=np.int64)
        if shard == 0:
            out[~listed] = NIL
        own = self.inst_of_book
        out[own] = self.book_of[own]
        return out

    @property
    def events_buffer(self) -> np.ndarray:
        """The shard's reusable event buffer (valid up to the last ``process_into`` count).

        It may be set to an array (or view) of ``EVENT_DTYPE`` that someone else
        owns: ``Exchange`` gives its shards regions of one buffer.  The shard
        replaces it with a larger array of its own whenever a batch needs more.
        """
        return self._ev

    @events_buffer.setter
    def events_buffer(self, buf: np.ndarray) -> None:
        if buf.dtype != EVENT_DTYPE or buf.ndim != 1:
            raise TypeError("an events buffer is a 1-d array of shardex.schema.EVENT_DTYPE")
        self._ev = buf

    # -- views -------------------------------------------------------------
    def _row(self, instrument_id: int) -> int:
        b = self.book(instrument_id)
        if b < 0:
            raise KeyError(f"instrument {instrument_id} is not on this shard")
        return b

    def depth(self, instrument_id: int, levels: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(bids, asks): (k x 3) arrays of price ticks, quantity lots and order count, best first."""
        b = self._row(instrument_id)
        st = self.state
        return (depth(st.lad_lv, st.lad_n, st.levels, 2 * b, levels),
                depth(st.lad_lv, st.lad_n, st.levels, 2 * b + 1, levels))

    def l3(self, instrument_id: int) -> np.ndarray:
        """Every order of the book in priority order (columns ``views.L3_COLUMNS``)."""
        b = self._row(instrument_id)
        st = self.state
        return l3(st.orders, st.ocold, st.levels, st.lad_lv, st.lad_n, st.books, b, int(st.meta[M_ORDERS_USED]))

    def book_stats(self, instrument_id: int) -> dict:
        """Last trade price (ticks, None before the first trade), trade count, volume, live orders and stops."""
        row = self.state.books[self._row(instrument_id)]
        return {
            "last_price": int(row[B_LAST]) if row[B_HAS_LAST] else None,
            "trades": int(row[B_TRADES]),
            "volume": int(row[B_VOLUME]),
            "orders": int(row[B_ORDERS]),
            "stops": int(row[B_STOPS]),
        }

    def hash_book(self, h: "hashlib._Hash", instrument_id: int) -> None:
        """Feed one book's canonical state into hash ``h``."""
        row = self.state.books[self._row(instrument_id)]
        h.update(np.array([instrument_id, row[B_HAS_LAST], row[B_LAST] if row[B_HAS_LAST] else 0,
                           row[B_TRADES], row[B_VOLUME]], dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(self.l3(instrument_id), dtype="<i8").tobytes())


# ---------------------------------------------------------------------------
# threads that drive shards
# ---------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _await(flags, slot, want, wake, spins):
    """Poll until ``flags[slot] >= want`` (1), or ``flags[wake]`` is set (-1), at most ``spins`` times (0).

    Releases the GIL.  Between polls the CPU's pause hint, and every 16th
    time ``sched_yield``: a poller that shares its CPU with a thread that has
    work (a loaded machine) gives the CPU up instead of burning it.
    """
    for k in range(spins):
        if load_acquire(flags, slot) >= want:
            return 1
        if load_acquire(flags, wake) != 0:
            return -1
        if k & 15 == 15:
            cpu_yield()
        else:
            cpu_pause()
    return 1 if load_acquire(flags, slot) >= want else 0


@njit(cache=True, nogil=True)
def _post_then_await(flags, post, value, slot, want, wake, spins):
    """``flags[post] = value`` once the GIL is released, then ``_await``."""
    store_seq_cst(flags, post, value)
    return _await(flags, slot, want, wake, spins)


@njit(cache=True, nogil=True)
def _go_then_process(flags, slot, value, st, book_of, inst_of_book, cmds, start, ev, n, shard, marks, chunk):
    """``flags[slot] = value`` once the GIL is released (see ``ShardCrew.stage``), then ``process_commands_marked``."""
    store_seq_cst(flags, slot, value)
    return process_commands_marked(st, book_of, inst_of_book, cmds, start, ev, n, shard, marks, chunk)


#: ``marks[0]`` of a shard whose events outgrew their buffer mid-batch (see ``MatchingShard.process_into``).
MARKS_ABANDONED = -1
_NO_MARKS = np.zeros(1, dtype=np.int64)  # chunk 0: never read
_NO_GO = np.zeros(1, dtype=np.int64)  # a flag nobody waits on


# Slots of a crew's flags array: the round posted, one that stays 0 (on the same cache line),
# whether the caller sleeps, then the round each thread finished, each on a line of its own.
_GO, _ZERO, _CALLER_SLEEPS = 0, 1, 8


def _done_slot(t: int) -> int:
    return 16 + 8 * t


_spins_per_second = 0.0


def _spins(seconds: float) -> int:
    """Polls of ``_await`` in about ``seconds`` (measured once per process: ``pause`` takes 10 to 150 cycles)."""
    global _spins_per_second
    if seconds <= 0:
        return 0
    if not _spins_per_second:
        flags = np.zeros(16, dtype=np.int64)
        _await(flags, _GO, 1, _ZERO, 10)  # compile or load
        n = 20_000
        t0 = time.perf_counter()
        _await(flags, _GO, 1, _ZERO, n)
        _spins_per_second = n / max(time.perf_counter() - t0, 1e-6)
    return max(1, int(seconds * _spins_per_second))


class _Channel:
    """What a ``ShardCrew`` and its threads share."""

    def __init__(self, threads: int, spins: int) -> None:
        self.flags = np.zeros(_done_slot(threads), dtype=np.int64)
        self.spins = spins
        self.cond = threading.Condition()
        self.calls: list[tuple[Callable[..., Any], tuple] | None] = [None] * threads
        self.outcomes: list[tuple[BaseException | None, Any]] = [(None, None)] * threads
        self.sleeping = [False] * threads
        self.stop = False

    def serve(self, t: int) -> None:
        """Thread ``t``'s loop: wait for a round, make its call, publish the outcome."""
        flags, cond, spins = self.flags, self.cond, self.spins
        done = _done_slot(t)
        r = 1
        seen = _await(flags, _GO, r, _CALLER_SLEEPS, spins) == 1
        while True:
            if not seen:
                with cond:
                    self.sleeping[t] = True
                    # _await (no spins) after the flag: its GIL release orders the two
                    while _await(flags, _GO, r, _CALLER_SLEEPS, 0) != 1 and not self.stop:
                        cond.wait()
                    self.sleeping[t] = False
            if self.stop:
                return
            fn, args = self.calls[t]
            self.calls[t] = None
            try:
                self.outcomes[t] = (None, fn(*args))
            except BaseException as exc:  # handed to the caller, which raises it
                self.outcomes[t] = (exc, None)
            # Publish outside the GIL: a caller that sees it never finds this thread holding the GIL.
            got = _post_then_await(flags, done, r, _GO, r + 1, _CALLER_SLEEPS, spins)
            seen = got == 1
            if flags[_CALLER_SLEEPS]:
                with cond:
                    cond.notify_all()
            r += 1

    def close(self) -> None:
        with self.cond:
            self.stop = True
            self.flags[_GO] += 1 << 40  # ends every spin at once
            self.cond.notify_all()


class ShardCrew:
    """Threads that each make one call per round while the caller makes its own; then the caller waits for all.

    ``run(calls)`` makes ``calls[0]`` on the calling thread and ``calls[t + 1]``
    on thread ``t``, and returns their results in order.  This is
    ``Exchange``'s per-batch hand-off, 244 rounds per million commands in
    4096-command batches.

    Why not a ``ThreadPoolExecutor``: it puts a call on a queue and wakes a
    worker blocked on a lock, and the caller then blocks on the future's lock.
    On a virtual machine each wake of a blocked thread costs tens of
    microseconds; a round trip took 55-70 us on the reference 2-core VM.
    Here both sides spin instead: a thread polls for its next round for
    ``spin`` seconds after each call, and the caller polls for ``spin``
    seconds for the results; only then do they block on a condition
    variable.  Polling runs in a compiled loop that releases the GIL and
    issues the CPU's pause hint; it is bounded, so an idle engine costs at
    most ``spin`` seconds of each thread's core after each round.  With
    ``spin=0`` every wait blocks at once (for more threads than cores, where
    a spinning thread would take a core from a working one).

    The GIL is the other cost: a thread that asks for it while another holds
    it sleeps, and is woken as slowly.  So the flags a spinning side waits on
    are set with the GIL released: a thread publishes its result from
    compiled code, and the caller may start the round from compiled code too
    (``stage`` returns the flag to set, ``MatchingShard.process_into(go=...)``
    sets it as its kernel starts).  A thread that sees its round start then
    takes a GIL that nobody holds.

    The threads stop on ``close()``, or when the crew is garbage collected.
    """

    def __init__(self, threads: int, spin: float = 0.001, name: str = "shardex-shard") -> None:
        self._ch = _Channel(threads, _spins(spin))
        self._round = 0
        self._threads = [threading.Thread(target=self._ch.serve, args=(t,), name=f"{name}-{t + 1}", daemon=True)
                         for t in range(threads)]
        for th in self._threads:
            th.start()
        self._finalizer = weakref.finalize(self, self._ch.close)

    def stage(self, calls: list[tuple[Callable[..., Any], tuple]]) -> tuple[np.ndarray, int, int] | None:
        """Hand ``calls[t]`` (function, arguments) to thread ``t`` for the next round; what starts it.

        Returns ``(flags, slot, value)``: the round starts when compiled code
        sets ``flags[slot] = value`` (``_go_then_process``), which the caller
        does as it starts its own call, and ``go()`` does if it has not.
        Returns None where the round has already started (a thread sleeps,
        or the crew does not spin: it had to be woken from here anyway).
        """
        ch = self._ch
        if ch.stop:
            raise RuntimeError("ShardCrew: the threads are stopped")
        if len(calls) != len(ch.calls):
            raise ValueError(f"ShardCrew.stage: {len(calls)} calls for {len(ch.calls)} threads")
        if any(c is not None for c in ch.calls):
            raise RuntimeError("ShardCrew.stage: the previous round was not collected")
        ch.calls[:] = calls
        self._round += 1
        if ch.spins == 0 or any(ch.sleeping):
            self.go()
            return None
        return ch.flags, _GO, self._round

    @property
    def spinning(self) -> bool:
        """Whether the threads poll between rounds (as many threads as cores or fewer), rather than block."""
        return self._ch.spins > 0

    def go(self) -> None:
        """Start the staged round if it has not started, and wake any thread asleep."""
        ch = self._ch
        if ch.flags[_GO] < self._round:
            ch.flags[_GO] = self._round
        if any(ch.sleeping):
            with ch.cond:
                ch.cond.notify_all()

    def collect(self) -> list:
        """Wait for every thread's call of this round; their results, or the first exception raised."""
        ch = self._ch
        flags, r = ch.flags, self._round
        self.go()  # a no-op unless the round's first call failed to start it
        for t, th in enumerate(self._threads):
            slot = _done_slot(t)
            if _await(flags, slot, r, _ZERO, ch.spins) == 1:
                continue
            with ch.cond:
                flags[_CALLER_SLEEPS] = 1
                try:
                    while _await(flags, slot, r, _ZERO, 0) != 1:
                        if not th.is_alive():
                            raise RuntimeError(f"ShardCrew: thread {th.name} is gone")
                        if any(ch.sleeping):  # should a wake-up have been missed
                            ch.cond.notify_all()
                        ch.cond.wait(0.05)
                finally:
                    flags[_CALLER_SLEEPS] = 0
        outcomes, ch.outcomes = ch.outcomes, [(None, None)] * len(ch.outcomes)
        for exc, _ in outcomes:
            if exc is not None:
                raise exc
        return [value for _, value in outcomes]

    def run(self, calls: list[tuple[Callable[..., Any], tuple]]) -> list:
        """``calls[0]`` here and the others on the threads, at once; every result, in order.

        Every call is waited for, even when one raises; then the first exception is raised.
        """
        self.stage(calls[1:])
        fn, args = calls[0]
        try:
            first = fn(*args)
        finally:
            rest = self.collect()
        return [first, *rest]

    def __enter__(self) -> "ShardCrew":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the threads once their current calls (if any) are done (also on leaving a ``with`` block)."""
        self._finalizer()
        for th in self._threads:
            if th is not threading.current_thread():
                th.join()
