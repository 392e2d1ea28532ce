"""The embedded durable engine: ``Exchange.open(path)``.

Layout under ``path``::

    journal/     the write-ahead log (shardex.journal.Journal)
    snapshots/   engine snapshots (shardex.journal.SnapshotStore)

Every ``process(cmds)`` batch is stamped by the sequencer, appended to the
journal (one fsync per batch under the default ``batch`` policy: group
commit) and only then matched, so no event of a batch exists before the
batch is durable.  Opening recovers: the newest valid snapshot, then the
journal tail replayed through ``apply`` (no clock is read).  A failed write
or fsync halts the engine: that batch and every later one raise
``EngineHaltedError`` (``Reason.ENGINE_HALTED``), because after a failed
fsync nothing more can honestly be acknowledged.

>>> import tempfile
>>> from shardex.engine.exchange import Exchange
>>> from shardex.instruments import Instrument
>>> d = tempfile.mkdtemp()
>>> with Exchange.open(d, [Instrument(0, "BTC-PERP")], shards=2) as ex:
...     _ = ex.submit("BTC-PERP", "sell", 5, 101, account=1, order_id=1)
...     live = ex.state_hash()
>>> with Exchange.open(d, shards=1) as again:   # another shard count, same state
...     again.state_hash() == live, again.top("BTC-PERP")[1]
(True, (Decimal('101'), Decimal('5')))
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from shardex.engine.exchange import Exchange, _overlapping
from shardex.engine.snapshotting import (
    SnapshotLayoutError, capture, detached_hash, restore, snapshot_listing,
)
from shardex.errors import JournalError, ShardexError
from shardex.instruments import Instrument
from shardex.journal import (
    JOURNAL_DIRNAME, SNAPSHOT_DIRNAME, FsyncPolicy, Journal, SnapshotStore, SyncBeside, recover,
)
from shardex.schema import Reason

__all__ = ["DurableExchange", "EngineHaltedError", "EngineOpenError", "open_exchange", "REPLAY_CHUNK"]

log = logging.getLogger("shardex.engine")

#: Commands per ``apply`` call during recovery: journal records (one per
#: original batch) smaller than this are concatenated up to it, so that tiny
#: batches do not pay one kernel call each.  Larger chunks cost more than they
#: save: the copy into one array, and an event buffer that no longer fits in
#: cache (65,536 measured 25% slower than 4,096 on the 1M-command workload).
REPLAY_CHUNK = 4096

#: Under the ``batch`` fsync policy, ``process`` matches a batch of at least this many commands
#: while the journal thread fsyncs it, and hands its events out once it is durable.  Below it the
#: hand-off to that thread (~50-100 us to wake it on the reference VM) costs more than the
#: matching it overlaps (bench/durable_process.py).
JOURNAL_ALONGSIDE_FROM = 1024


class EngineHaltedError(ShardexError, RuntimeError):
    """The engine stopped accepting commands after a durability failure (``Reason.ENGINE_HALTED``).

    Restart it with ``Exchange.open`` on the same directory: recovery cuts any
    half-written record and resumes from what is durable.  Until then the
    halted engine's books are not authoritative: ``process`` matches a large
    batch while its fsync runs, so they may hold the batch that failed.
    """

    reason = Reason.ENGINE_HALTED


class EngineOpenError(ShardexError, OSError):
    """The engine directory cannot be used: missing parent, not a directory, not writable, bad content."""


class DurableExchange(Exchange):
    """An ``Exchange`` whose every batch is journaled before it runs; made by ``Exchange.open``.

    Attributes
    ----------
    path
        The engine directory.
    log
        The ``CommandLog`` (a local ``Journal``).
    snapshots
        The ``SnapshotStore``.
    recovered_commands
        Commands replayed from the journal at open.
    redealt
        True when the snapshot was written with another shard layout and its
        books were re-dealt to this one.
    """

    # Set by open_exchange; declared for readers and type checkers.
    path: Path
    log: Journal
    snapshots: SnapshotStore
    snapshot_every: int
    snapshot_on_close: bool
    recovered_commands: int
    redealt: bool

    def _init_durable(self, path: Path, log_: Journal, snapshots: SnapshotStore, snapshot_every: int,
                      snapshot_on_close: bool) -> None:
        self.path = path
        self.log = log_
        self.snapshots = snapshots
        self.snapshot_every = int(snapshot_every)
        self.snapshot_on_close = snapshot_on_close
        self.recovered_commands = 0
        self.redealt = False
        self._listing: list[Instrument] = []
        self._halted: BaseException | None = None
        self._mutex = threading.RLock()  # one batch at a time: stamp, append, apply are one ordered step
        self._since_snapshot = 0
        self._snap_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shardex-snapshot")
        self._beside = SyncBeside()
        # Only a journal that fsyncs every batch gains from fsyncing beside the shards (process).
        self._sync_each_batch = getattr(getattr(log_, "policy", None), "mode", None) == "batch"
        self._snap_future: Future | None = None
        #: The last error of a background snapshot (None if the last one succeeded).
        self.snapshot_error: BaseException | None = None
        self._pipeline_open = False
        self._ready = False
        self._applied_seq = 0  # last command applied to the books (the sequencer may run ahead)
        self._applied_ts = 0

    # -- instruments -----------------------------------------------------------
    def add_instrument(self, ins: Instrument) -> None:
        """List an instrument and make the listing durable (a snapshot is written at once)."""
        super().add_instrument(ins)
        self._listing.append(ins)
        if getattr(self, "_ready", False):
            self.snapshot()

    # -- the batch path --------------------------------------------------------
    @property
    def halted(self) -> bool:
        """True once a durability failure stopped the engine."""
        return self._halted is not None

    @property
    def durable_seq(self) -> int:
        """The highest seq known to be on stable storage (trails under the ``interval`` policy)."""
        return self.log.durable_seq

    def _check_accepting(self) -> None:
        if self._halted is not None:
            raise EngineHaltedError(
                f"engine at {self.path} halted after a durability failure ({self._halted}); "
                "no command is accepted; reopen with Exchange.open to recover"
            ) from self._halted
        if self._pipeline_open:
            raise RuntimeError("a pipeline is open on this engine: submit batches through it, or close it first")

    def process(self, cmds: np.ndarray) -> np.ndarray:
        """Stamp, journal (durably, per the fsync policy), then match a batch; return its events.

        Raises ``EngineHaltedError`` if the journal write or fsync fails (the
        batch is not acknowledged, and no later batch will be) and
        ``TypeError`` for an array that is not ``COMMAND_DTYPE``.
        """
        cmds = self._as_commands(cmds)
        with self._mutex:
            self._check_accepting()
            self.sequencer.stamp(cmds)
            events = self._journaled([cmds], self.apply, cmds)
            self.applied(cmds)
        return events

    def process_many(self, batches: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Stamp and journal every batch of the list, then match them all (``Exchange.process_many``); their events.

        The list is one group commit: under the ``batch`` policy its batches
        are written, then fsynced once, and from ``JOURNAL_ALONGSIDE_FROM``
        commands on matched while that fsync runs.  Nothing is handed out
        before the fsync has returned; if it fails, the engine halts and
        hands out nothing of the list.  A periodic snapshot is considered
        once the whole list is matched.
        """
        batches = [self._as_commands(b) for b in batches]
        if _overlapping(batches):
            # the same array twice: stamping the second before the first is journaled would journal
            # the second's stamps twice; batch by batch, each is journaled as it was stamped
            return [self.process(b) for b in batches]
        with self._mutex:
            self._check_accepting()
            for b in batches:
                self.sequencer.stamp(b)
            stamped = [b for b in batches if len(b)]
            if not stamped:
                return self._many(batches, stamp=False)
            events = self._journaled(stamped, self._many, batches, False)
            self.applied(stamped[-1], commands=sum(len(b) for b in stamped))
        return events

    def _journaled(self, stamped: list[np.ndarray], work: Callable[..., Any], *args: Any) -> Any:
        """Journal the stamped batches and run ``work(*args)`` (their matching); its result once they are durable.

        Under the ``batch`` policy the batches are written, then fsynced
        once (the last append's fsync covers them all); from
        ``JOURNAL_ALONGSIDE_FROM`` commands on, the work runs while that
        fsync does.  The checksum and the write run here, before
        the shards start; the fsync, which only waits on the disk, runs
        beside them.  The kernels only read the commands.  Should the fsync
        fail, the engine halts and the result is never handed out: the books
        then hold batches that are not durable, which is why a halted engine
        takes no snapshot.  Under the other policies each batch is appended
        as its policy says, then the work runs.
        """
        *rest, last = stamped
        for b in rest:  # one fsync for them all: the last append's, or the one beside the work
            self.journal_batch(b, sync=False)
        if self._sync_each_batch and sum(len(b) for b in stamped) >= JOURNAL_ALONGSIDE_FROM:
            self.journal_batch(last, sync=False)
            # EngineHaltedError (from _sync_journal) where the batches did not become durable
            return self._beside.run(lambda: self._sync_journal(last), work, *args)
        self.journal_batch(last)  # durable as the policy says (under batch, with everything before it)
        return work(*args)

    def journal_batch(self, cmds: np.ndarray, *, sync: bool = True) -> int:
        """Append a stamped batch to the journal; halt and raise ``EngineHaltedError`` on failure.

        The pipeline's journal stage calls this; ``process`` does too.  With
        ``sync=False`` the batch is durable only after ``_sync_journal``.
        """
        if self._halted is not None:
            self._check_accepting()
        try:
            return self.log.append(cmds, sync=sync)
        except JournalError as exc:
            raise self._halted_by(exc, cmds) from exc

    def _sync_journal(self, cmds: np.ndarray) -> None:
        """Make ``cmds`` (appended with ``sync=False``) durable; halt and raise ``EngineHaltedError`` on failure."""
        try:
            self.log.sync()
        except JournalError as exc:
            raise self._halted_by(exc, cmds) from exc

    def _halted_by(self, exc: JournalError, cmds: np.ndarray) -> EngineHaltedError:
        self._halt(exc)
        return EngineHaltedError(
            f"engine at {self.path} halted: the journal could not make batch seq {int(cmds['seq'][0])}.. durable "
            f"({exc}); the batch was not acknowledged; reopen with Exchange.open to recover"
        )

    def _halt(self, exc: BaseException) -> None:
        if self._halted is None:
            self._halted = exc
            log.error("engine at %s halted: %s", self.path, exc)

    def applied(self, cmds: np.ndarray, commands: int | None = None) -> None:
        """Note a batch just applied; start a periodic snapshot when ``snapshot_every`` is reached.

        ``commands``: the commands applied since the last call, where that is
        more than ``cmds`` (the last batch of a list, ``process_many``).

        Called from the thread that runs the matching (between batches), the
        only moment the books may be copied.  In a pipeline the sequencer runs
        ahead of matching, so the snapshot's position is taken from here.
        """
        if len(cmds) == 0:
            return
        self._applied_seq = int(cmds["seq"][-1])
        self._applied_ts = int(cmds["ts"][-1])
        self._since_snapshot += len(cmds) if commands is None else commands
        if self.snapshot_every and self._since_snapshot >= self.snapshot_every:
            if self._snap_future is not None and not self._snap_future.done():
                return  # the previous one is still being written; try after the next batch
            self._since_snapshot = 0
            seq, arrays, meta = self._capture()
            self._snap_future = self._snap_pool.submit(self._write_snapshot, seq, arrays, meta, None)

    # -- snapshots -----------------------------------------------------------
    def _capture(self) -> tuple[int, dict, dict]:
        seq = self._applied_seq
        arrays, meta = capture(self.shards, self._listing, seq + 1, self._applied_ts)
        return seq, arrays, meta

    def _write_snapshot(self, seq: int, arrays: dict, meta: dict, state_hash: str | None) -> Path:
        try:
            if state_hash is None:
                state_hash = detached_hash(self.shards, arrays, self._listing)
            path = self.snapshots.write(arrays, seq=seq, state_hash=state_hash, meta=meta)
            # Keep the journal back to the oldest kept snapshot, so that
            # recovery can still fall back past a damaged newest one.
            kept = self.snapshots.list()
            if kept and self._halted is None:
                self.log.truncate_before(kept[-1][0] + 1)
            self.snapshot_error = None
            return path
        except (JournalError, OSError) as exc:
            self.snapshot_error = exc
            log.warning("snapshot at seq %d failed (the journal still holds everything): %s", seq, exc)
            raise

    def snapshot(self) -> Path:
        """Write a snapshot now (synchronously) and return its path.

        Waits for a periodic snapshot in flight.  Raises ``SnapshotError`` if
        it cannot be written (the journal still holds every command, so
        nothing is lost).  Runtime: O(state bytes + live orders).
        """
        if self._pipeline_open:
            raise RuntimeError("a pipeline is open on this engine: close it before an on-demand snapshot "
                               "(periodic snapshots still run from its matching stage)")
        if self._halted is not None:
            # the books may hold the batch whose fsync failed (process matches beside the fsync)
            raise EngineHaltedError(f"engine at {self.path} halted ({self._halted}): its books may hold a batch "
                                    "that is not durable, so no snapshot is taken; reopen with Exchange.open")
        with self._mutex:
            self._wait_snapshot()
            seq, arrays, meta = self._capture()
            self._since_snapshot = 0
            return self._write_snapshot(seq, arrays, meta, self.state_hash())

    def _wait_snapshot(self) -> None:
        fut, self._snap_future = self._snap_future, None
        if fut is not None:
            try:
                fut.result()
            except (JournalError, OSError):
                pass  # logged and kept in snapshot_error; a later snapshot retries

    # -- pipeline ------------------------------------------------------------
    def pipeline(self, **options: Any):
        """A staged ``Pipeline`` on this engine (journal, risk, matching, settlement, publication).

        While it is open, ``process`` is refused: batches go through
        ``pipeline.submit``.  See ``shardex.engine.pipeline.Pipeline`` for the options.
        """
        from shardex.engine.pipeline import Pipeline

        return Pipeline(self, **options)

    # -- close ---------------------------------------------------------------
    def close(self) -> None:
        """Finish snapshots in flight, snapshot if configured, close the journal and the shard threads; idempotent."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        try:
            self._wait_snapshot()
            if self.snapshot_on_close and self._halted is None and self._since_snapshot > 0:
                try:
                    self.snapshot()
                except (JournalError, OSError) as exc:
                    log.warning("snapshot at close failed (recovery will replay the journal): %s", exc)
        finally:
            self._snap_pool.shutdown(wait=True)
            self._beside.close()
            self.log.close()
            super().close()


# ---------------------------------------------------------------------------
# opening and recovery
# ---------------------------------------------------------------------------
def _prepare(path: Path, create: bool) -> None:
    """Check the engine directory so that problems surface at open, named and explained."""
    if path.exists() and not path.is_dir():
        raise EngineOpenError(f"engine path {path} exists and is not a directory")
    if not path.exists():
        if not create:
            raise EngineOpenError(f"engine directory {path} does not exist (pass create=True to make it)")
        if not path.parent.is_dir():
            raise EngineOpenError(f"cannot create engine directory {path}: its parent {path.parent} does not exist")
        try:
            path.mkdir()
        except OSError as exc:
            raise EngineOpenError(f"cannot create engine directory {path}: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise EngineOpenError(f"engine directory {path} is not writable by this process")


def _reconcile(stored: list[Instrument], given: list[Instrument], path: Path) -> tuple[list[Instrument], list[Instrument]]:
    """The stored listing, and the given instruments that are new; refuse a contradiction."""
    by_id = {i.id: i for i in stored}
    by_symbol = {i.symbol: i for i in stored}
    new = []
    for ins in given:
        old = by_id.get(ins.id)
        if old is not None:
            if old != ins:
                raise SnapshotLayoutError(
                    f"engine at {path} lists instrument {ins.id} as {old!r}; open was given {ins!r}: "
                    "instrument specs cannot change under a journal"
                )
        elif ins.symbol in by_symbol:
            raise SnapshotLayoutError(f"engine at {path} already lists symbol {ins.symbol} with id {by_symbol[ins.symbol].id}")
        else:
            new.append(ins)
    return stored, new


def open_exchange(path: str | os.PathLike[str], instruments: Iterable[Instrument] = (), *, shards: int = 1,
                  fsync_policy: FsyncPolicy | str = "batch", snapshot_every: int = 1_000_000, keep_snapshots: int = 3,
                  snapshot_on_close: bool = True, clock: Callable[[], int] = time.time_ns, order_capacity: int = 1024,
                  pretouch: bool = False, create: bool = True, journal_options: dict[str, Any] | None = None,
                  cls: type[DurableExchange] = DurableExchange) -> DurableExchange:
    """Open (or create) the durable engine at ``path`` and recover its state; see ``Exchange.open``."""
    if snapshot_every < 0:
        raise ValueError(f"snapshot_every must be >= 0 (0: only on demand), got {snapshot_every}")
    path = Path(path)
    _prepare(path, create)
    journal = Journal(path / JOURNAL_DIRNAME, fsync_policy=fsync_policy, **(journal_options or {}))
    try:
        snaps = SnapshotStore(path / SNAPSHOT_DIRNAME, keep=keep_snapshots)
        ex = cls.__new__(cls)
        Exchange.__init__(ex, (), shards=shards, clock=clock, order_capacity=order_capacity, pretouch=pretouch)
        ex._init_durable(path, journal, snaps, snapshot_every, snapshot_on_close)
        try:
            _recover_into(ex, list(instruments), path)
        except BaseException:
            ex._snap_pool.shutdown(wait=True)
            Exchange.close(ex)
            raise
    except BaseException:
        journal.close()
        raise
    return ex


def _recover_into(ex: DurableExchange, given: list[Instrument], path: Path) -> None:
    journal = ex.log
    rec = recover(journal, ex.snapshots)
    snap = rec.snapshot
    if snap is not None:
        listing, new = _reconcile(snapshot_listing(snap.meta), given, path)
    else:
        if journal.next_seq > journal.first_seq and not given:
            raise EngineOpenError(
                f"engine at {path}: the journal holds commands {journal.first_seq}..{journal.next_seq - 1} but no valid "
                "snapshot names their instruments; pass the instruments to Exchange.open"
            )
        listing, new = sorted(given, key=lambda i: i.id), []
    for ins in listing:
        Exchange.add_instrument(ex, ins)
        ex._listing.append(ins)
    if snap is not None:
        ex.redealt = restore(ex.shards, snap.arrays, snap.meta)
        seqr = snap.meta["sequencer"]
        ex.sequencer.next_seq, ex.sequencer.last_ts = int(seqr["next_seq"]), int(seqr["last_ts"])
        got = ex.state_hash()
        if got != snap.state_hash:
            raise SnapshotLayoutError(
                f"snapshot {snap.path}: restored state hash {got[:16]}... differs from the recorded {snap.state_hash[:16]}..."
                + (" after re-dealing to another shard count" if ex.redealt else "")
            )
    ex.recovered_commands = _replay(ex, rec)
    ex._applied_seq, ex._applied_ts = ex.sequencer.next_seq - 1, ex.sequencer.last_ts
    if ex.sequencer.next_seq != journal.next_seq:
        raise SnapshotLayoutError(f"engine at {path}: replay ended at seq {ex.sequencer.next_seq}, journal at {journal.next_seq}")
    ex._ready = True
    ex._oids_current = False  # the books came from a snapshot and the journal, not from submit()
    if snap is None or new:
        # The listing lives only in snapshots: a fresh engine (or a new
        # instrument) gets one now, so a restart knows its books.
        for ins in new:
            Exchange.add_instrument(ex, ins)
            ex._listing.append(ins)
        ex.snapshot()
    log.info("engine at %s open: %d shards, %d instruments, %d commands replayed%s", path, len(ex.shards),
             len(ex._listing), ex.recovered_commands, " (re-dealt)" if ex.redealt else "")


def _replay(ex: DurableExchange, batches: Iterable[np.ndarray]) -> int:
    """Apply the journal tail in large chunks, checking the seq chain; return commands applied."""
    total = 0
    pending: list[np.ndarray] = []
    size = 0

    def flush() -> None:
        chunk = pending[0] if len(pending) == 1 else np.concatenate(pending)
        ex.sequencer.observe(chunk)
        ex.apply(chunk, events=False)
        pending.clear()

    for batch in batches:
        pending.append(batch)
        size += len(batch)
        total += len(batch)
        if size >= REPLAY_CHUNK:
            flush()
            size = 0
    if pending:
        flush()
    return total
