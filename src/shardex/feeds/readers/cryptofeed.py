"""cryptofeed captures: v1 text files (``X.ws.1.0``, ``X.http.0.0``, ``X.0``) and ``X.jsonl.zst``.

v1 (SOURCES.md §3): the websocket file has one line per event, ``<url> <-> <ts>``
(connect), ``<url> <- <ts>: <json>`` (sent) and ``<ts>: <json>`` (received);
``X.http.0.0`` and ``X.0`` hold REST calls ``<url> -> <ts>: <json>``. The
stamps are the recorder's clock in float seconds. The snapshots of
``X.http.0.0`` are merged into the websocket stream by receive time, as the
collector saw them.

jsonl.zst: one JSON record per line (``t`` = header, http, connect, send, recv).
"""

from __future__ import annotations

import heapq
import re
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlparse

import msgspec

from shardex.errors import MalformedInputError
from shardex.feeds._decimal import Grid, parse_units
from shardex.feeds.readers._types import RawMessage

__all__ = [
    "read_cryptofeed_v1",
    "read_cryptofeed_zst",
    "load_reference",
    "venue_of_exchange",
    "sibling_http",
    "sibling_reference",
]

_EXCHANGE_VENUE = {
    "BINANCE": "binance-spot",
    "BINANCE_US": "binance-spot",
    "BINANCE_FUTURES": "binance-futures",
    "BINANCE_DELIVERY": "binance-futures",
    "OKX": "okx",
    "DERIBIT": "deribit",
    "BYBIT": "bybit",
}
_RECV = re.compile(rb"^(\d+(?:\.\d+)?): ")
_REST = re.compile(rb"^(\S+) -> (\d+(?:\.\d+)?): ")
_SENT = re.compile(rb"^(\S+) (<-|<->) (\d+(?:\.\d+)?)")


def venue_of_exchange(path: str | Path) -> str:
    """Venue protocol of a cryptofeed capture from its file name (``OKX.ws.1.0`` -> ``okx``)."""
    name = Path(path).name.split(".")[0].upper()
    try:
        return _EXCHANGE_VENUE[name]
    except KeyError:
        raise MalformedInputError(f"{path}: unknown cryptofeed exchange {name!r}") from None


def _sec_to_ns(text: bytes) -> int:
    return parse_units(text.decode(), 9)


def sibling_http(ws_path: Path) -> Path | None:
    """``X.http.0.0`` beside ``X.ws.1.0``, if present."""
    p = ws_path.with_name(ws_path.name.split(".")[0] + ".http.0.0")
    return p if p.exists() else None


def sibling_reference(path: Path) -> Path | None:
    """``X.0`` (REST reference data) beside a capture, if present."""
    p = path.with_name(path.name.split(".")[0] + ".0")
    return p if p.exists() else None


def _rest_lines(path: Path, venue: str) -> Iterator[RawMessage]:
    src = str(path)
    with path.open("rb") as fh:
        for no, line in enumerate(fh, 1):
            line = line.rstrip(b"\r\n")
            if not line.strip() or line.startswith(b"configuration: "):
                continue  # the recorder's own settings, not a REST call
            m = _REST.match(line)
            if not m:
                yield RawMessage(venue, line, -1, src, no, kind="malformed")
                continue
            url = m.group(1).decode()
            q = parse_qs(urlparse(url).query)
            key = (q.get("symbol") or q.get("instId") or q.get("instrument_name") or [""])[0]
            yield RawMessage(venue, line[m.end() :], _sec_to_ns(m.group(2)), src, no, conn=url, kind="rest", key=key)


