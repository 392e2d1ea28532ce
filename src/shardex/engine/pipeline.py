"""The staged pipeline: journal, pre-trade risk, matching, settlement, publication, overlapped.

Each stage runs on its own thread and hands batches to the next through a
bounded queue, so while batch k is being matched batch k+1 is being fsynced
and batch k-1 settled and published.  Every stage is one thread taking its
queue in FIFO order, so batches leave every stage in the order they entered
it: stages overlap in time but never reorder, and the event stream is the
one ``process`` would give batch after batch.  The matching stage takes
every batch queued for it at once through the shards
(``Exchange.process_many``'s stream, on batches already stamped), so that
the shards run through them without meeting at the end of each; the
events of each batch are merged into (seq, instrument) order.

Durability is kept: the journal stage comes before every other stage, so a
batch is matched only once it is durable, and its future resolves (the
acknowledgement) only after publication.  A failure in any stage halts the
pipeline: that batch's future raises the error and every later batch raises
``EngineHaltedError``.

>>> from shardex.engine.exchange import Exchange
>>> from shardex.engine.loadgen import instruments, order_flow, batches
>>> ex = Exchange(instruments(4), shards=2, clock=lambda: 1)
>>> with Pipeline(ex) as p:
...     events = list(p.run(batches(order_flow(10_000, n_instruments=4), 1024)))
>>> len(events), bool((sum(len(e) for e in events)) > 10_000)
(10, True)
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np

from shardex.engine.durable import DurableExchange, EngineHaltedError
from shardex.engine.exchange import Exchange

__all__ = ["Pipeline", "PreTradeRisk", "Settlement", "PassThroughRisk", "PassThroughSettlement", "STAGES"]

#: Stage names, in the order a batch meets them ("journal" only on a durable engine).
STAGES = ("journal", "risk", "matching", "settlement", "publication")

#: How long ``close`` waits for a stage thread to finish its queue (seconds).
_JOIN_TIMEOUT_S = 120.0


class PreTradeRisk(Protocol):
    """The pre-trade risk stage: sees each sequenced, journaled batch before matching."""

    def check(self, commands: np.ndarray) -> np.ndarray:
        """Return the commands to match (the risk layer will mark the ones it refuses)."""
        ...


class Settlement(Protocol):
    """The settlement stage: sees each batch's commands and events after matching."""

    def settle(self, commands: np.ndarray, events: np.ndarray) -> np.ndarray:
        """Book the batch's trades; return the events to publish."""
        ...


class PassThroughRisk:
    """A risk stage that accepts everything (until the risk layer fills this seam)."""

    def check(self, commands: np.ndarray) -> np.ndarray:
        """Return ``commands`` unchanged."""
        return commands


class PassThroughSettlement:
    """A settlement stage that books nothing (until the ledger fills this seam)."""

    def settle(self, commands: np.ndarray, events: np.ndarray) -> np.ndarray:
        """Return ``events`` unchanged."""
        return events


@dataclass
class _Ticket:
    """One batch on its way through the stages."""

    commands: np.ndarray
    index: int
    future: Future = field(default_factory=Future)
    events: np.ndarray | None = None
    error: BaseException | None = None


_STOP = object()


