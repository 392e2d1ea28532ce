"""A durable ``RiskExchange``: every batch is in the write-ahead journal before it is applied or acknowledged.

>>> import tempfile
>>> from shardex.engine.commands import batch, new_order
>>> from shardex.instruments import Instrument, InstrumentKind
>>> from shardex.risk import MarginTiers, deposit
>>> from shardex.risk.durable import open_risk
>>> perp = Instrument(0, "BTC-PERP", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.PERPETUAL)
>>> path = tempfile.mkdtemp()
>>> kw = dict(tiers=MarginTiers.flat(1000, 500), marks=[600_000])
>>> with open_risk(path, [perp], 3, **kw) as rx:
...     _ = rx.process(batch([deposit(1, 0, 10**10), deposit(2, 0, 10**10)]))
...     _ = rx.process(batch([new_order(0, "sell", 5, 600_000, order_id=1, account=1),
...                           new_order(0, "buy", 5, 600_000, order_id=1, account=2)]))
...     live = rx.state_hash()
>>> with open_risk(path, [perp], 3, **kw) as again:  # the snapshot taken on close, and no tail
...     (again.recovered_commands, again.state_hash() == live)
(0, True)

Recovery loads the newest valid snapshot under ``path/snapshots`` (the
books, the ledger, the reservations and every other piece of risk state; its
recorded state hash is checked after loading) and replays the journal after
it through ``apply``, the replay path every batch takes: time comes only
from the journaled timestamps, so balances, positions, reservations, premium
samples and the funding schedule come back exactly.  Snapshots are written
every ``snapshot_every`` commands, on ``snapshot()`` and on close; the
journal is kept back to the oldest kept snapshot.

What the journal does not hold is configuration: instruments, accounts,
currencies, fees, tiers, option and portfolio settings, and the accounts'
margin modes at creation (``margin_modes``).  ``open_risk`` records a
fingerprint of them beside the journal and refuses to replay a journal
under a different configuration (``RiskConfigError``), since the same
commands would then give another state.  Later switches of a margin mode
(``set_margin_mode``) are MARGIN_MODE commands: journaled, and replayed at
the same point.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shardex.engine.snapshotting import capture, instrument_to_json, restore
from shardex.errors import ShardexError
from shardex.instruments import Instrument
from shardex.journal import FsyncPolicy, Journal, JournalFailedError, SnapshotError, SnapshotStore, SyncBeside
from shardex.risk.engine import RiskExchange

__all__ = ["DurableRiskExchange", "RiskConfigError", "open_risk"]

#: Keyword arguments of ``RiskExchange`` that cannot change a replayed state.
_NOT_STATE = frozenset({"clock", "threads", "settle_mode", "shards"})
_CONFIG = "risk-config.json"
#: Arrays of the ledger and of the risk layer a snapshot holds (the books are ``capture``'s).
_LEDGER_ARRAYS = ("balances", "positions", "margin", "fee_pool", "insurance", "net_flow", "marks")
_RISK_ARRAYS = ("holds", "open_lots", "inst_state", "pm_mode", "premium_sum", "premium_n")
_ORDER_ARRAYS = ("tab", "leaves", "used")

#: Under the ``batch`` fsync policy, ``process`` applies a batch of at least this many commands while
#: its fsync runs on a thread of its own.  Risk, matching and settlement cost ~10x what matching alone
#: does per command, so the thread's wake-up pays from smaller batches than for ``Exchange.open``
#: (``shardex.engine.durable.JOURNAL_ALONGSIDE_FROM``): 1.23x at 128 commands, 1.08x at 64
#: (bench/durable_process.py --engine risk).
JOURNAL_ALONGSIDE_FROM = 128


class RiskConfigError(ShardexError, ValueError):
    """The journal at this path was written under another risk configuration."""


class DurableRiskExchange(RiskExchange):
    """``RiskExchange`` whose ``process`` journals each batch (fsync per the policy) before applying it.

    Build one with ``open_risk``.  ``recovered_commands`` is how many
    journaled commands the last open replayed.
    """

    log: Journal
    snapshots: SnapshotStore
    _beside: SyncBeside
    recovered_commands: int
    snapshot_every: int = 0
    snapshot_on_close: bool = True
    _fingerprint: str = ""
    _since_snapshot: int = 0

    def process(self, cmds: np.ndarray) -> np.ndarray:
        """Sequence, journal (durable under the ``batch`` policy before this returns), then apply a batch.

        Under the ``batch`` policy a batch of ``JOURNAL_ALONGSIDE_FROM``
        commands or more is applied while its fsync runs on a thread of its
        own, and its events come back once both are done
        (``shardex.journal.SyncBeside``).  If that fsync fails,
        ``JournalFailedError`` is raised, nothing of the batch is handed out,
        and the state, which may hold the batch, takes no more snapshots.
        """
        cmds = self.exchange._as_commands(cmds)
        self.exchange.sequencer.stamp(cmds)
        if self.log.policy.mode == "batch" and len(cmds) >= JOURNAL_ALONGSIDE_FROM:
            self.log.append(cmds, sync=False)
            events = self._beside.run(self.log.sync, self.apply, cmds)
        else:
            self.log.append(cmds)
            events = self.apply(cmds)
        self._since_snapshot += len(cmds)
        if self.snapshot_every and self._since_snapshot >= self.snapshot_every:
            self.snapshot()
        return events

    def snapshot(self) -> Path:
        """Write a snapshot of the whole state now; return its path.

        Synchronous: the state is copied and written (temporary file, fsync,
        rename) before this returns.  Then the journal is cut back to the
        oldest snapshot kept, so recovery can still fall back past a damaged
        newest one.  Raises ``SnapshotError`` if it cannot be written (the
        journal still holds everything).  O(state bytes).
        """
        if self.log.failed:
            raise JournalFailedError(f"{self.log.path}: the journal failed, and the state may hold a batch that is "
                                     "not durable: no snapshot is taken; reopen with open_risk to recover")
        seq = self.exchange.sequencer.next_seq - 1
        arrays, meta = _capture(self)
        path = self.snapshots.write(arrays, seq=seq, state_hash=self.state_hash(), meta=meta)
        self._since_snapshot = 0
        kept = self.snapshots.list()
        if kept:
            self.log.truncate_before(kept[-1][0] + 1)
        return path

    def close(self) -> None:
        """Snapshot if configured and anything is new, close the journal (fsyncing it), then the engine; idempotent."""
        log = getattr(self, "log", None)
        if log is not None and not getattr(self, "_closed", False):
            self._closed = True
            try:
                usable = not getattr(log, "_closed", False) and not log.failed
                if self.snapshot_on_close and self._since_snapshot > 0 and usable:
                    self.snapshot()
            finally:
                log.close()
                self._beside.close()
        super().close()


def _capture(rx: DurableRiskExchange) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, meta)`` of the whole state, for ``SnapshotStore.write`` (between batches only)."""
    seqr = rx.exchange.sequencer
    arrays, meta = capture(rx.exchange.shards, rx.exchange.instruments, seqr.next_seq, seqr.last_ts)
    for name in _LEDGER_ARRAYS:
        arrays[f"ledger.{name}"] = getattr(rx.ledger, name).copy()
    for name in _RISK_ARRAYS:
        arrays[f"risk.{name}"] = getattr(rx, name).copy()
    for name in _ORDER_ARRAYS:
        arrays[f"orders.{name}"] = getattr(rx.orders, name).copy()
    meta["risk"] = {
        "fingerprint": rx._fingerprint,
        "funding_epoch": rx._funding_epoch,
        "next_liq_oid": int(rx._next_liq_oid),
        "now": int(rx._now),
    }
    return arrays, meta