def _ws_lines(path: Path, venue: str) -> Iterator[RawMessage]:
    src = str(path)
    conn = path.name
    with path.open("rb") as fh:
        for no, line in enumerate(fh, 1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            m = _RECV.match(line)
            if m:
                yield RawMessage(venue, line[m.end() :], _sec_to_ns(m.group(1)), src, no, conn=conn)
            elif _SENT.match(line):
                continue  # our own subscribe requests and the connect line
            else:
                yield RawMessage(venue, line, -1, src, no, conn=conn, kind="malformed")


def read_cryptofeed_v1(path: str | Path, with_snapshots: bool = True) -> Iterator[RawMessage]:
    """Messages of a v1 capture; for ``X.ws.*`` the sibling ``X.http.0.0`` snapshots are merged in by receive time.

    ``X.http.*`` alone yields its snapshots; ``X.0`` yields reference data (venue ``"reference"``).
    """
    p = Path(path)
    venue = venue_of_exchange(p)
    parts = p.name.split(".")
    if len(parts) >= 2 and parts[1] == "ws":
        ws = _ws_lines(p, venue)
        http = sibling_http(p) if with_snapshots else None
        if http is None:
            yield from ws
        else:
            yield from heapq.merge(ws, _rest_lines(http, venue), key=lambda m: m.recv_ns)
    elif len(parts) >= 2 and parts[1] == "http":
        yield from _rest_lines(p, venue)
    else:
        for m in _rest_lines(p, venue):
            yield msgspec.structs.replace(m, venue="reference")


def read_cryptofeed_zst(path: str | Path) -> Iterator[RawMessage]:
    """Messages of a ``.jsonl.zst`` capture: ``recv`` records as ws messages, ``http`` as REST."""
    import zstandard

    p = Path(path)
    venue = venue_of_exchange(p)
    src = str(p)
    try:
        text = zstandard.ZstdDecompressor().decompressobj().decompress(p.read_bytes())
    except zstandard.ZstdError as exc:
        raise MalformedInputError(f"{p}: cannot decompress: {exc}") from None
    dec = msgspec.json.Decoder()
    for no, line in enumerate(text.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            rec = dec.decode(line)
            t = rec["t"]
        except (msgspec.DecodeError, KeyError, TypeError):
            yield RawMessage(venue, line, -1, src, no, kind="malformed")
            continue
        if t == "recv":
            yield RawMessage(venue, rec["data"].encode(), int(round(rec["ts"] * 1e9)), src, no, conn=rec.get("conn", ""))
        elif t == "http":
            yield RawMessage(
                "reference", rec["data"].encode(), int(round(rec["ts"] * 1e9)), src, no, conn=rec.get("url", ""), kind="rest"
            )
        elif t == "connect":
            # the address names the category (linear / spot): keep it for book keys
            yield RawMessage(venue, rec.get("addr", "").encode(), int(round(rec["ts"] * 1e9)), src, no, conn=rec.get("conn", ""), kind="connect")


def load_reference(messages: Iterator[RawMessage] | list[RawMessage]) -> dict[str, Grid]:
    """Instrument grids from REST reference responses, keyed ``"<venue>:<SYMBOL>"``.

    Binance ``exchangeInfo`` (PRICE_FILTER tickSize, LOT_SIZE stepSize), OKX
    ``public/instruments`` (tickSz, lotSz), Deribit ``get_instruments``
    (tick_size; amounts are not checked against a lot: the API states no
    amount step for book levels), Bybit v5 ``instruments-info`` (tickSize,
    qtyStep / basePrecision). Unparseable bodies are skipped.
    """
    grids: dict[str, Grid] = {}
    for m in messages:
        try:
            doc = msgspec.json.decode(m.data)
        except msgspec.DecodeError:
            continue
        url = m.conn
        if isinstance(doc, dict) and "symbols" in doc and "exchangeInfo" in url:
            venue = "binance-futures" if "fapi" in url or "dapi" in url else "binance-spot"
            for s in doc["symbols"]:
                f = {x.get("filterType"): x for x in s.get("filters", [])}
                if "PRICE_FILTER" in f and "LOT_SIZE" in f:
                    grids[f"{venue}:{s['symbol']}"] = Grid.from_steps(
                        f["PRICE_FILTER"]["tickSize"], f["LOT_SIZE"]["stepSize"], 8, "exchangeInfo"
                    )
        elif isinstance(doc, dict) and isinstance(doc.get("data"), list) and "instruments" in url:
            for s in doc["data"]:
                if "tickSz" in s and "lotSz" in s:
                    grids[f"okx:{s['instId']}"] = Grid.from_steps(s["tickSz"], s["lotSz"], 18, "instruments")
        elif isinstance(doc, dict) and isinstance(doc.get("result"), list) and "get_instruments" in url:
            for s in doc["result"]:
                if "tick_size" in s:
                    grids[f"deribit:{s['instrument_name']}"] = Grid.from_steps(s["tick_size"], "0.00000001", 18, "get_instruments")
        elif isinstance(doc, dict) and "instruments-info" in url:
            cat = parse_qs(urlparse(url).query).get("category", [""])[0]
            for s in doc.get("result", {}).get("list", []):
                pf, lf = s.get("priceFilter", {}), s.get("lotSizeFilter", {})
                lot = lf.get("qtyStep") or lf.get("basePrecision")
                if pf.get("tickSize") and lot:
                    grids[f"bybit-{cat}:{s['symbol']}"] = Grid.from_steps(pf["tickSize"], lot, 18, "instruments-info")
    return grids
