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
>>> with open_risk(path, [perp], 3, **kw) as again:
...     (again.recovered_commands, again.state_hash() == live)
(4, True)

Recovery replays the whole journal through ``apply`` (the replay path every
risk command already takes: time comes only from the journaled timestamps),
so it rebuilds balances, positions, reservations, premium samples, the
funding schedule and the books exactly.  The cost grows with the history:
there are no risk-state snapshots yet (docs/risk.md, "What is missing").

What the journal does not hold is configuration: instruments, accounts,
currencies, fees, tiers, option and portfolio settings, and the accounts'
margin modes.  ``open_risk`` records a fingerprint of them beside the
journal and refuses to replay a journal under a different configuration
(``RiskConfigError``), since the same commands would then give another
state.  Margin modes are therefore given to ``open_risk`` (``margin_modes``)
and cannot be switched on a durable exchange afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shardex.errors import ShardexError
from shardex.instruments import Instrument
from shardex.journal import FsyncPolicy, Journal
from shardex.risk.engine import RiskExchange

__all__ = ["DurableRiskExchange", "RiskConfigError", "open_risk"]

#: Keyword arguments of ``RiskExchange`` that cannot change a replayed state.
_NOT_STATE = frozenset({"clock", "threads", "settle_mode", "shards"})
_CONFIG = "risk-config.json"


class RiskConfigError(ShardexError, ValueError):
    """The journal at this path was written under another risk configuration."""


class DurableRiskExchange(RiskExchange):
    """``RiskExchange`` whose ``process`` journals each batch (fsync per the policy) before applying it.

    Build one with ``open_risk``.  ``recovered_commands`` is how many
    journaled commands the last open replayed.
    """

    log: Journal
    recovered_commands: int

    def process(self, cmds: np.ndarray) -> np.ndarray:
        """Sequence, journal (durable under the ``batch`` policy before this returns), then apply a batch."""
        cmds = self.exchange._as_commands(cmds)
        self.exchange.sequencer.stamp(cmds)
        self.log.append(cmds)
        return self.apply(cmds)

    def set_margin_mode(self, account: int, mode: str) -> None:
        """Refused: a margin mode is configuration the journal does not hold; give it to ``open_risk``."""
        raise RiskConfigError("a durable RiskExchange takes its margin modes from open_risk(margin_modes=...): "
                              "a switch that is not in the journal would make a replay reach another state")

    def close(self) -> None:
        """Close the journal (fsyncing what it holds), then the engine; idempotent."""
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
        super().close()


def _fingerprint(instruments: list[Instrument], n_accounts: int, options: Mapping[str, Any],
                 margin_modes: Mapping[int, str]) -> str:
    """A digest of everything besides the journal that decides the state a replay reaches."""
    from shardex.engine.snapshotting import instrument_to_json

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
              **options: Any) -> DurableRiskExchange:
    """Open (or create) a durable risk exchange at ``path``: the journal in ``path/journal``.

    ``instruments``, ``n_accounts`` and ``options`` (``RiskExchange``'s
    keyword arguments) must be the same at every open of one path, and so
    must ``margin_modes`` (account -> ``"portfolio"`` or ``"standard"``,
    applied before anything is replayed); a different configuration raises
    ``RiskConfigError`` rather than replaying into another state.
    ``fsync_policy``: ``"batch"`` (default: nothing is acknowledged before
    it is on disk), ``"interval:MS"`` or ``"off"`` (see docs/journal.md).
    """
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
    for a, mode in sorted(modes.items()):
        RiskExchange.set_margin_mode(rx, a, mode)
    rx.log = Journal(root / "journal", fsync_policy=fsync_policy)
    try:
        n = 0
        for b in rx.log.read():
            rx.exchange.sequencer.observe(b)
            rx.apply(b)
            n += len(b)
        rx.recovered_commands = n
    except BaseException:
        rx.close()
        raise
    return rx
