"""The ``Exchange``: the engine's Python face.

>>> from shardex import Exchange, Instrument
>>> ex = Exchange([Instrument(0, "BTC-PERP", tick_size="0.5", lot_size="0.001")])
>>> _ = ex.submit("BTC-PERP", "sell", "0.010", "61800.5", account=1, order_id=1)
>>> fills = ex.submit("BTC-PERP", "buy", "0.004", "61801", account=2, order_id=7)
>>> [(str(t.price), str(t.qty)) for t in ex.trades(fills)]
[('61800.5', '0.004')]
>>> ex.top("BTC-PERP")
(None, (Decimal('61800.5'), Decimal('0.006')))

Batches are the fast path: ``process(commands)`` takes a ``COMMAND_DTYPE``
array (integer ticks and lots), stamps it through the sequencer, runs it on
every shard at once and returns the events in sequence order.
"""

from __future__ import annotations

import hashlib
import sys
import time
import types
from decimal import Decimal
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np

from shardex.book.layout import NIL, ST_DONE, ST_GROW_EVENTS
from shardex.book.shard import MatchingShard, events_room
from shardex.crew import NO_WAIT, STARTED, Crew
from shardex.engine.commands import amend as _amend
from shardex.engine.commands import batch as _batch
from shardex.engine.commands import cancel as _cancel
from shardex.engine.commands import mass_cancel as _mass_cancel
from shardex.engine.commands import new_order
from shardex.engine.merge import (MC_ABORT, MC_BAD, MC_BY_SEQ, MC_SIZE, deal, merge_chunks, merge_events,
                                  process_then_merge)
from shardex.engine.sequencer import Sequencer
from shardex.engine.stream import (P_BATCH, P_SHARD, P_STATUS, P_WIDTH, SC_GROW_OUT, SC_MERGED, SC_SIZE, SC_STOP,
                                   run_group)
from shardex.errors import OrderRejected, UnknownInstrumentError
from shardex.instruments import Instrument
from shardex.lowlevel import aligned, handles
from shardex.lowlevel import pretouch as touch_pages
from shardex.schema import COMMAND_DTYPE, EVENT_DTYPE, EventKind, OrderType, reason_message
from shardex.sync import usable_cores

__all__ = ["Exchange", "Trade"]


#: How long a shard thread polls for its next batch, and the caller for the shards' results,
#: before blocking (Crew).  Between batches a thread waits for the merge and the caller's
#: Python (~60 us per 4096 commands on the reference VM), the caller for the slower shard
#: (0-150 us): 500 us covers both, and bounds what a poll costs a loaded machine.
_SPIN_SECONDS = 0.0005

#: Commands per chunk of the parallel merge (``merge.merge_chunks``): a shard publishes where each
#: chunk's events end as it passes it, and a thread whose shard is done merges the chunks every
#: shard has passed.  Smaller chunks start the merge earlier and cost a wait and a claim each.
MERGE_CHUNK = 512

#: Batches of fewer commands than this run every shard on the calling thread, one after
#: another.  Handing a round to the crew and collecting it costs ~10-20 us on the reference VM;
#: below ~128 commands that is more than the second core saves (bench/small_batches.py).
SERIAL_BELOW = 128

#: Event slots per shard of ``process_many``'s ring: a shard thread may run this many batches
#: less one ahead of the slowest.  Two slots keep a shard's events in its core's cache; bench
#: shards gave 2 slots 1.77x and 1.80x, 3 slots 1.74x and 1.72x, interleaved (2026-11-24).
STREAM_RING = 2


def _overlapping(arrays: list[np.ndarray]) -> bool:
    """Whether any two of the (C-contiguous) arrays share a byte."""
    spans = sorted((a.ctypes.data, a.ctypes.data + a.nbytes) for a in arrays if a.nbytes)
    return any(start < end for (_, end), (start, _) in zip(spans, spans[1:]))


def _references(a: np.ndarray) -> int:
    """``sys.getrefcount`` of ``a``, from one place, so that it compares with ``_ONLY_AN_ATTRIBUTE``."""
    return sys.getrefcount(a)


#: ``_references(holder.attribute)`` of an array nothing else refers to (no view of it is held): what
#: the attribute, the call and ``getrefcount`` hold, measured rather than assumed for the interpreter.
_probe = types.SimpleNamespace(spare=np.empty(0))  # named: a temporary holder would be gone before the count
_ONLY_AN_ATTRIBUTE = _references(_probe.spare)
del _probe


