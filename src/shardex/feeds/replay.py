"""Replay captures as one stream into per-book builders, and report every book.

:class:`Replay` routes each :class:`RawMessage` to the builder of its book
(created on first sight), the same way a live handler would. hftbacktest
Binance captures take the fast path: the whole decompressed file goes to the
book's byte-level kernel in one nogil call.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterable

import msgspec

from shardex.errors import MalformedInputError
from shardex.feeds._decimal import Grid
from shardex.feeds.builders._base import MAX_PROBLEMS, Problem
from shardex.feeds.builders.binance import BinanceBook
from shardex.feeds.builders.bybit import BybitBook
from shardex.feeds.builders.deribit import DeribitBook
from shardex.feeds.builders.okx import OkxBook
from shardex.feeds.builders.snapshots import SnapshotBook, TardisL2Book
from shardex.feeds.readers import RawMessage, family, read, read_hftbacktest, reference_for
from shardex.feeds.readers.cryptofeed import load_reference

__all__ = ["Replay", "replay_files", "REPORT_KEYS"]

#: The per-book keys of issue 7, in print order.
REPORT_KEYS = (
    "book_messages",
    "applied",
    "gaps",
    "resyncs",
    "synced",
    "crossed",
    "crosscheck_ok",
    "crosscheck_mismatch",
    "top10_sha256",
)

_STREAM = re.compile(rb'"stream"\s*:\s*"([^"@]+)@')
_decode = msgspec.json.Decoder()


class Replay:
    """Builders for every book met so far, fed one message (or one capture) at a time.

    Parameters
    ----------
    grids:
        Instrument grids keyed ``"<venue>:<SYMBOL>"`` (from reference data);
        books without one derive it from their first snapshot.
    fast:
        Use the whole-file kernel path for hftbacktest Binance captures
        (the per-message path gives the same books; tests compare them).
    """

    def __init__(self, grids: dict[str, Grid] | None = None, fast: bool = True) -> None:
        self.books: dict[str, Any] = {}
        self.grids: dict[str, Grid] = dict(grids or {})
        self.fast = fast
        self.files: list[str] = []
        self.messages = 0
        self.non_book = 0
        self.malformed = 0
        self.problems: list[Problem] = []
        self._conn_category: dict[str, str] = {}

    # ---- feeding ------------------------------------------------------------------------
    def feed_file(self, path: str | Path) -> None:
        """Replay one file after those already fed (a continuation keeps every book)."""
        p = Path(path)
        self.files.append(str(p))
        self.grids.update({k: v for k, v in reference_for(p).items() if k not in self.grids})
        fam = family(p)
        if fam == "hftbacktest" and self.fast:
            cap = read_hftbacktest(p)
            if cap.venue.startswith("binance") and cap.symbol:
                book = self._binance_book(cap.venue, cap.symbol)
                before = book.stats()["foreign"]
                book.feed_capture(cap.raw, str(p), cap.ts_mult)
                self.messages += cap.raw.count(b"\n") + (0 if cap.raw.endswith(b"\n") else 1)
                if book.stats()["foreign"] > before:
                    # more than one symbol in the file: each further symbol takes its own pass
                    for sym in sorted({m.group(1).decode().lower() for m in _STREAM.finditer(cap.raw)} - {cap.symbol}):
                        self._binance_book(cap.venue, sym).feed_capture(cap.raw, str(p), cap.ts_mult)
                return
            self.feed_all(cap.messages())
            return
        self.feed_all(read(p))

    def feed_all(self, messages: Iterable[RawMessage]) -> None:
        """Feed messages in order."""
        for m in messages:
            self.feed(m)

    def feed(self, m: RawMessage) -> None:
        """Route one message to its book's builder (creating it on first sight)."""
        self.messages += 1
        if m.kind == "malformed":
            self.malformed += 1
            self._report(m.where, "malformed", "not a capture line")
            return
        if m.kind == "connect":
            addr = m.data.decode(errors="replace").rstrip("/")
            self._conn_category[m.conn] = addr.rsplit("/", 1)[-1]
            return
        v = m.venue
        if v == "reference":
            self.grids.update({k: g for k, g in load_reference([m]).items() if k not in self.grids})
            return
        if v in ("binance-spot", "binance-futures"):
            sym = m.key
            if m.kind != "rest":
                found = _STREAM.search(m.data[:128])
                if found:
                    sym = found.group(1).decode().lower()
            if not sym:
                self.non_book += 1
                self._report(m.where, "no_book", "message names no symbol")
                return
            book = self._binance_book(v, sym)
            if m.kind == "rest":
                book.on_snapshot(m.data, m.recv_ns, m.where)
            else:
                book.on_message(m.data, m.recv_ns, m.where)
            return
        if v in ("tardis-trades", "tardis-quotes"):
            self.non_book += 1
            return
        try:
            doc = _decode.decode(m.data)
        except msgspec.DecodeError as exc:
            self.malformed += 1
            self._report(m.where, "malformed", str(exc))
            return
        key, builder = self._route(m, doc)
        if builder is None:
            self.non_book += 1
            return
        builder.on_doc(doc, m.recv_ns, m.where)

    # ---- routing ------------------------------------------------------------------------
    def _binance_book(self, venue: str, sym: str) -> BinanceBook:
        key = f"{venue}:{sym.upper()}"
        book = self.books.get(key)
        if book is None:
            book = BinanceBook(key, sym, venue == "binance-futures", self.grids.get(key))
            self.books[key] = book
        return book

    def _route(self, m: RawMessage, doc: Any) -> tuple[str, Any]:
        if not isinstance(doc, dict):
            return "", None
        v = m.venue
        if v == "okx":
            arg = doc.get("arg") or {}
            if "event" in doc or not str(arg.get("channel", "")).startswith(("books", "bbo")):
                return "", None
            inst = arg.get("instId", "")
            return self._get(f"okx:{inst}", lambda k: OkxBook(k, self.grids.get(k)))
        if v == "deribit":
            ch = str((doc.get("params") or {}).get("channel", ""))
            if not ch.startswith("book."):
                return "", None
            inst = ch.split(".")[1]
            return self._get(f"deribit:{inst}", lambda k: DeribitBook(k, self.grids.get(k)))
        if v == "bybit":
            topic = str(doc.get("topic", ""))
            if not topic.startswith("orderbook."):
                return "", None
            cat = self._conn_category.get(m.conn, "")
            sym = topic.rsplit(".", 1)[-1]
            return self._get(f"bybit:{m.conn}:{topic}", lambda k: BybitBook(k, self.grids.get(f"bybit-{cat}:{sym}")))
        if v == "hyperliquid":
            if doc.get("channel") != "l2Book":
                return "", None
            coin = (doc.get("data") or {}).get("coin", "")
            return self._get(f"hyperliquid:{coin}", lambda k: SnapshotBook(k))
        if v == "tardis-book-snapshot":
            return self._get(f"tardis:{doc.get('exchange')}:{doc.get('symbol')}", lambda k: SnapshotBook(k))
        if v == "tardis-l2":
            return self._get(f"tardis-l2:{doc.get('exchange')}:{doc.get('symbol')}", lambda k: TardisL2Book(k))
        return "", None

    def _get(self, key: str, make) -> tuple[str, Any]:
        b = self.books.get(key)
        if b is None:
            b = self.books[key] = make(key)
        return key, b

    def _report(self, where: str, code: str, detail: str = "") -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(where, code, detail))

    # ---- the report ---------------------------------------------------------------------
    def book_report(self, key: str) -> dict[str, Any]:
        """The issue-7 keys for one book, then the other counters and the first problems."""
        b = self.books[key]
        s = b.stats()
        out: dict[str, Any] = {k: s.get(k, 0) for k in REPORT_KEYS if k not in ("synced", "top10_sha256")}
        out["synced"] = b.synced
        out["top10_sha256"] = b.top10_sha256()
        out = {k: out[k] for k in REPORT_KEYS}
        out.update({k: v for k, v in s.items() if k not in out})
        if not s.get("snapshots"):
            out["note"] = "no snapshot in the stream: the book never synced"
        g = getattr(b, "grid", None)
        if g is not None:
            out["grid"] = {"tick": g.px_str(1), "lot": g.qty_str(1), "source": g.source}
        out["problem_count"] = b.problem_count
        out["problems"] = [str(p) for p in b.problems[:20]]
        return out

    def report(self) -> dict[str, Any]:
        """Every book's report plus stream-level counts."""
        return {
            "files": self.files,
            "messages": self.messages,
            "non_book_messages": self.non_book,
            "malformed_lines": self.malformed,
            "problems": [str(p) for p in self.problems[:20]],
            "books": {k: self.book_report(k) for k in sorted(self.books)},
        }


def replay_files(paths: Iterable[str | Path], fast: bool = True) -> Replay:
    """Replay files in order as one stream; returns the :class:`Replay` with its books.

    A cryptofeed ``X.http.0.0`` given beside its ``X.ws.1.0`` is not fed twice:
    the websocket reader already merges it.
    """
    paths = [Path(p) for p in paths]
    ws_stems = {p.parent / p.name.split(".")[0] for p in paths if ".ws." in p.name}
    r = Replay(fast=fast)
    t0 = time.perf_counter()
    for p in paths:
        if not p.exists():
            raise MalformedInputError(f"{p}: no such file")
        if ".http." in p.name and (p.parent / p.name.split(".")[0]) in ws_stems:
            continue
        r.feed_file(p)
    r.seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    return r
