"""Feeds without sequence numbers: full snapshots (tardis book_snapshot_N, Hyperliquid l2Book) and tardis incremental L2.

A full-snapshot feed replaces the book with each message, so it is synced
from its first message and has no gaps to detect. tardis ``incremental_book_L2``
rows carry no update ids either: a snapshot group loads the book, later rows
apply; a lost row cannot be detected from the file (tardis documents no
sequence for it), which the replay report states as ``gaps: 0``.
"""

from __future__ import annotations


from shardex.feeds._decimal import Grid
from shardex.feeds.builders._pybook import PyBookBuilder

__all__ = ["SnapshotBook", "TardisL2Book"]


def _s(x) -> str:
    return repr(x) if isinstance(x, float) else str(x)


class SnapshotBook(PyBookBuilder):
    """A book rebuilt from every message: tardis ``book_snapshot_N`` rows or Hyperliquid ``l2Book``."""

    def on_doc(self, doc: dict, recv_ns: int, where: str) -> None:
        """Apply one decoded message."""
        if "channel" in doc:  # Hyperliquid
            if doc.get("channel") != "l2Book":
                self.counts["other"] += 1
                return
            levels = doc["data"]["levels"]
            bids = [(_s(x["px"]), _s(x["sz"])) for x in levels[0]]
            asks = [(_s(x["px"]), _s(x["sz"])) for x in levels[1]]
        else:
            bids = [(p, q) for p, q in doc.get("bids", [])]
            asks = [(p, q) for p, q in doc.get("asks", [])]
        self.counts["book_messages"] += 1
        if not self._grid_given:
            self.grid = None  # each snapshot shows its own decimals; keep the finest seen
        if not self._load_levels(bids, asks, where):
            return
        self._after_message(where)


class TardisL2Book(PyBookBuilder):
    """tardis ``incremental_book_L2``: snapshot groups load, other rows apply (no ids to check)."""

    def __init__(self, key: str, grid: Grid | None = None) -> None:
        super().__init__(key, grid)
        self.counts.update(dropped=0)
        self._snap_ts: int | None = None

    def on_doc(self, doc: dict, recv_ns: int, where: str) -> None:
        """Apply one decoded message."""
        self.counts["book_messages"] += 1
        bids = [(p, q) for p, q in doc.get("bids", [])]
        asks = [(p, q) for p, q in doc.get("asks", [])]
        if doc.get("is_snapshot"):
            if not self._grid_given:
                self.grid = None  # each snapshot group shows its own decimals
            if not self._load_levels(bids, asks, where):
                return
        else:
            if self._dropped_unsynced():
                return
            if not self._apply_levels(bids, asks, where):
                return
        self._after_message(where)