class Trade(NamedTuple):
    """A trade in decimal units, as ``Exchange.trades`` reports it."""

    instrument: str
    price: Decimal
    qty: Decimal
    taker_order_id: int
    taker_account: int
    maker_order_id: int
    maker_account: int
    trade_id: int


class Exchange:
    """Order books for many instruments, sharded across threads, fed in batches.

    Parameters
    ----------
    instruments
        Instruments listed at start; more with ``add_instrument``.
    shards
        Matching shards.  Instruments are dealt to shards round-robin in id
        order.  Shards run on as many threads as there are cores to run
        them (the caller's one of them), each thread its share of the shards
        one after another.  The events and the state hash are the same for
        every shard count.
    clock
        Nanosecond clock for the sequencer (default ``time.time_ns``).
    order_capacity
        Order pool rows each shard starts with (pools grow when full).
    pretouch
        Map the shards' pools and event buffers into memory at start and
        at each growth (``MatchingShard``), so that no batch stops for page
        faults.  With ``order_capacity`` sized for the venue's open orders
        this is the steady state of a long-running engine from the first
        order on; it costs the pools' full size in resident memory.
    """

    def __init__(self, instruments: Iterable[Instrument] = (), *, shards: int = 1,
                 clock: Callable[[], int] = time.time_ns, order_capacity: int = 1 << 16,
                 pretouch: bool = False) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self.sequencer = Sequencer(clock=clock)
        self.pretouch = pretouch
        self.shards = [MatchingShard(order_capacity=order_capacity, pretouch=pretouch) for _ in range(shards)]
        self._by_id: dict[int, Instrument] = {}
        self._by_symbol: dict[str, Instrument] = {}
        self._shard_of = np.zeros(0, dtype=np.int64)
        # One thread per core at most, the caller's among them: thread t runs shards t, t + T,
        # t + 2T, ... one after another (_groups).  More threads than cores only take turns on
        # them, woken per batch, where these hand batches over by spinning (Crew).
        threads = min(shards, usable_cores())
        self._groups = [list(range(t, shards, threads)) for t in range(threads)]
        self._crew = Crew(threads - 1, spin=_SPIN_SECONDS, name="shardex-shard") if threads > 1 else None
        self._closed = False
        # submit()'s default order ids: the next one per account, and whether the books
        # may hold ids it has not seen (a batch or a replay went through process/apply).
        self._next_oid: dict[int, int] = {}
        self._oids_current = True
        # The shards' event buffers: regions of one array, for the merge (merge_chunks).
        self._ev_cap = 0
        self._ev_all = np.empty(0, dtype=EVENT_DTYPE)
        self._ev_views: list[np.ndarray] = []
        self._ev_starts = np.zeros(shards, dtype=np.int64)
        # Where each shard's chunks of a batch end among its events (a row of cache lines per
        # shard, grown with the batch), and the merge's control slots.
        self._marks = aligned(0, np.int64, 0)
        self._marks_width = 0
        self._merge_ctl = aligned(MC_SIZE, np.int64, 0)
        # Each shard's commands of a batch by position (merge.deal): a row per shard, grown with the batch.
        self._todo = aligned((shards, 0), np.int64, 0)
        self._todo_counts = np.zeros(shards, dtype=np.int64)
        # process_many's buffers (stream.run_group): each shard's ring of event slots, its copy of its commands.
        self._ring_ev = np.empty(0, dtype=EVENT_DTYPE)
        self._ring_slot = 0
        self._ring = 0
        self._own_cmds = np.empty(0, dtype=COMMAND_DTYPE)
        self._own_width = 0
        self._spare_out: np.ndarray | None = None  # process_many's last output array (_output)
        for ins in sorted(instruments, key=lambda i: i.id):
            self.add_instrument(ins)

    # -- instruments ---------------------------------------------------------
    def add_instrument(self, ins: Instrument) -> None:
        """List an instrument (an empty book on the next shard in turn)."""
        if ins.id in self._by_id:
            raise ValueError(f"instrument id {ins.id} is already listed as {self._by_id[ins.id].symbol}")
        if ins.symbol in self._by_symbol:
            raise ValueError(f"symbol {ins.symbol} is already listed")
        shard = len(self._by_id) % len(self.shards)
        self.shards[shard].add(ins)
        self._by_id[ins.id] = ins
        self._by_symbol[ins.symbol] = ins
        if ins.id >= len(self._shard_of):
            grown = np.zeros(ins.id + 1, dtype=np.int64)
            grown[: len(self._shard_of)] = self._shard_of
            self._shard_of = grown
        self._shard_of[ins.id] = shard

    @property
    def instruments(self) -> list[Instrument]:
        """Listed instruments in id order."""
        return [self._by_id[i] for i in sorted(self._by_id)]

    def instrument(self, key: int | str | Instrument) -> Instrument:
        """Look an instrument up by id, symbol or itself; ``UnknownInstrumentError`` if not listed."""
        if isinstance(key, Instrument):
            key = key.id
        found = self._by_symbol.get(key) if isinstance(key, str) else self._by_id.get(int(key))
        if found is None:
            raise UnknownInstrumentError(f"instrument {key!r} is not listed; listed: {sorted(self._by_symbol)}")
        return found

    # -- the batch path --------------------------------------------------------
    def process(self, cmds: np.ndarray) -> np.ndarray:
        """Sequence and run a batch of ``COMMAND_DTYPE`` commands; return its events in order.

        Bad commands are rejected with a ``REJECTED`` event and a reason code;
        the rest of the batch goes on.
        """
        cmds = self._as_commands(cmds)
        self._oids_current = False
        if len(self.shards) == 1:
            self.sequencer.stamp(cmds)
            return self.shards[0].process(cmds)
        return self._run_sharded(cmds, True, *self.sequencer.reserve(len(cmds)))

    def apply(self, cmds: np.ndarray, *, events: bool = True) -> np.ndarray | None:
        """Run an already sequenced batch (replay path): no clock, no new sequence numbers.

        With ``events=False`` nothing is returned, which saves copying the
        events out (recovery only needs the state).
        """
        cmds = self._as_commands(cmds)
        self._oids_current = False
        if len(self.shards) == 1:
            if not events:
                self.shards[0].process_into(cmds)
                return None
            return self.shards[0].process(cmds)
        return self._run_sharded(cmds, events, 0, 0)

    def process_many(self, batches: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Sequence and run many batches; each one's events, as ``[process(b) for b in batches]`` returns them.

        On several shards the threads stream through the list instead of
        meeting at the end of every batch: each copies its shards' commands
        out of batch after batch and matches them, up to ``STREAM_RING - 1``
        batches ahead of the slowest, and a batch's events are merged once
        every shard has passed it, by the thread ahead where one is
        (``engine.stream``).  The events, stamps and state are those of
        ``process`` batch by batch; batches that share memory run batch by
        batch.

        The events of the whole list are views into one array.  Once none of
        them is referred to any more, the next call writes into that array
        again rather than into fresh memory, which the OS would first have
        to map page by page (a page fault every 4 KB, ~0.6 us each on the
        reference VM): a caller that publishes the events and lets them go
        (bench shards) keeps writing to the same warm pages.
        """
        return self._many([self._as_commands(b) for b in batches], stamp=True)

    def _many(self, batches: list[np.ndarray], stamp: bool) -> list[np.ndarray]:
        """``process_many`` (``stamp``), or the same on batches already stamped (a durable engine's, journaled)."""
        if self._closed:
            raise RuntimeError("this Exchange is closed: its shard threads are stopped")
        self._oids_current = False
        if not batches:
            return []
        if len(self.shards) == 1:
            return self._one_after_another(batches, stamp)
        if self._crew is None or not self._crew.spinning or len(batches) < 2 or _overlapping(batches):
            # one batch, no thread to stream on, or batches that share memory (the same array twice:
            # stamping the second while a shard reads the first would change what the first says)
            # Exchange's own, not an override's: a durable engine has journaled these batches already
            one = Exchange.process if stamp else Exchange.apply
            return [one(self, b) for b in batches]
        return self._stream(batches, stamp)

    def _output(self, rows: int) -> np.ndarray:
        """An array for a list's events: ``process_many``'s last one if no view of it is held and it is large enough."""
        # no local name for it before the count: one would be a reference more
        if (self._spare_out is not None and len(self._spare_out) >= rows
                and _references(self._spare_out) == _ONLY_AN_ATTRIBUTE):
            return self._spare_out
        self._spare_out = None  # let it go before its successor is allocated
        out = self._spare_out = np.empty(rows, dtype=EVENT_DTYPE)
        return out

    @staticmethod
    def _views(out: np.ndarray, offs: list[int]) -> list[np.ndarray]:
        """Each batch's events: ``out[offs[k]:offs[k + 1]]``."""
        return [out[a:b] for a, b in zip(offs[:-1], offs[1:])]

    def _one_after_another(self, batches: list[np.ndarray], stamp: bool) -> list[np.ndarray]:
        """``_many`` on one shard: each batch stamped (``stamp``) and matched straight into the list's array."""
        sh = self.shards[0]
        room = [events_room(len(b)) for b in batches]
        out = self._output(sum(room))
        offs = [0]
        for k, cmds in enumerate(batches):
            if stamp:
                self.sequencer.stamp(cmds)
            j = offs[-1]
            n, ev = sh.process_onto(cmds, out[j:])
            if ev.base is not out:  # the events outgrew the array: a larger one, the rest of the list's room with it
                grown = self._output(j + n + sum(room[k + 1:]))
                grown[:j] = out[:j]
                grown[j:j + n] = ev[:n]
                out = grown
            offs.append(j + n)
        return self._views(out, offs)

    def _stream(self, batches: list[np.ndarray], stamp: bool) -> list[np.ndarray]:
        """``_many`` on the shard threads (``stream.run_group``), growing what they ask for between rounds."""
        shards, groups, w = self.shards, self._groups, len(batches)
        seqs = np.zeros(w, dtype=np.int64)  # 0: a batch's stamps are left as they are
        tss = np.zeros(w, dtype=np.int64)
        if stamp:
            for k, b in enumerate(batches):
                seqs[k], tss[k] = self.sequencer.reserve(len(b))
        longest = max(len(b) for b in batches)
        if longest > self._own_width:
            self._own_width = -(-longest // 8) * 8  # whole cache lines per shard (80-byte commands)
            self._own_cmds = np.empty(len(shards) * self._own_width, dtype=COMMAND_DTYPE)
            if self.pretouch:
                touch_pages(self._own_cmds)
        ring = STREAM_RING
        self._ring_events(events_room(longest), ring)
        table = handles(batches, COMMAND_DTYPE)
        nev = np.zeros((w, len(shards)), dtype=np.int64)
        ctl = aligned(SC_SIZE, np.int64, 0)
        done = aligned(8 * len(groups), np.int64, 0)
        pos = np.zeros((len(groups), P_WIDTH), dtype=np.int64)
        # every batch's events in one array: room for what process would give each batch, grown if need be
        out = self._output(sum(events_room(len(b)) for b in batches))
        offs = np.zeros(w + 1, dtype=np.int64)
        no_marks = np.zeros(1, dtype=np.int64)
        no_todo = np.zeros(0, dtype=np.int64)
        while True:
            calls = []
            for t, group in enumerate(groups):
                tables, book_ofs, inst_of_books, nbooks = self._group_tables(group)
                args = (t, len(groups), np.array(group, dtype=np.int64), tables, book_ofs, inst_of_books, nbooks,
                        w, table, batches[0], seqs, tss, self._shard_of, self._own_cmds, self._own_width,
                        self._ring_ev, self._ring_slot, ring, nev, ctl, done, out, offs, pos, no_marks, no_todo)
                calls.append((self._run_group, (ctl, args)))
            self._crew.run(calls)
            if not ctl[SC_STOP]:
                break
            # a shard or the output must grow: nothing runs now; grow it, and let every thread go on
            # from where it stopped
            if ctl[SC_GROW_OUT]:
                used = int(offs[ctl[SC_MERGED]])
                grown = self._output(max(2 * len(out), int(ctl[SC_GROW_OUT])))
                grown[:used] = out[:used]
                out = grown
                ctl[SC_GROW_OUT] = 0
            for t, group in enumerate(groups):
                status = int(pos[t, P_STATUS])
                if status == ST_GROW_EVENTS:
                    self._ring_events(2 * self._ring_slot, ring)
                elif status != ST_DONE:
                    sh = shards[group[int(pos[t, P_SHARD])]]
                    sh.state.ensure(status)
                    if sh.pretouch:
                        sh.state.pretouch()
            ctl[SC_STOP] = 0
        if ctl[SC_MERGED] != w or not all(pos[:, P_BATCH] == w):  # pragma: no cover - a bug in run_group
            raise RuntimeError(f"process_many: {int(ctl[SC_MERGED])} of {w} batches merged")
        return self._views(out, offs.tolist())

    @staticmethod
    def _run_group(ctl: np.ndarray, args: tuple) -> int:
        """One thread's call of ``stream.run_group``; should it fail, the other threads are told to stop."""
        try:
            return run_group(*args)
        except BaseException:
            ctl[SC_STOP] = 1
            raise

    def _group_tables(self, group: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A thread's shards' handle tables and book maps, one row each (``book_of`` rows padded with NIL)."""
        shards = [self.shards[s] for s in group]
        tables = np.stack([sh.state.handles() for sh in shards])
        book_ofs = np.full((len(shards), max(len(sh.book_of) for sh in shards)), NIL, dtype=np.int64)
        inst_of_books = np.zeros((len(shards), max(len(sh.inst_of_book) for sh in shards)), dtype=np.int64)
        for i, sh in enumerate(shards):
            book_ofs[i, :len(sh.book_of)] = sh.book_of
            inst_of_books[i, :len(sh.inst_of_book)] = sh.inst_of_book
        return tables, book_ofs, inst_of_books, np.array([len(sh.inst_of_book) for sh in shards], dtype=np.int64)

    def _ring_events(self, slot: int, ring: int) -> None:
        """Give every shard ``ring`` slots of room for ``slot`` events each, keeping what they hold (same ``ring``)."""
        if slot <= self._ring_slot and ring == self._ring:
            return
        slot = -(-max(slot, self._ring_slot) // 1024) * 1024
        old, old_slot = self._ring_ev, self._ring_slot
        ev = np.empty(len(self.shards) * ring * slot, dtype=EVENT_DTYPE)
        if self.pretouch:
            touch_pages(ev)
        if ring == self._ring:  # grown mid-list: the slots hold events not merged yet
            for j in range(len(old) // old_slot if old_slot else 0):
                ev[j * slot:j * slot + old_slot] = old[j * old_slot:(j + 1) * old_slot]
        self._ring_ev, self._ring_slot, self._ring = ev, slot, ring

    def _run_sharded(self, cmds: np.ndarray, events: bool, first_seq: int, ts: int) -> np.ndarray | None:
        """``apply`` on several shards; stamps the batch from ``first_seq`` (and ``ts``) as it deals it when > 0.

        A batch that is all one shard's runs on that shard alone; one of
        fewer than ``SERIAL_BELOW`` commands runs every shard on this thread.
        """
        # One pass lists each shard's commands (no copy of the batch per shard); each shard
        # leaves its events in its region of one buffer, and the merge copies them out command
        # by command.  The calling thread runs the first group of shards itself: one thread
        # hand-off fewer per batch, and a thread that would only wait is put to work.
        if self._closed:
            raise RuntimeError("this Exchange is closed: its shard threads are stopped")
        shards, groups, crew = self.shards, self._groups, self._crew
        todo = self._deal(cmds, first_seq, ts)
        busy = [s for s, t in enumerate(todo) if len(t)]
        if len(busy) <= 1:
            # Every command is one shard's (a single order, a burst on one instrument): that shard
            # runs the batch as a lone engine would, with no hand-off and no merge.
            sh = shards[busy[0] if busy else 0]
            if events:
                return sh.process(cmds)
            self._event_regions(len(cmds))
            sh.process_into(cmds)
            return None
        views = self._event_regions(len(cmds))
        if crew is not None and len(cmds) < SERIAL_BELOW:
            crew = None  # a hand-off to the crew and back costs a small batch more than it saves
        if not events:
            # The caller's first kernel starts the other threads' round as it starts (go): see Crew.
            go = crew.stage([(self._group_into, (g, cmds, todo)) for g in groups[1:]]) if crew else None
            try:
                for g in (groups if crew is None else groups[:1]):
                    self._group_into(g, cmds, todo, go)
            finally:
                if crew:
                    crew.collect()  # never leave a shard running past this call
            return None
        # Each shard publishes where its chunks end as it goes; each thread, its shards done,
        # merges the chunks every shard has passed (merge_chunks).  Where the crew does not
        # spin (none, or a machine with no core to spare) the caller merges once every shard is done.
        chunk = MERGE_CHUNK
        marks, width = self._chunk_marks(-(-len(cmds) // chunk))
        ctl = self._merge_ctl
        ctl[:] = 0
        # Stamped here (process), the batch's seqs rise with its commands: two shards' events can
        # be merged on seq without reading the commands.  A replayed batch (apply) is walked, which
        # checks that rule and falls back to merge_events where it is broken.
        ctl[MC_BY_SEQ] = first_seq > 0
        out = np.empty(len(self._ev_all), dtype=EVENT_DTYPE)
        merge = (cmds, self._shard_of, self._ev_all, self._ev_starts, marks, width, chunk, ctl, out)
        if crew is None:
            per_group = [self._group_then_merge(g, cmds, todo, marks, width, merge, False) for g in groups]
            together = False
        else:
            together = crew.spinning
            go = crew.stage([(self._group_then_merge, (g, cmds, todo, marks, width, merge, together))
                             for g in groups[1:]])
            try:
                first = self._group_then_merge(groups[0], cmds, todo, marks, width, merge, together, go,
                                               crew.finish_line() if together else NO_WAIT)
            finally:
                rest = crew.collect()  # never leave a shard running past this call
            per_group = [first, *rest]
        if not together:
            merge_chunks(*merge)  # every mark is final: no waiting
        counts = [0] * len(shards)
        for group, ns in zip(groups, per_group):
            for s, n in zip(group, ns):
                counts[s] = n
        if ctl[MC_ABORT] or ctl[MC_BAD] or not all(sh.events_buffer is v for sh, v in zip(shards, views)):
            # a shard outgrew its region (its events are in an array of its own), or the
            # batch broke the walk's rules: the k-way merge
            return merge_events([sh.events_buffer[:n] for sh, n in zip(shards, counts)])
        out.resize(sum(counts), refcheck=False)  # out is ours alone: nothing else refers to it yet
        return out

    def _group_into(self, group: list[int], cmds: np.ndarray, todo: list[np.ndarray],
                    go: tuple[np.ndarray, int, int] | None = None) -> None:
        """One thread's part of ``apply(events=False)``: its shards, one after another."""
        for s in group:
            self.shards[s].process_into(cmds, go, None, 0, todo[s])
            go = None  # the round has started

    def _group_then_merge(self, group: list[int], cmds: np.ndarray, todo: list[np.ndarray], marks: np.ndarray,
                          width: int, merge: tuple, together: bool,
                          go: tuple[np.ndarray, int, int] | None = None, finish: tuple = NO_WAIT) -> list[int]:
        """One thread's part of ``apply``: its shards one after another, then (``together``) help merge.

        The merge waits for every shard's marks, so a thread joins it only
        once its own shards are done.  ``finish``: the caller's
        ``Crew.finish_line``, polled once the merge is done.  Returns the
        group's event counts.
        """
        counts = []
        for s in group:
            last = s == group[-1]
            counts.append(self._shard_then_merge(s, cmds, todo[s], marks[s * width:(s + 1) * width], merge,
                                                 together and last, go, finish))
            go = None  # the round has started
        return counts

    def _shard_then_merge(self, s: int, cmds: np.ndarray, todo: np.ndarray, marks: np.ndarray, merge: tuple,
                          together: bool, go: tuple[np.ndarray, int, int] | None = None,
                          finish: tuple = NO_WAIT) -> int:
        """Shard ``s``'s part of ``apply``: run its commands (``todo``), then (``together``) help merge; its event count.

        ``finish`` (``Crew.finish_line``): the kernel that merges returns only
        once the crew's threads have finished, so that this thread does not
        find one of them holding the GIL.
        """
        sh = self.shards[s]
        try:
            if together and len(sh.events_buffer) >= events_room(len(cmds)):
                # matching and merging in one compiled call: no GIL to take between them
                g = go if go is not None else STARTED  # a crew thread: its round is running
                status, start, n = process_then_merge(g[0], g[1], g[2], sh.state.handles(), sh.book_of, sh.inst_of_book,
                                                      sh.events_buffer, marks, todo, *merge, *finish)
                if status == ST_DONE:
                    return n
                n = sh.resume(cmds, start, n, status, marks, MERGE_CHUNK, todo)
            else:
                n = sh.process_into(cmds, go, marks, MERGE_CHUNK, todo)
        except BaseException:
            merge[7][MC_ABORT] = 1  # release the threads waiting for this shard's marks
            raise
        if together:
            merge_chunks(*merge)
        return n

    def _deal(self, cmds: np.ndarray, first_seq: int, ts: int) -> list[np.ndarray]:
        """Each shard's commands of the batch by position (``merge.deal``), stamping it if ``first_seq`` > 0."""
        n = len(cmds)
        if n > self._todo.shape[1]:
            width = -(-n // 8) * 8  # whole cache lines per row: no shard reads a line another's row shares
            self._todo = aligned((len(self.shards), width), np.int64, 0)
        todo, counts = self._todo, self._todo_counts
        deal(cmds, self._shard_of, todo, counts, first_seq, ts)
        return [todo[s, :c] for s, c in enumerate(counts.tolist())]

    def _chunk_marks(self, nchunks: int) -> tuple[np.ndarray, int]:
        """Every shard's marks row for a batch of ``nchunks`` chunks, progress reset: (array, row width)."""
        width = -(-(nchunks + 2) // 8) * 8  # whole cache lines: no shard writes another's line
        if width > self._marks_width:
            self._marks = aligned(len(self.shards) * width, np.int64, 0)
            self._marks_width = width
        width = self._marks_width
        self._marks[::width] = 0
        return self._marks, width

    def _event_regions(self, batch: int) -> list[np.ndarray]:
        """Give every shard its region of the shared event buffer, large enough for a batch of ``batch`` commands."""
        shards = self.shards
        need = events_room(batch)  # what MatchingShard.process_into asks for
        for sh, v in zip(shards, self._ev_views):
            if sh.events_buffer is not v:  # it outgrew its region: make room for as much
                need = max(need, len(sh.events_buffer) + 1)
        if need > self._ev_cap:
            cap = self._ev_cap = -(-need // 1024) * 1024
            self._ev_all = np.empty(len(shards) * cap, dtype=EVENT_DTYPE)
            if self.pretouch:
                touch_pages(self._ev_all)
            self._ev_views = [self._ev_all[s * cap:(s + 1) * cap] for s in range(len(shards))]
            self._ev_starts = np.arange(0, len(shards) * cap, cap, dtype=np.int64)
        for sh, v in zip(shards, self._ev_views):
            if sh.events_buffer is not v:
                sh.events_buffer = v
        return self._ev_views

    def _as_commands(self, cmds: np.ndarray) -> np.ndarray:
        if not isinstance(cmds, np.ndarray) or cmds.dtype != COMMAND_DTYPE:
            raise TypeError("commands must be a numpy array of shardex.COMMAND_DTYPE; "
                            "build one with shardex.engine.commands.batch(...)")
        return np.ascontiguousarray(cmds)

    # -- one order at a time, in decimal units ----------------------------------
    def submit(self, instrument: int | str, side: object, qty: object, price: object = None, *,
               account: int = 0, order_id: int | None = None, type: object = None, tif: object = "gtc",
               post_only: bool = False, display_qty: object = None, stop_price: object = None,
               stp: object = "none") -> np.ndarray:
        """Submit one order given in decimals; return its events.

        ``type`` defaults to LIMIT with a price and MARKET without;
        ``order_id`` to one above the highest the account has had from
        ``submit`` or has open in the books (batches and a recovery
        included).  Raises
        ``OffGridError`` for prices and sizes off the instrument's grid and
        ``OrderRejected`` (with ``.reason``) when the engine rejects it.
        """
        ins = self.instrument(instrument)
        if type is None:
            type = OrderType.LIMIT if price is not None else OrderType.MARKET
        if order_id is None:
            if not self._oids_current:
                self._catch_up_order_ids()
            order_id = self._next_oid.get(account, 1)
        self._next_oid[account] = max(self._next_oid.get(account, 1), int(order_id) + 1)
        current = self._oids_current  # this order's id is counted above: it makes the counters no staler
        rec = new_order(
            ins.id, side, ins.qty_to_lots(qty), 0 if price is None else ins.price_to_ticks(price),
            order_id=order_id, account=account, type=type, tif=tif, post_only=post_only,
            display_qty=0 if display_qty is None else ins.qty_to_lots(display_qty),
            stop_price=0 if stop_price is None else ins.price_to_ticks(stop_price), stp=stp,
        )
        try:
            return self._one(rec)
        finally:
            self._oids_current = current

    def _catch_up_order_ids(self) -> None:
        """Raise each account's next default order id above every id it has live in the books.

        Batches (``process``, ``apply``, a journal replayed at open) may carry
        ids that ``submit`` never handed out; its default id must not collide
        with an open order's (``DUPLICATE_ORDER_ID``).  One pass over the
        shards' order indexes, taken at the first defaulted ``submit`` after
        such a batch.
        """
        keys = [sh.live_order_keys() for sh in self.shards]
        accounts = np.concatenate([a for a, _ in keys])
        oids = np.concatenate([o for _, o in keys])
        if len(accounts):
            order = np.lexsort((oids, accounts))  # by account, then id: each account's last is its highest
            accounts, oids = accounts[order], oids[order]
            last = np.append(accounts[1:] != accounts[:-1], True)
            for account, oid in zip(accounts[last].tolist(), oids[last].tolist()):
                if self._next_oid.get(account, 1) <= oid:
                    self._next_oid[account] = oid + 1
        self._oids_current = True

    def cancel(self, instrument: int | str, order_id: int, *, account: int = 0) -> np.ndarray:
        """Cancel one order; ``OrderRejected`` if the account has no such open order."""
        return self._one(_cancel(self.instrument(instrument).id, order_id, account=account))

    def amend(self, instrument: int | str, order_id: int, *, qty: object, price: object = None,
              account: int = 0) -> np.ndarray:
        """Change an order's open quantity and/or price (decimals).

        A decrease keeps queue priority; a price change or an increase loses it.
        """
        ins = self.instrument(instrument)
        return self._one(_amend(ins.id, order_id, account=account, qty=ins.qty_to_lots(qty),
                                price=0 if price is None else ins.price_to_ticks(price)))

    def mass_cancel(self, account: int, instrument: int | str | None = None) -> np.ndarray:
        """Cancel every open order of ``account`` (on one instrument, or on all)."""
        inst = -1 if instrument is None else self.instrument(instrument).id
        return self.process(_batch([_mass_cancel(account, inst)]))

    def _one(self, record: tuple) -> np.ndarray:
        events = self.process(_batch([record]))
        rejected = events[events["kind"] == EventKind.REJECTED]
        if len(rejected):
            code = int(rejected["reason"][0])
            raise OrderRejected(code, f"order {int(rejected['order_id'][0])} rejected: {reason_message(code)}")
        return events

    # -- views ---------------------------------------------------------------
    def _shard(self, ins: Instrument) -> MatchingShard:
        return self.shards[int(self._shard_of[ins.id])]

    def depth(self, instrument: int | str, levels: int = 10) -> dict:
        """L2 depth in decimals: ``{"bids": [(price, qty, orders), ...], "asks": [...]}``, best first."""
        ins = self.instrument(instrument)
        bids, asks = self._shard(ins).depth(ins.id, levels)
        conv = lambda rows: [(ins.ticks_to_price(p), ins.lots_to_qty(q), int(c)) for p, q, c in rows]  # noqa: E731
        return {"bids": conv(bids), "asks": conv(asks)}

    def depth_ticks(self, instrument: int | str, levels: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """L2 depth in integers: (bids, asks) arrays of (price ticks, qty lots, orders), best first."""
        ins = self.instrument(instrument)
        return self._shard(ins).depth(ins.id, levels)

    def top(self, instrument: int | str) -> tuple:
        """((bid price, bid qty) or None, (ask price, ask qty) or None), in decimals."""
        d = self.depth(instrument, 1)
        bid = d["bids"][0][:2] if d["bids"] else None
        ask = d["asks"][0][:2] if d["asks"] else None
        return bid, ask

    def l3(self, instrument: int | str) -> np.ndarray:
        """Every order of the book in priority order; columns ``shardex.book.views.L3_COLUMNS``."""
        ins = self.instrument(instrument)
        return self._shard(ins).l3(ins.id)

    def stats(self, instrument: int | str) -> dict:
        """Last trade price (ticks), trade count, traded volume (lots), live orders and stops of a book."""
        ins = self.instrument(instrument)
        return self._shard(ins).book_stats(ins.id)

    def trades(self, events: np.ndarray) -> list[Trade]:
        """The trades among ``events``, in decimal units."""
        out = []
        for e in events[events["kind"] == EventKind.TRADE]:
            ins = self._by_id[int(e["instrument"])]
            out.append(Trade(ins.symbol, ins.ticks_to_price(e["price"]), ins.lots_to_qty(e["qty"]),
                             int(e["order_id"]), int(e["account"]), int(e["maker_order_id"]),
                             int(e["maker_account"]), int(e["trade_id"])))
        return out

    def state_hash(self) -> str:
        """sha256 over every book's canonical state (orders in priority order, last price, counters).

        Engines with the same command history share it, whatever their shard count.
        """
        h = hashlib.sha256()
        for ins in self.instruments:
            self._shard(ins).hash_book(h, ins.id)
        return h.hexdigest()

    @classmethod
    def open(cls, path, instruments: Iterable[Instrument] = (), **options) -> "Exchange":
        """Open (or create) the durable engine at ``path``: journal and snapshots there, state recovered.

        Options (``shards``, ``fsync_policy``, ``snapshot_every``, ...): ``shardex.engine.durable.open_exchange``.
        """
        from shardex.engine.durable import open_exchange  # durable imports this module

        return open_exchange(path, instruments, **options)

    def close(self) -> None:
        """Stop the shard threads."""
        crew, self._crew = self._crew, None
        self._closed = True
        if crew is not None:
            crew.close()

    def __enter__(self) -> "Exchange":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
