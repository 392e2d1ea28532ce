"""Bybit v5 ``orderbook.<depth>.<symbol>``: per connection and topic, ``u`` consecutive, ``seq`` monotone.

Rule (Bybit API v5, WebSocket public "Orderbook"): a ``snapshot`` resets the
book (also sent after a service restart, with ``u == 1``); a ``delta`` applies
absolute sizes, size "0" deleting the level. Within one connection and topic
``u`` grows by exactly 1 per message, and the cross sequence ``seq`` never
goes back. Linear and spot streams share topic names, so books are keyed by
connection as well.
"""

from __future__ import annotations


from shardex.feeds._decimal import Grid
from shardex.feeds.builders._pybook import PyBookBuilder

__all__ = ["BybitBook"]


class BybitBook(PyBookBuilder):
    """One Bybit book (key ``bybit:<connection>:<topic>``)."""

    def __init__(self, key: str, grid: Grid | None = None) -> None:
        super().__init__(key, grid)
        self._u: int | None = None
        self._seq: int | None = None
        self.counts.update(dropped=0)

    def on_doc(self, doc: dict, recv_ns: int, where: str) -> None:
        """Apply one decoded message."""
        if not str(doc.get("topic", "")).startswith("orderbook.") or "data" not in doc:
            self.counts["other"] += 1
            return
        self.counts["book_messages"] += 1
        d = doc["data"]
        typ = doc.get("type")
        u, seq = d.get("u"), d.get("seq")
        raw_b = [(x[0], x[1]) for x in d.get("b", [])]
        raw_a = [(x[0], x[1]) for x in d.get("a", [])]
        if typ == "snapshot":
            if not self._load_levels(raw_b, raw_a, where):
                return
        elif typ == "delta":
            if self._dropped_unsynced():
                return
            if self._u is not None and u != self._u + 1:
                self._gap(where, f"u {u} != last u + 1 = {self._u + 1}")
                return
            if seq is not None and self._seq is not None and seq < self._seq:
                self._gap(where, f"seq {seq} < last seq {self._seq}")
                return
            if not self._apply_levels(raw_b, raw_a, where):
                return
        else:
            self.counts["unknown"] += 1
            self._report(where, "unknown_message", f"type {typ!r}")
            return
        self._u, self._seq = u, seq if seq is not None else self._seq
        self._after_message(where)
