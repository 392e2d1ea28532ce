"""Deribit ``book.<instrument>.raw``: ``prev_change_id`` must equal the last ``change_id``.

Rule (Deribit API v2, subscription ``book.{instrument_name}.{interval}``):
the first notification is a snapshot; each change carries ``prev_change_id``,
which must equal the ``change_id`` of the previous notification, else the
book is out of sync and must be re-fetched. Entries are
``["new" | "change" | "delete", price, amount]``; prices and amounts are JSON
numbers, read through their shortest repr into exact decimals.
"""

from __future__ import annotations


from shardex.feeds._decimal import Grid
from shardex.feeds.builders._pybook import PyBookBuilder, parse_or_report

__all__ = ["DeribitBook"]


def _s(x: float | int | str) -> str:
    return repr(x) if isinstance(x, float) else str(x)


class DeribitBook(PyBookBuilder):
    """One Deribit raw book (key ``deribit:<instrument>``)."""

    def __init__(self, key: str, grid: Grid | None = None) -> None:
        super().__init__(key, grid)
        self._change: int | None = None
        self.counts.update(dropped=0)

    def on_doc(self, doc: dict, recv_ns: int, where: str) -> None:
        """Apply one decoded message."""
        params = doc.get("params") or {}
        ch = params.get("channel", "")
        if not ch.startswith("book.") or "data" not in params:
            self.counts["other"] += 1
            return
        d = params["data"]
        self.counts["book_messages"] += 1
        bids = [(e[0], _s(e[1]), _s(e[2])) for e in d.get("bids", [])]
        asks = [(e[0], _s(e[1]), _s(e[2])) for e in d.get("asks", [])]
        if d.get("type") == "snapshot":
            if not self._load_levels([(p, a) for _, p, a in bids], [(p, a) for _, p, a in asks], where):
                return
        else:
            if self._dropped_unsynced():
                return
            prev = d.get("prev_change_id")
            if prev != self._change:
                self._gap(where, f"prev_change_id {prev} != last change_id {self._change}")
                return

            def conv_changes(levels: list[tuple[str, str, str]]) -> list[tuple[int, int, str, str]]:
                out = self._convert([(p, "0" if act == "delete" else a) for act, p, a in levels], where)
                return out

            conv = parse_or_report(self, where, lambda: (conv_changes(bids), conv_changes(asks)))
            if conv is None:
                return
            self._apply(conv[0], conv[1])
        self._change = d.get("change_id")
        self._after_message(where)
