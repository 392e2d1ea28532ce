"""A Python L2 book in int ticks and lots, for the venues whose streams are small.

OKX, Deribit, Bybit and snapshot-only feeds (tardis, Hyperliquid) carry a few
thousand messages per capture here, so their builders keep each side in a
dict ``ticks -> (lots, price string, size string)``; the strings are kept
because OKX's checksum is defined over the strings exactly as received.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from typing import Iterable

import msgspec

from shardex.errors import MalformedInputError, OffGridError
from shardex.feeds._decimal import Grid
from shardex.feeds.builders._base import MAX_PROBLEMS, STAT_KEYS, Problem, sha_of

__all__ = ["PyBookBuilder", "grid_from_strings"]


def grid_from_strings(values: Iterable[tuple[str, str]], decimals: int = 18, source: str = "snapshot decimals") -> Grid:
    """Grid whose tick and lot are the finest decimals shown in (price, size) strings.

    Never coarser than the venue's real grid, so it cannot invent off-grid
    levels; with instrument reference data the real tick and lot are used.
    """
    pd = qd = 0
    for px, sz in values:
        pd = max(pd, len(px.partition(".")[2]) if "e" not in px else decimals)
        qd = max(qd, len(sz.partition(".")[2]) if "e" not in sz else decimals)
    return Grid(10 ** (decimals - min(pd, decimals)), 10 ** (decimals - min(qd, decimals)), decimals, source)


def _pow10_gcd(a: int, b: int) -> int:
    """The largest power of ten dividing both a and b (a step in 10**-18 units)."""
    p = 1
    while a % (p * 10) == 0 and b % (p * 10) == 0:
        p *= 10
    return p


class PyBookBuilder(ABC):
    """Shared machinery of the Python builders: the two sides, counters, problems, views.

    Subclasses implement :meth:`on_doc` (one decoded message) with their
    venue's continuity rule and call :meth:`_load`, :meth:`_apply`,
    :meth:`_gap` and :meth:`_after_message`; raw bytes arrive through
    :meth:`on_message`, which decodes them once. A level update is O(1); reading
    the top n is O(levels) (``heapq``), fine for books of a few hundred levels.
    """

    def __init__(self, key: str, grid: Grid | None = None) -> None:
        self.key = key
        #: the instrument's grid (reference data): levels off it are reported, kept
        self.ref_grid = grid
        #: the precision the book holds (finest decimals seen in the first snapshot, and the instrument's)
        self.grid: Grid | None = None
        self._grid_given = False
        self.bids: dict[int, tuple[int, str, str]] = {}
        self.asks: dict[int, tuple[int, str, str]] = {}
        self._synced = False
        self._after_gap = False
        self._crossed_now = False
        self.counts = {k: 0 for k in STAT_KEYS}
        self.counts.update(other=0, unrepresentable=0, best_reads=0)
        self._problems: list[Problem] = []
        self.problem_count = 0

    # ---- input -----------------------------------------------------------------------
    def on_message(self, data: bytes, recv_ns: int, where: str = "") -> None:
        """Decode one raw message and apply it (a message that is not JSON is counted and reported)."""
        try:
            doc = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            self.counts["malformed"] += 1
            self._report(where, "malformed", str(exc))
            return
        self.on_doc(doc, recv_ns, where)

    def on_snapshot(self, data: bytes, recv_ns: int, where: str = "") -> None:
        """These venues send snapshots in the message stream itself: same as :meth:`on_message`."""
        self.on_message(data, recv_ns, where)

    @abstractmethod
    def on_doc(self, doc: dict, recv_ns: int, where: str) -> None:
        """Apply one decoded message (each venue's rule)."""

    # ---- views -----------------------------------------------------------------------
    @property
    def synced(self) -> bool:
        """True when the book is exact and may be served."""
        return self._synced

    @property
    def problems(self) -> list[Problem]:
        """The first problems reported, oldest first."""
        return self._problems

    def stats(self) -> dict[str, int]:
        """Counters under the shared keys plus builder extras."""
        return dict(self.counts)

    def _sorted(self, n: int | None) -> tuple[list[int], list[int]]:
        if n is None:
            return sorted(self.bids, reverse=True), sorted(self.asks)
        return heapq.nlargest(n, self.bids), heapq.nsmallest(n, self.asks)

    def top(self, n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(bids, asks), best first, canonical decimal strings; empty when unsynced. O(levels)."""
        if not self._synced or self.grid is None:
            return [], []
        g = self.grid
        b, a = self._sorted(n)
        return ([(g.px_str(t), g.qty_str(self.bids[t][0])) for t in b], [(g.px_str(t), g.qty_str(self.asks[t][0])) for t in a])

    def top_strings(self, n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(bids, asks), best first, with the price and size strings exactly as received."""
        b, a = self._sorted(n)
        return [self.bids[t][1:] for t in b], [self.asks[t][1:] for t in a]

    def best(self) -> tuple[int, int, int, int] | None:
        """(bid ticks, bid lots, ask ticks, ask lots) when synced with both sides, else None."""
        if not self._synced or not self.bids or not self.asks:
            return None
        b, a = max(self.bids), min(self.asks)
        return b, self.bids[b][0], a, self.asks[a][0]

    def top10_sha256(self) -> str | None:
        """sha256 of the canonical top-10 JSON (issue 7), None when unsynced."""
        return sha_of(self)

    def _check(self) -> None:
        """Invariant checker: positive sizes; when synced and not flagged crossed, best bid < best ask."""
        assert all(v[0] > 0 for v in self.bids.values()) and all(v[0] > 0 for v in self.asks.values())
        if self._synced and self.bids and self.asks and not self._crossed_now:
            assert max(self.bids) < min(self.asks)

    # ---- helpers for subclasses -------------------------------------------------------
    def _report(self, where: str, code: str, detail: str = "") -> None:
        self.problem_count += 1
        if len(self._problems) < MAX_PROBLEMS:
            self._problems.append(Problem(where, code, detail))

    def _ensure_grid(self, levels: Iterable[tuple[str, str]]) -> None:
        if self.grid is None:
            g = grid_from_strings(list(levels))
            r = self.ref_grid
            if r is not None:  # hold at least the instrument's own decimals
                rt = r.tick * 10 ** (18 - r.decimals)
                rl = r.lot * 10 ** (18 - r.decimals)
                g = Grid(_pow10_gcd(g.tick, rt), _pow10_gcd(g.lot, rl), 18, f"{g.source} + {r.source}")
            self.grid = g

    def _convert(self, levels: Iterable[tuple[str, str]], where: str = "") -> list[tuple[int, int, str, str]]:
        """(ticks, lots, px, sz) for each level; raises OffGridError when a value is finer than the held precision.

        Levels off the instrument grid are counted (``off_grid``) and reported, and kept.
        """
        g = self.grid
        assert g is not None
        out = [(g.ticks(px), g.lots(sz), px, sz) for px, sz in levels]
        r = self.ref_grid
        if r is not None:
            off = 0
            first = ""
            for px, sz in levels:
                try:
                    r.ticks(px)
                    if sz not in ("0", "0.0"):
                        r.lots(sz)
                except (OffGridError, MalformedInputError):
                    off += 1
                    first = first or f"{px} x {sz}"
            if off:
                self.counts["off_grid"] += off
                self._report(where, "off_grid", f"first level {first} off the instrument grid")
        return out

    def _convert_sides(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]],
                       where: str) -> tuple[list, list] | None:
        """Both sides through ``_convert``; None when a value is bad (then reported, and the book discarded)."""
        return parse_or_report(self, where, lambda: (self._convert(bids, where), self._convert(asks, where)))

    def _load_levels(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]], where: str) -> bool:
        """A snapshot of (price, size) strings: fix the grid if none is held, convert, load; False if a value was bad."""
        self._ensure_grid(bids + asks)
        conv = self._convert_sides(bids, asks, where)
        if conv is None:
            return False
        self._load(conv[0], conv[1], where)
        return True

    def _apply_levels(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]], where: str) -> bool:
        """A delta of (price, size) strings (size 0 removes the level): convert, apply; False if a value was bad."""
        conv = self._convert_sides(bids, asks, where)
        if conv is None:
            return False
        self._apply(conv[0], conv[1])
        return True

    def _dropped_unsynced(self) -> bool:
        """True, and the message counted ``dropped``, while the book waits for a snapshot to sync it."""
        if self._synced:
            return False
        self.counts["dropped"] += 1
        return True

    def _bad_input(self, where: str, exc: Exception) -> None:
        """A value finer than the held precision, or malformed: counted, reported, the book goes unsynced."""
        code = "unrepresentable" if isinstance(exc, OffGridError) else "malformed"
        self.counts[code] += 1
        self._report(where, code, str(exc))
        if self._synced:
            self._discard(where, code)

    def _discard(self, where: str, why: str) -> None:
        self.bids.clear()
        self.asks.clear()
        self._synced = False
        self._after_gap = True
        self._crossed_now = False
        self._report(where, "book_discarded", why)

    def _load(self, bids: list[tuple[int, int, str, str]], asks: list[tuple[int, int, str, str]], where: str) -> None:
        """Replace the book with a snapshot and mark it synced (a resync when it follows a gap)."""
        self.bids = {t: (q, px, sz) for t, q, px, sz in bids if q}
        self.asks = {t: (q, px, sz) for t, q, px, sz in asks if q}
        self.counts["snapshots"] += 1
        if self._after_gap:
            self.counts["resyncs"] += 1
            self._report(where, "resync")
            self._after_gap = False
        self._synced = True

    def _apply(self, bids: list[tuple[int, int, str, str]], asks: list[tuple[int, int, str, str]]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for t, q, px, sz in levels:
                if q:
                    side[t] = (q, px, sz)
                else:
                    side.pop(t, None)
        self.counts["applied"] += 1

    def _gap(self, where: str, detail: str) -> None:
        self.counts["gaps"] += 1
        self._report(where, "gap", detail)
        self._discard(where, "gap")

    def _after_message(self, where: str) -> None:
        """The best bid/ask read after every book message, and the crossed check."""
        if not self._synced:
            return
        self.counts["best_reads"] += 1
        crossed = bool(self.bids) and bool(self.asks) and max(self.bids) >= min(self.asks)
        if crossed:
            self.counts["crossed"] += 1
            if not self._crossed_now:
                self._report(where, "crossed")
        self._crossed_now = crossed


def parse_or_report(builder: PyBookBuilder, where: str, fn, *args):
    """Run a conversion; on bad input report it on the builder and return None."""
    try:
        return fn(*args)
    except (OffGridError, MalformedInputError, ValueError, KeyError, TypeError, IndexError) as exc:
        builder._bad_input(where, exc if isinstance(exc, (OffGridError, MalformedInputError)) else MalformedInputError(str(exc)))
        return None

