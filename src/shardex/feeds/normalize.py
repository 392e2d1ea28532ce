"""Captures to normalized Parquet tables: book deltas, trades, best bid/ask, mark price, funding.

Every row carries the exchange stamp (``exch_ns``, from the venue's own event
or trade time) and the collector's receive stamp (``recv_ns``), both int64 ns
since the Unix epoch, so research can measure feed latency and the risk
engine can take mark prices and funding rates as of either clock. Prices and
sizes are written twice: as float64 for research and as the exact canonical
decimal string (``*_str``) for anything that must not round.

This path decodes with msgspec in Python (a few µs per message): it is an
offline export, not the hot path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import msgspec

from shardex.feeds._decimal import canonical_decimal
from shardex.feeds.readers import RawMessage, read

__all__ = ["Normalizer", "normalize_files", "TABLES"]

#: Output tables and their columns (in order).
TABLES: dict[str, tuple[str, ...]] = {
    "book_deltas": (
        "venue", "book", "exch_ns", "recv_ns", "first_id", "last_id", "prev_id", "is_snapshot",
        "side", "price", "size", "price_str", "size_str",
    ),
    "trades": ("venue", "symbol", "exch_ns", "recv_ns", "trade_id", "aggressor", "price", "size", "price_str", "size_str"),
    "bbo": ("venue", "symbol", "exch_ns", "recv_ns", "update_id", "bid_price", "bid_size", "ask_price", "ask_size"),
    "mark_price": ("venue", "symbol", "exch_ns", "recv_ns", "mark_price", "index_price"),
    "funding": ("venue", "symbol", "exch_ns", "recv_ns", "funding_rate", "next_funding_ns"),
}

_INT_COLS = {"exch_ns", "recv_ns", "first_id", "last_id", "prev_id", "update_id", "next_funding_ns"}
_FLOAT_COLS = {"price", "size", "bid_price", "bid_size", "ask_price", "ask_size", "mark_price", "index_price", "funding_rate"}
_dec = msgspec.json.Decoder()
_NAN = float("nan")


def _f(x: Any) -> float:
    if x is None or x == "":
        return _NAN
    try:
        return float(x)
    except (TypeError, ValueError):
        return _NAN


def _s(x: Any) -> str:
    try:
        return canonical_decimal(x)
    except (ValueError, TypeError):
        return str(x)


class Normalizer:
    """Accumulates normalized rows from raw messages; :meth:`write` puts one Parquet file per table.

    Counts messages it could not read (``malformed``) and ones of no table
    (``skipped``); it never stops on one bad message.
    """

    def __init__(self) -> None:
        self.cols: dict[str, dict[str, list]] = {t: {c: [] for c in cs} for t, cs in TABLES.items()}
        self.malformed = 0
        self.skipped = 0
        self.problems: list[str] = []

    # ---- rows ----------------------------------------------------------------------------
    def _row(self, table: str, **kw: Any) -> None:
        cols = self.cols[table]
        for c in TABLES[table]:
            v = kw.get(c)
            if v is None:
                v = -1 if c in _INT_COLS else (_NAN if c in _FLOAT_COLS else "")
            cols[c].append(v)

    def _levels(self, venue: str, book: str, exch: int, recv: int, ids: tuple, snap: bool, side: str, levels) -> None:
        first, last, prev = ids
        for lv in levels:
            px, sz = lv[0], lv[1]
            self._row(
                "book_deltas", venue=venue, book=book, exch_ns=exch, recv_ns=recv, first_id=first, last_id=last,
                prev_id=prev, is_snapshot=snap, side=side, price=_f(px), size=_f(sz), price_str=_s(px), size_str=_s(sz),
            )

    # ---- one message ---------------------------------------------------------------------
    def add(self, m: RawMessage) -> None:
        """Normalize one message (any venue the readers know)."""
        if m.kind in ("malformed",):
            self.malformed += 1
            return
        if m.kind == "connect" or m.venue == "reference":
            return
        try:
            doc = _dec.decode(m.data)
        except msgspec.DecodeError:
            self.malformed += 1
            if len(self.problems) < 20:
                self.problems.append(f"{m.where}: malformed")
            return
        try:
            handled = getattr(self, "_" + m.venue.replace("-", "_"))(m, doc)
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
            self.malformed += 1
            if len(self.problems) < 20:
                self.problems.append(f"{m.where}: {type(exc).__name__}: {exc}")
            return
        if not handled:
            self.skipped += 1

    def _binance(self, m: RawMessage, doc: dict) -> bool:
        if "lastUpdateId" in doc:
            book = f"{m.venue}:{m.key.upper()}"
            exch = int(doc.get("E", doc.get("T", 0))) * 1_000_000 or -1
            ids = (-1, doc["lastUpdateId"], -1)
            self._levels(m.venue, book, exch, m.recv_ns, ids, True, "bid", doc["bids"])
            self._levels(m.venue, book, exch, m.recv_ns, ids, True, "ask", doc["asks"])
            return True
        d = doc.get("data", doc)
        stream = doc.get("stream", "")
        e = d.get("e") or ("bookTicker" if "bookTicker" in stream else "")
        sym = d.get("s", m.key.upper())
        exch = int(d.get("E", d.get("T", 0)) or 0) * 1_000_000 or -1
        if e == "depthUpdate":
            ids = (d["U"], d["u"], d.get("pu", -1))
            book = f"{m.venue}:{sym}"
            self._levels(m.venue, book, exch, m.recv_ns, ids, False, "bid", d["b"])
            self._levels(m.venue, book, exch, m.recv_ns, ids, False, "ask", d["a"])
        elif e == "bookTicker":
            self._row("bbo", venue=m.venue, symbol=sym, exch_ns=exch, recv_ns=m.recv_ns, update_id=d["u"],
                      bid_price=_f(d["b"]), bid_size=_f(d["B"]), ask_price=_f(d["a"]), ask_size=_f(d["A"]))
        elif e in ("trade", "aggTrade"):
            self._row("trades", venue=m.venue, symbol=sym, exch_ns=int(d.get("T", 0)) * 1_000_000, recv_ns=m.recv_ns,
                      trade_id=str(d.get("t", d.get("a", ""))), aggressor="sell" if d.get("m") else "buy",
                      price=_f(d["p"]), size=_f(d["q"]), price_str=_s(d["p"]), size_str=_s(d["q"]))
        elif e == "markPriceUpdate":
            self._row("mark_price", venue=m.venue, symbol=sym, exch_ns=exch, recv_ns=m.recv_ns,
                      mark_price=_f(d.get("p")), index_price=_f(d.get("i")))
            if "r" in d:
                self._row("funding", venue=m.venue, symbol=sym, exch_ns=exch, recv_ns=m.recv_ns,
                          funding_rate=_f(d["r"]), next_funding_ns=int(d.get("T", 0)) * 1_000_000)
        else:
            return False
        return True

    _binance_spot = _binance
    _binance_futures = _binance

    def _okx(self, m: RawMessage, doc: dict) -> bool:
        arg = doc.get("arg") or {}
        ch, inst = arg.get("channel", ""), arg.get("instId", "")
        if "event" in doc or "data" not in doc:
            return False
        for d in doc["data"]:
            exch = int(d.get("ts", 0)) * 1_000_000 or -1
            if ch.startswith("books"):
                snap = doc.get("action") == "snapshot"
                ids = (-1, d.get("seqId", -1), d.get("prevSeqId", -1))
                self._levels("okx", f"okx:{inst}", exch, m.recv_ns, ids, snap, "bid", d.get("bids", []))
                self._levels("okx", f"okx:{inst}", exch, m.recv_ns, ids, snap, "ask", d.get("asks", []))
            elif ch == "trades":
                self._row("trades", venue="okx", symbol=inst, exch_ns=exch, recv_ns=m.recv_ns, trade_id=str(d.get("tradeId", "")),
                          aggressor=d.get("side", ""), price=_f(d["px"]), size=_f(d["sz"]), price_str=_s(d["px"]), size_str=_s(d["sz"]))
            elif ch == "tickers":
                self._row("bbo", venue="okx", symbol=inst, exch_ns=exch, recv_ns=m.recv_ns, bid_price=_f(d.get("bidPx")),
                          bid_size=_f(d.get("bidSz")), ask_price=_f(d.get("askPx")), ask_size=_f(d.get("askSz")))
            elif ch == "mark-price":
                self._row("mark_price", venue="okx", symbol=inst, exch_ns=exch, recv_ns=m.recv_ns, mark_price=_f(d.get("markPx")))
            elif ch == "funding-rate":
                self._row("funding", venue="okx", symbol=inst, exch_ns=exch, recv_ns=m.recv_ns, funding_rate=_f(d.get("fundingRate")),
                          next_funding_ns=int(d.get("fundingTime", 0)) * 1_000_000)
            else:
                return False
        return True

    def _deribit(self, m: RawMessage, doc: dict) -> bool:
        params = doc.get("params") or {}
        ch = params.get("channel", "")
        d = params.get("data")
        if d is None:
            return False
        if ch.startswith("book."):
            inst = ch.split(".")[1]
            exch = int(d.get("timestamp", 0)) * 1_000_000
            snap = d.get("type") == "snapshot"
            ids = (-1, d.get("change_id", -1), d.get("prev_change_id", -1))
            for side, key in (("bid", "bids"), ("ask", "asks")):
                levels = [(e[1], 0.0 if e[0] == "delete" else e[2]) for e in d.get(key, [])]
                self._levels("deribit", f"deribit:{inst}", exch, m.recv_ns, ids, snap, side, levels)
        elif ch.startswith("trades."):
            for t in d:
                self._row("trades", venue="deribit", symbol=t["instrument_name"], exch_ns=int(t["timestamp"]) * 1_000_000,
                          recv_ns=m.recv_ns, trade_id=str(t.get("trade_id", "")), aggressor=t.get("direction", ""),
                          price=_f(t["price"]), size=_f(t["amount"]), price_str=_s(t["price"]), size_str=_s(t["amount"]))
        elif ch.startswith("ticker."):
            inst = d.get("instrument_name", ch.split(".")[1])
            exch = int(d.get("timestamp", 0)) * 1_000_000
            self._row("bbo", venue="deribit", symbol=inst, exch_ns=exch, recv_ns=m.recv_ns, bid_price=_f(d.get("best_bid_price")),
                      bid_size=_f(d.get("best_bid_amount")), ask_price=_f(d.get("best_ask_price")), ask_size=_f(d.get("best_ask_amount")))
            self._row("mark_price", venue="deribit", symbol=inst, exch_ns=exch, recv_ns=m.recv_ns,
                      mark_price=_f(d.get("mark_price")), index_price=_f(d.get("index_price")))
            if d.get("funding_8h") is not None or d.get("current_funding") is not None:
                self._row("funding", venue="deribit", symbol=inst, exch_ns=exch, recv_ns=m.recv_ns,
                          funding_rate=_f(d.get("funding_8h", d.get("current_funding"))))
        else:
            return False
        return True

    def _bybit(self, m: RawMessage, doc: dict) -> bool:
        topic = str(doc.get("topic", ""))
        d = doc.get("data")
        exch = int(doc.get("ts", 0)) * 1_000_000 or -1
        if d is None:
            return False
        if topic.startswith("orderbook."):
            book = f"bybit:{m.conn}:{topic}"
            ids = (-1, d.get("u", -1), d.get("seq", -1))
            snap = doc.get("type") == "snapshot"
            self._levels("bybit", book, exch, m.recv_ns, ids, snap, "bid", d.get("b", []))
            self._levels("bybit", book, exch, m.recv_ns, ids, snap, "ask", d.get("a", []))
        elif topic.startswith("publicTrade."):
            for t in d:
                self._row("trades", venue="bybit", symbol=t["s"], exch_ns=int(t["T"]) * 1_000_000, recv_ns=m.recv_ns,
                          trade_id=str(t.get("i", "")), aggressor=str(t.get("S", "")).lower(), price=_f(t["p"]), size=_f(t["v"]),
                          price_str=_s(t["p"]), size_str=_s(t["v"]))
        elif topic.startswith("tickers."):
            sym = d.get("symbol", topic.split(".")[-1])
            if "bid1Price" in d or "ask1Price" in d:
                self._row("bbo", venue="bybit", symbol=sym, exch_ns=exch, recv_ns=m.recv_ns, bid_price=_f(d.get("bid1Price")),
                          bid_size=_f(d.get("bid1Size")), ask_price=_f(d.get("ask1Price")), ask_size=_f(d.get("ask1Size")))
            if "markPrice" in d or "indexPrice" in d:
                self._row("mark_price", venue="bybit", symbol=sym, exch_ns=exch, recv_ns=m.recv_ns,
                          mark_price=_f(d.get("markPrice")), index_price=_f(d.get("indexPrice")))
            if "fundingRate" in d:
                nxt = d.get("nextFundingTime")
                self._row("funding", venue="bybit", symbol=sym, exch_ns=exch, recv_ns=m.recv_ns, funding_rate=_f(d["fundingRate"]),
                          next_funding_ns=int(nxt) * 1_000_000 if nxt else -1)
        else:
            return False
        return True

    def _hyperliquid(self, m: RawMessage, doc: dict) -> bool:
        ch, d = doc.get("channel"), doc.get("data")
        if ch == "l2Book":
            exch = int(d.get("time", 0)) * 1_000_000
            book = f"hyperliquid:{d['coin']}"
            for side, levels in (("bid", d["levels"][0]), ("ask", d["levels"][1])):
                self._levels("hyperliquid", book, exch, m.recv_ns, (-1, -1, -1), True, side, [(x["px"], x["sz"]) for x in levels])
        elif ch == "trades":
            for t in d:
                self._row("trades", venue="hyperliquid", symbol=t["coin"], exch_ns=int(t["time"]) * 1_000_000, recv_ns=m.recv_ns,
                          trade_id=str(t.get("tid", "")), aggressor="buy" if t.get("side") == "B" else "sell",
                          price=_f(t["px"]), size=_f(t["sz"]), price_str=_s(t["px"]), size_str=_s(t["sz"]))
        else:
            return False
        return True

    def _tardis_book_snapshot(self, m: RawMessage, doc: dict) -> bool:
        book = f"tardis:{doc['exchange']}:{doc['symbol']}"
        exch = int(doc["timestamp"]) * 1000
        self._levels(doc["exchange"], book, exch, m.recv_ns, (-1, -1, -1), True, "bid", doc["bids"])
        self._levels(doc["exchange"], book, exch, m.recv_ns, (-1, -1, -1), True, "ask", doc["asks"])
        return True

    def _tardis_l2(self, m: RawMessage, doc: dict) -> bool:
        book = f"tardis-l2:{doc['exchange']}:{doc['symbol']}"
        exch = int(doc["timestamp"]) * 1000
        snap = bool(doc.get("is_snapshot"))
        self._levels(doc["exchange"], book, exch, m.recv_ns, (-1, -1, -1), snap, "bid", doc["bids"])
        self._levels(doc["exchange"], book, exch, m.recv_ns, (-1, -1, -1), snap, "ask", doc["asks"])
        return True

    def _tardis_trades(self, m: RawMessage, doc: dict) -> bool:
        self._row("trades", venue=doc["exchange"], symbol=doc["symbol"], exch_ns=int(doc["timestamp"]) * 1000, recv_ns=m.recv_ns,
                  trade_id=doc.get("id", ""), aggressor=doc.get("side", ""), price=_f(doc["price"]), size=_f(doc["amount"]),
                  price_str=_s(doc["price"]), size_str=_s(doc["amount"]))
        return True

    def _tardis_quotes(self, m: RawMessage, doc: dict) -> bool:
        self._row("bbo", venue=doc["exchange"], symbol=doc["symbol"], exch_ns=int(doc["timestamp"]) * 1000, recv_ns=m.recv_ns,
                  bid_price=_f(doc.get("bid_price")), bid_size=_f(doc.get("bid_amount")), ask_price=_f(doc.get("ask_price")),
                  ask_size=_f(doc.get("ask_amount")))
        return True

    # ---- output --------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Rows per table."""
        return {t: len(c[TABLES[t][0]]) for t, c in self.cols.items()}

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``<table>.parquet`` for every table (empty tables too, with their schema)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for t, cols in self.cols.items():
            fields = []
            arrays = []
            for c in TABLES[t]:
                typ = pa.int64() if c in _INT_COLS else pa.float64() if c in _FLOAT_COLS else pa.bool_() if c == "is_snapshot" else pa.string()
                vals = cols[c]
                if typ == pa.float64():
                    vals = [_NAN if (isinstance(v, float) and math.isnan(v)) else v for v in vals]
                arrays.append(pa.array(vals, type=typ))
                fields.append(pa.field(c, typ))
            table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
            p = out / f"{t}.parquet"
            pq.write_table(table, p)
            paths[t] = p
        return paths


def normalize_files(paths: Iterable[str | Path], out_dir: str | Path) -> Normalizer:
    """Normalize every message of the files (in order) and write the tables to ``out_dir``."""
    n = Normalizer()
    for p in paths:
        for m in read(p):
            n.add(m)
    n.write(out_dir)
    return n