class Pipeline:
    """Batches through journal → risk → matching → settlement → publication, one thread per stage.

    Parameters
    ----------
    exchange
        The engine.  A ``DurableExchange`` (from ``Exchange.open``) gets a
        journal stage and periodic snapshots; a plain ``Exchange`` runs the
        other stages only.
    risk, settlement
        Stage implementations (default: pass-through).
    publish
        Called with each batch's events, in batch order, on the publication
        thread (market data, execution reports); the batch's future resolves
        after it returns.
    depth
        Batches each queue holds; ``submit`` blocks when the first is full
        (back-pressure instead of unbounded memory).
    """

    def __init__(self, exchange: Exchange, *, risk: PreTradeRisk | None = None,
                 settlement: Settlement | None = None, publish: Callable[[np.ndarray], None] | None = None,
                 depth: int = 4) -> None:
        if depth < 1:
            raise ValueError(f"pipeline depth must be >= 1, got {depth}")
        self.exchange = exchange
        self.risk = risk or PassThroughRisk()
        self.settlement = settlement or PassThroughSettlement()
        self.publish = publish
        self.depth = depth
        self._durable = isinstance(exchange, DurableExchange)
        if self._durable:
            exchange._check_accepting()
        stages: list[tuple[str, Callable]] = []
        if self._durable:
            stages.append(("journal", self._journal))
        stages += [("risk", self._risk), ("matching", self._match), ("settlement", self._settle),
                   ("publication", self._publish)]
        self.stage_names = [name for name, _ in stages]
        self._queues = [queue.Queue(maxsize=depth) for _ in stages]
        self._failure: BaseException | None = None
        self._fail_index: int | None = None  # submission index of the first failed batch
        self._fail_lock = threading.Lock()
        self._submitted = 0
        self._submit_lock = threading.Lock()
        self._closed = False
        if self._durable:
            exchange._pipeline_open = True
        self._threads = []
        for k, (name, fn) in enumerate(stages):
            out = self._queues[k + 1] if k + 1 < len(stages) else None
            lots = name == "matching"  # every batch queued at once through the shards; the others one by one
            t = threading.Thread(target=self._loop, args=(fn, self._queues[k], out, lots), name=f"shardex-{name}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    # -- stages ----------------------------------------------------------------
    def _journal(self, t: _Ticket) -> None:
        self.exchange.journal_batch(t.commands)

    def _risk(self, t: _Ticket) -> None:
        t.commands = self.risk.check(t.commands)

    def _match(self, tickets: list[_Ticket]) -> None:
        events = self.exchange._many([t.commands for t in tickets], stamp=False)
        for t, e in zip(tickets, events):
            t.events = e
        if self._durable:
            done = [t.commands for t in tickets if len(t.commands)]
            if done:  # one note for the lot: a periodic snapshot is taken with all of them matched
                self.exchange.applied(done[-1], commands=sum(len(c) for c in done))

    def _settle(self, t: _Ticket) -> None:
        t.events = self.settlement.settle(t.commands, t.events)

    def _publish(self, t: _Ticket) -> None:
        if self.publish is not None:
            self.publish(t.events)

    def _loop(self, fn: Callable, inq: queue.Queue, outq: queue.Queue | None, lots: bool) -> None:
        """One stage: take tickets in order until the stop marker; pass them on in the same order.

        ``lots``: ``fn`` takes a list of every ticket queued (the matching
        stage); otherwise ``fn`` takes one ticket at a time.  Tickets run up
        to the first that carries an error or comes at or after a failed
        one: batches ahead of a failed one finish normally.  Should ``fn``
        fail, the first ticket it was given carries the error and every
        later one ``EngineHaltedError``, to their futures, in order.
        """
        while True:  # ends at _STOP, which close() always sends, last
            lot = [inq.get()]
            while lots and lot[-1] is not _STOP:
                try:
                    lot.append(inq.get_nowait())
                except queue.Empty:
                    break
            stop = lot[-1] is _STOP
            tickets = lot[:-1] if stop else lot
            ready = []
            for t in tickets:
                if t.error is not None or (self._fail_index is not None and t.index >= self._fail_index):
                    break
                ready.append(t)
            if ready:
                try:
                    if lots:
                        fn(ready)
                    else:
                        fn(ready[0])
                except BaseException as exc:  # noqa: BLE001 - any stage failure halts the pipeline
                    with self._fail_lock:
                        if self._fail_index is None or ready[0].index < self._fail_index:
                            self._failure, self._fail_index = exc, ready[0].index
                    ready[0].error = exc
            failed = bool(ready) and ready[0].error is not None
            for t in tickets[1:] if failed else tickets[len(ready):]:
                if t.error is None:
                    t.error = EngineHaltedError(f"pipeline halted by an earlier failure: {self._failure!r}")
            for t in tickets:
                if outq is not None:
                    outq.put(t)
                elif t.error is not None:
                    t.future.set_exception(t.error)
                else:
                    t.future.set_result(t.events)
            if stop:
                if outq is not None:
                    outq.put(_STOP)
                return

    # -- API -------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        """True once a stage failed; every later batch is refused."""
        return self._failure is not None

    def submit(self, commands: np.ndarray) -> Future:
        """Sequence a batch now (in the caller's thread) and queue it; return a future of its events.

        The future resolves after the batch is journaled (durable per the
        fsync policy), matched, settled and published.  Blocks while the
        first queue is full.  Raises ``EngineHaltedError`` once the pipeline
        or the engine has halted.
        """
        cmds = self.exchange._as_commands(commands)
        with self._submit_lock:
            if self._closed:
                raise RuntimeError("pipeline is closed")
            if self._failure is not None:
                raise EngineHaltedError(f"pipeline halted by an earlier failure: {self._failure!r}") from self._failure
            self.exchange.sequencer.stamp(cmds)
            t = _Ticket(cmds, self._submitted)
            self._submitted += 1
            self._queues[0].put(t)
        return t.future

    def run(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Submit ``batches`` and yield each one's events in order, keeping the stages full.

        Raises the first failure when its batch's turn comes.
        """
        window = self.depth * len(self._queues)
        pending: deque[Future] = deque()
        for b in batches:
            pending.append(self.submit(b))
            while len(pending) > window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        """Let queued batches finish, stop the stage threads; idempotent."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._queues[0].put(_STOP)
        for t in self._threads:
            t.join(_JOIN_TIMEOUT_S)
            if t.is_alive():
                raise RuntimeError(f"pipeline stage {t.name} did not finish within {_JOIN_TIMEOUT_S} s")
        if self._durable:
            self.exchange._pipeline_open = False

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
