"""hftbacktest captures: ``<receive_ts> <raw websocket JSON>`` per line, gzip.

The collector stamps ns in the 2024/25 files and µs in the 2023 ``.dat.gz``
files (SOURCES.md §2); the unit is read from the stamp's magnitude. The first
REST depth snapshot is a bare ``{"lastUpdateId": ...}`` line with no symbol:
it belongs to the capture's one symbol.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from shardex.errors import MalformedInputError
from shardex.feeds.readers._types import RawMessage

__all__ = ["HftCapture", "read_hftbacktest", "looks_like_hftbacktest"]


def _decompress(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, zlib.error, OSError) as exc:
        raise MalformedInputError(f"{path}: cannot decompress: {exc}") from None


def looks_like_hftbacktest(head: bytes) -> bool:
    """True when the first line is ``<integer stamp> {json}``."""
    stamp, _, rest = head.partition(b" ")
    return stamp.isdigit() and len(stamp) >= 13 and rest.lstrip().startswith(b"{")


@dataclass
class HftCapture:
    """One decompressed hftbacktest capture.

    ``raw`` holds the whole text (the fast path hands it to the kernel as one
    buffer); ``ts_mult`` turns its stamps into ns; ``symbol`` is the lower-case
    stream symbol (``"btcusdt"``), ``venue`` ``binance-spot``,
    ``binance-futures`` or ``hyperliquid``.
    """

    path: Path
    raw: bytes
    venue: str
    symbol: str
    ts_mult: int

    def messages(self) -> Iterator[RawMessage]:
        """Yield every line as a :class:`RawMessage` (bad lines with ``kind="malformed"``). O(bytes)."""
        src = str(self.path)
        for no, line in enumerate(self.raw.split(b"\n"), 1):
            if not line.strip():
                continue
            stamp, sep, body = line.partition(b" ")
            if not sep or not stamp.isdigit():
                yield RawMessage(self.venue, line, -1, src, no, kind="malformed", key=self.symbol)
                continue
            kind = "rest" if body.lstrip().startswith(b'{"lastUpdateId"') else "ws"
            yield RawMessage(self.venue, body, int(stamp) * self.ts_mult, src, no, kind=kind, key=self.symbol)


def read_hftbacktest(path: str | Path) -> HftCapture:
    """Open an hftbacktest capture (gzip or plain); raises MalformedInputError naming the file."""
    p = Path(path)
    raw = _decompress(p)
    first = raw[: raw.find(b"\n") if b"\n" in raw[:1 << 16] else 1 << 16]
    stamp = first.partition(b" ")[0]
    if not stamp.isdigit():
        raise MalformedInputError(f"{p}:1: not an hftbacktest line (no receive stamp)")
    # ns stamps have 19 digits in this era, µs 16
    ts_mult = 1 if len(stamp) >= 18 else 1000
    if b'"channel"' in first and b'"l2Book"' in raw[: 1 << 20] or b'"channel":"trades"' in first:
        return HftCapture(p, raw, "hyperliquid", "", ts_mult)
    i = raw.find(b'"stream":"')
    symbol = ""
    if i >= 0:
        j = raw.find(b"@", i)
        symbol = raw[i + 10 : j].decode("ascii", "replace").lower()
    d = raw.find(b"depthUpdate")
    if d >= 0:
        line_end = raw.find(b"\n", d)
        futures = b'"pu":' in raw[d : line_end if line_end > 0 else len(raw)]
    else:
        futures = p.parent.name in ("usdm", "cm")
    return HftCapture(p, raw, "binance-futures" if futures else "binance-spot", symbol, ts_mult)
