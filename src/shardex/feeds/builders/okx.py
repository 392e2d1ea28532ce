"""OKX v5 ``books`` channel: CRC32 checksum of the top 25 levels, ``seqId``/``prevSeqId``.

Rule (OKX API v5, "Order book channel" and "Checksum"): after each message,
build ``bidPx:bidSz:askPx:askSz:...`` over the top 25 levels of each side,
interleaved (a shorter side simply stops contributing), with the price and
size strings exactly as received; its CRC32 as a signed 32-bit integer must
equal ``checksum``. Where ``seqId``/``prevSeqId`` are present, an update's
``prevSeqId`` must equal the previous message's ``seqId``. Either failure is a
gap: the book is discarded until the next snapshot (a resubscribe, live).
OKX announced that from 23 June 2026 the field stays in the messages but is
always 0 (continuity then rests on ``seqId``/``prevSeqId``): a 0 is not checked.
"""

from __future__ import annotations

import zlib


from shardex.feeds._decimal import Grid
from shardex.feeds.builders._pybook import PyBookBuilder

__all__ = ["OkxBook", "okx_checksum"]

_BOOK_CHANNELS = ("books", "books5", "books50-l2-tbt", "books-l2-tbt", "bbo-tbt")


def okx_checksum(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """Signed CRC32 of the interleaved top-25 string (bids and asks best first, strings as received)."""
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    v = zlib.crc32(":".join(parts).encode())
    return v - (1 << 32) if v >= 1 << 31 else v


class OkxBook(PyBookBuilder):
    """One OKX ``books`` book (key ``okx:<instId>``); see the module docstring for the rule."""

    def __init__(self, key: str, grid: Grid | None = None) -> None:
        super().__init__(key, grid)
        self._seq: int | None = None
        self.counts.update(dropped=0)

    def on_doc(self, doc: dict, recv_ns: int, where: str) -> None:
        """Apply one decoded message."""
        arg = doc.get("arg") or {}
        if "event" in doc or arg.get("channel") not in _BOOK_CHANNELS or "data" not in doc:
            self.counts["other"] += 1
            return
        self.counts["book_messages"] += 1
        for d in doc["data"]:
            self._one(doc.get("action", "snapshot"), d, where)
        self._after_message(where)

    def _one(self, action: str, d: dict, where: str) -> None:
        raw_b = [(x[0], x[1]) for x in d.get("bids", [])]
        raw_a = [(x[0], x[1]) for x in d.get("asks", [])]
        seq, prev = d.get("seqId"), d.get("prevSeqId")
        if action == "snapshot":
            if not self._load_levels(raw_b, raw_a, where):
                return
        else:
            if self._dropped_unsynced():
                return
            if prev is not None and self._seq is not None and prev != self._seq:
                self._gap(where, f"prevSeqId {prev} != last seqId {self._seq}")
                return
            if not self._apply_levels(raw_b, raw_a, where):
                return
        self._seq = seq
        if d.get("checksum") not in (None, 0, "0"):  # OKX sends 0 once checksums are retired (June 2026)
            b, a = self.top_strings(25)
            want = int(d["checksum"])
            got = okx_checksum(b, a)
            if got == want:
                self.counts["checksum_ok"] += 1
            else:
                self.counts["checksum_mismatch"] += 1
                self._gap(where, f"checksum {got} != {want}")
