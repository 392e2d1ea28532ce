"""A matching shard: the books of a set of instruments and the loop that feeds them.

One shard is driven by one thread at a time; its kernel releases the GIL, so
shards on different threads match truly in parallel.  The engine hands each
shard thread its batch with a ``shardex.crew.Crew``.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import njit

from shardex.book.layout import (
    B_HAS_LAST, B_LAST, B_ORDERS, B_STOP_HEAD, B_STOP_TAIL, B_STOPS, B_TRADES, B_VOLUME, BOOK_COLS, C_BOOK, H_EMPTY,
    H_KEY, H_OID, M_ORDERS_USED, NIL, O_ACCOUNT,
    ST_DONE, ST_GROW_EVENTS, BookState,
)
from shardex.book.index import ROW_MASK
from shardex.book.matching import process_commands, process_commands_marked
from shardex.book.views import depth, l3
from shardex.crew import STARTED
from shardex.instruments import Instrument
from shardex.lowlevel import pretouch as touch_pages
from shardex.schema import EVENT_DTYPE
from shardex.sync import store_seq_cst


def events_room(commands: int) -> int:
    """Event rows a shard's buffer is given for a batch of ``commands``: two per command and some slack.

    Shared by the shard and the engine that hands it a region of one buffer.
    A batch whose events outgrow it (fills that sweep many orders) stops and
    grows the buffer (``ST_GROW_EVENTS``); the kernel never writes past it.
    """
    return 2 * commands + 64


class MatchingShard:
    """The order books of some instruments, processing command batches into events.

    Parameters
    ----------
    instruments
        The instruments this shard owns.  Commands for other instruments are
        rejected with ``UNKNOWN_INSTRUMENT``.
    order_capacity
        Initial order pool rows; the pool grows when full.
    pretouch
        Map every page of the pools when they are allocated, at start and
        at each growth (``BookState.pretouch``), instead of on first use in
        the middle of a batch.  For a venue that sizes its pools at start
        (``order_capacity``): its orders then never wait for a page fault.
    """

    def __init__(self, instruments: list[Instrument] = (), order_capacity: int = 1024, pretouch: bool = False) -> None:
        self.instruments: list[Instrument] = []
        self.pretouch = pretouch
        self.state = BookState(np.zeros((0, 6), dtype=np.int64), order_capacity=order_capacity)
        self.book_of = np.full(0, NIL, dtype=np.int64)
        self.inst_of_book = np.zeros(0, dtype=np.int64)
        self._ev = np.zeros(4096, dtype=EVENT_DTYPE)
        for ins in sorted(instruments, key=lambda i: i.id):
            self.add(ins)
        if pretouch:
            self.state.pretouch()

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
        n, ev = self._run(cmds, np.empty(events_room(len(cmds)), dtype=EVENT_DTYPE))
        ev.resize(n, refcheck=False)  # ev is ours alone: nothing else refers to it yet
        return ev

    def process_onto(self, cmds: np.ndarray, ev: np.ndarray) -> tuple[int, np.ndarray]:
        """Run a batch writing its events into the caller's ``ev``; ``(n, buffer)``.

        The buffer is ``ev`` unless the events outgrew it: then it is a
        larger array holding all ``n`` of them.
        """
        return self._run(cmds, ev)

    def process_into(self, cmds: np.ndarray, go: tuple[np.ndarray, int, int] | None = None,
                     marks: np.ndarray | None = None, chunk: int = 0, todo: np.ndarray | None = None) -> int:
        """Run a batch and leave its events in ``self.events_buffer[:n]``; return n.

        ``todo``: this shard is one of several, and ``todo`` lists the
        positions of its commands in the batch, in order
        (``shardex.engine.merge.deal``); the kernel runs those only.
        ``go``: a ``Crew.stage`` flag to set as the kernel starts.
        ``marks`` and ``chunk`` > 0: publish where each chunk of ``chunk``
        commands ends among the events, as the kernel goes
        (``matching.process_commands_marked``), for a merge that starts
        before the batch is done.  If the events outgrow ``events_buffer``
        (which then moves), ``marks[0]`` is set to ``MARKS_ABANDONED`` and
        no more marks are published for this batch.
        """
        ev = self._ev
        if len(ev) < events_room(len(cmds)):
            ev = self._ev = np.zeros(events_room(len(cmds)), dtype=EVENT_DTYPE)
            if self.pretouch:
                touch_pages(ev)
        # one kernel call and no Python frame more in the common case: this is the
        # path of one command per call, where the call overhead is the cost
        if go is None and chunk == 0 and todo is None:
            status, start, n = process_commands(self.state.handles(), self.book_of, self.inst_of_book, cmds, 0, ev, 0)
        else:
            if go is None:
                go = STARTED
            status, start, n = _go_then_process(go[0], go[1], go[2], self.state.handles(), self.book_of,
                                                self.inst_of_book, cmds, 0, ev, 0, *_marked_args(marks, chunk, todo))
        if status == ST_DONE:
            return n
        n, self._ev = self._run(cmds, ev, start, n, status, marks, chunk, todo)
        return n

    def resume(self, cmds: np.ndarray, start: int, n: int, status: int, marks: np.ndarray | None = None,
               chunk: int = 0, todo: np.ndarray | None = None) -> int:
        """Go on with a batch whose kernel call returned ``status`` at ``cmds[start]`` with ``n`` events.

        For a caller that ran the kernel itself (``engine.merge.process_then_merge``)
        into ``events_buffer``; the arguments are ``process_into``'s.  Returns the batch's event count.
        """
        n, self._ev = self._run(cmds, self._ev, start, n, status, marks, chunk, todo)
        return n

    def _run(self, cmds: np.ndarray, ev: np.ndarray, start: int = 0, n: int = 0, status: int | None = None,
             marks: np.ndarray | None = None, chunk: int = 0,
             todo: np.ndarray | None = None) -> tuple[int, np.ndarray]:
        """Run the kernel over ``cmds[start:]`` into ``ev`` (``n`` events in it already), growing as it asks.

        ``status``: what a call the caller already made returned for ``cmds[start]`` (handled first).
        ``marks``, ``chunk`` and ``todo``: as ``process_into``'s.
        """
        st = self.state
        marks, chunk, todo, dealt = _marked_args(marks, chunk, todo)
        while True:
            if status is None:
                status, start, n = process_commands_marked(st.handles(), self.book_of, self.inst_of_book, cmds, start,
                                                           ev, n, marks, chunk, todo, dealt)
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
                if self.pretouch:  # the grown array's fresh pages, now rather than order by order
                    st.pretouch()
            status = None

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

    def live_order_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """``(accounts, order_ids)`` of every live order of this shard (resting, or a stop not yet triggered), unordered.

        Read from the order index, which holds exactly the live orders: one
        pass over its cells, none over the pool.
        """
        index = self.state.index
        used = index[:, H_KEY] != H_EMPTY
        rows = index[used, H_KEY] & ROW_MASK
        return self.state.orders[rows, O_ACCOUNT], index[used, H_OID]

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


@njit(cache=True, nogil=True)
def _go_then_process(flags, slot, value, st, book_of, inst_of_book, cmds, start, ev, n, marks, chunk, todo, dealt):
    """``flags[slot] = value`` once the GIL is released (see ``Crew.stage``), then ``process_commands_marked``."""
    store_seq_cst(flags, slot, value)
    return process_commands_marked(st, book_of, inst_of_book, cmds, start, ev, n, marks, chunk, todo, dealt)


#: ``marks[0]`` of a shard whose events outgrew their buffer mid-batch (see ``MatchingShard.process_into``).
MARKS_ABANDONED = -1
_NO_MARKS = np.zeros(1, dtype=np.int64)  # chunk 0: never read
_NO_TODO = np.zeros(0, dtype=np.int64)  # not dealt: never read


def _marked_args(marks: np.ndarray | None, chunk: int, todo: np.ndarray | None) -> tuple:
    """``process_commands_marked``'s ``(marks, chunk, todo, dealt)`` for ``process_into``'s optional ones.

    The kernel takes arrays, never ``None``: no marks (``chunk`` 0) and no
    dealt list stand in as arrays it does not read.
    """
    if chunk == 0:
        marks = _NO_MARKS
    if todo is None:
        return marks, chunk, _NO_TODO, False
    return marks, chunk, todo, True