def _restore(rx: DurableRiskExchange, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Load a snapshot into a fresh ``rx`` built with the same configuration."""
    risk = meta.get("risk")
    if not risk or risk.get("fingerprint") != rx._fingerprint:
        raise RiskConfigError("the snapshot was taken under another risk configuration")
    restore(rx.exchange.shards, arrays, meta)
    seqr = meta["sequencer"]
    rx.exchange.sequencer.next_seq, rx.exchange.sequencer.last_ts = int(seqr["next_seq"]), int(seqr["last_ts"])
    for name in _LEDGER_ARRAYS:
        getattr(rx.ledger, name)[...] = arrays[f"ledger.{name}"]  # in place: the ledger's views stay valid
    for name in _RISK_ARRAYS:
        getattr(rx, name)[...] = arrays[f"risk.{name}"]
    for name in _ORDER_ARRAYS:
        setattr(rx.orders, name, np.array(arrays[f"orders.{name}"]))
    rx.orders.recount()
    rx._funding_epoch = risk["funding_epoch"]
    rx._next_liq_oid = int(risk["next_liq_oid"])
    rx._now = int(risk["now"])


def _fingerprint(instruments: list[Instrument], n_accounts: int, options: Mapping[str, Any],
                 margin_modes: Mapping[int, str]) -> str:
    """A digest of everything besides the journal that decides the state a replay reaches."""
    doc = {
        "instruments": [instrument_to_json(x) for x in sorted(instruments, key=lambda x: x.id)],
        "n_accounts": int(n_accounts),
        # dataclass and tuple reprs are stable; callables and thread counts are left out (_NOT_STATE)
        "options": {k: repr(v) for k, v in sorted(options.items()) if k not in _NOT_STATE},
        "margin_modes": {str(a): m for a, m in sorted(margin_modes.items())},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def open_risk(path: str | os.PathLike[str], instruments: Iterable[Instrument], n_accounts: int, *,
              fsync_policy: FsyncPolicy | str = "batch", margin_modes: Mapping[int, str] | None = None,
              snapshot_every: int = 1_000_000, snapshot_on_close: bool = True, keep_snapshots: int = 3,
              **options: Any) -> DurableRiskExchange:
    """Open (or create) a durable risk exchange at ``path``: the journal in ``path/journal``.

    ``instruments``, ``n_accounts`` and ``options`` (``RiskExchange``'s
    keyword arguments) must be the same at every open of one path, and so
    must ``margin_modes`` (account -> ``"portfolio"`` or ``"standard"``,
    applied before anything is replayed); a different configuration raises
    ``RiskConfigError`` rather than replaying into another state.
    ``fsync_policy``: ``"batch"`` (default: nothing is acknowledged before
    it is on disk), ``"interval:MS"`` or ``"off"`` (see docs/journal.md).
    ``snapshot_every``: commands between automatic snapshots (0: only
    ``snapshot()`` and close); ``keep_snapshots``: how many are kept.
    """
    if snapshot_every < 0:
        raise ValueError(f"snapshot_every must be >= 0 (0: only on demand and on close), got {snapshot_every}")
    instruments = list(instruments)
    modes = dict(margin_modes or {})
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    want = _fingerprint(instruments, n_accounts, options, modes)
    cfg = root / _CONFIG
    if cfg.exists():
        got = json.loads(cfg.read_text()).get("fingerprint")
        if got != want:
            raise RiskConfigError(f"{root}: the journal was written under another configuration (instruments, "
                                  f"accounts, currencies, fees, tiers, option/portfolio settings or margin modes); "
                                  f"open it with the arguments it was created with")
    else:
        tmp = cfg.with_suffix(".tmp")
        tmp.write_text(json.dumps({"format": 1, "fingerprint": want}))
        os.replace(tmp, cfg)
    rx = DurableRiskExchange(instruments, n_accounts, **options)
    rx._fingerprint = want
    rx.snapshot_every, rx.snapshot_on_close = int(snapshot_every), bool(snapshot_on_close)
    for a, mode in sorted(modes.items()):
        rx._configure_margin_mode(a, mode)
    rx.snapshots = SnapshotStore(root / "snapshots", keep=keep_snapshots)
    rx.log = Journal(root / "journal", fsync_policy=fsync_policy)
    rx._beside = SyncBeside()
    try:
        snap = rx.snapshots.latest()
        start = None
        if snap is not None:
            _restore(rx, snap.arrays, snap.meta)
            if rx.state_hash() != snap.state_hash:
                raise SnapshotError(f"snapshot {snap.path}: the restored state hash differs from the recorded one")
            start = snap.seq + 1
        elif rx.log.first_seq > 1:
            raise SnapshotError(f"{root}: the journal starts at seq {rx.log.first_seq} and no valid snapshot covers "
                                f"what came before")
        n = 0
        for b in rx.log.read(start):
            rx.exchange.sequencer.observe(b)
            rx.apply(b)
            n += len(b)
        rx.recovered_commands = n
    except BaseException:
        rx.snapshot_on_close = False
        rx.close()
        raise
    return rx
