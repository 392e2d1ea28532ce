"""nautilus_trader test data: Binance historical depth CSVs, tardis CSVs, Bybit ob500 zip (SOURCES.md §5).

CSV rows are re-encoded as the JSON messages the builders already read (a
Binance snapshot or ``depthUpdate``, a tardis snapshot or incremental
message), so one book builder per protocol serves both live and file data.
These files carry no collector clock except tardis' ``local_timestamp``; where
there is none the exchange stamp stands in for the receive time.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Iterator

import msgspec

from shardex.errors import MalformedInputError
from shardex.feeds.readers._types import RawMessage

__all__ = ["read_binance_depth_csv", "read_tardis_csv", "read_bybit_zip", "csv_kind"]

_enc = msgspec.json.Encoder()


def csv_kind(header: list[str]) -> str | None:
    """Which CSV family a header names: binance-depth, tardis-book-snapshot, tardis-l2, tardis-trades, tardis-quotes."""
    h = set(header)
    if {"first_update_id", "last_update_id", "update_type"} <= h:
        return "binance-depth"
    if "asks[0].price" in h:
        return "tardis-book-snapshot"
    if {"is_snapshot", "side", "price", "amount"} <= h:
        return "tardis-l2"
    if {"id", "side", "price", "amount"} <= h:
        return "tardis-trades"
    if {"ask_price", "bid_price"} <= h:
        return "tardis-quotes"
    return None


def _rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    fh = path.open(newline="")
    reader = csv.reader(fh)
    try:
        header = next(reader)
    except StopIteration:
        fh.close()
        raise MalformedInputError(f"{path}:1: empty CSV") from None

    def gen() -> Iterator[tuple[int, list[str]]]:
        with fh:
            for no, row in enumerate(reader, 2):
                if row:
                    yield no, row

    return header, gen()


def read_binance_depth_csv(path: str | Path) -> Iterator[RawMessage]:
    """Binance ``T_DEPTH`` rows grouped into snapshot / ``depthUpdate`` messages (venue binance-futures)."""
    p = Path(path)
    header, rows = _rows(p)
    col = {c: i for i, c in enumerate(header)}
    group: list[list[str]] = []
    first_line = 0

    def flush() -> RawMessage:
        r0 = group[0]
        sym = r0[col["symbol"]]
        ts = int(r0[col["timestamp"]])
        bids = [[r[col["price"]], r[col["qty"]]] for r in group if r[col["side"]] == "b"]
        asks = [[r[col["price"]], r[col["qty"]]] for r in group if r[col["side"]] == "a"]
        if r0[col["update_type"]] == "snap":
            doc = {"lastUpdateId": int(r0[col["last_update_id"]]), "E": ts, "bids": bids, "asks": asks}
            kind = "rest"
        else:
            doc = {
                "e": "depthUpdate",
                "E": ts,
                "s": sym,
                "U": int(r0[col["first_update_id"]]),
                "u": int(r0[col["last_update_id"]]),
                "pu": int(r0[col["pu"]]),
                "b": bids,
                "a": asks,
            }
            kind = "ws"
        return RawMessage("binance-futures", _enc.encode(doc), ts * 1_000_000, str(p), first_line, kind=kind, key=sym)

    for no, row in rows:
        if len(row) != len(header):
            raise MalformedInputError(f"{p}:{no}: {len(row)} fields, header has {len(header)}")
        gkey = (row[col["last_update_id"]], row[col["update_type"]])
        if group and gkey != (group[0][col["last_update_id"]], group[0][col["update_type"]]):
            yield flush()
            group = []
        if not group:
            first_line = no
        group.append(row)
    if group:
        yield flush()


def read_tardis_csv(path: str | Path) -> Iterator[RawMessage]:
    """tardis.dev CSV rows as messages: book_snapshot_N rows, incremental_book_L2 groups, trades, quotes."""
    p = Path(path)
    header, rows = _rows(p)
    kind = csv_kind(header)
    if kind is None or kind == "binance-depth":
        raise MalformedInputError(f"{p}:1: not a tardis CSV header: {header[:6]}")
    col = {c: i for i, c in enumerate(header)}
    src = str(p)
    if kind == "tardis-book-snapshot":
        depth = sum(1 for c in header if c.startswith("asks[") and c.endswith(".price"))
        for no, r in rows:
            try:
                doc = {
                    "exchange": r[col["exchange"]],
                    "symbol": r[col["symbol"]],
                    "timestamp": int(r[col["timestamp"]]),
                    "bids": [[r[col[f"bids[{i}].price"]], r[col[f"bids[{i}].amount"]]] for i in range(depth) if r[col[f"bids[{i}].price"]]],
                    "asks": [[r[col[f"asks[{i}].price"]], r[col[f"asks[{i}].amount"]]] for i in range(depth) if r[col[f"asks[{i}].price"]]],
                }
                recv = int(r[col["local_timestamp"]]) * 1000
            except (IndexError, ValueError) as exc:
                raise MalformedInputError(f"{p}:{no}: {exc}") from None
            yield RawMessage(kind, _enc.encode(doc), recv, src, no, key=doc["symbol"])
        return
    if kind == "tardis-l2":
        group: list[list[str]] = []
        start = 0

        def flush() -> RawMessage:
            r0 = group[0]
            doc = {
                "exchange": r0[col["exchange"]],
                "symbol": r0[col["symbol"]],
                "timestamp": int(r0[col["timestamp"]]),
                "is_snapshot": r0[col["is_snapshot"]] == "true",
                "bids": [[r[col["price"]], r[col["amount"]]] for r in group if r[col["side"]] == "bid"],
                "asks": [[r[col["price"]], r[col["amount"]]] for r in group if r[col["side"]] == "ask"],
            }
            return RawMessage(kind, _enc.encode(doc), int(r0[col["local_timestamp"]]) * 1000, src, start, key=doc["symbol"])

        for no, r in rows:
            if len(r) != len(header):
                raise MalformedInputError(f"{p}:{no}: {len(r)} fields, header has {len(header)}")
            g = (r[col["symbol"]], r[col["timestamp"]], r[col["is_snapshot"]])
            if group and g != (group[0][col["symbol"]], group[0][col["timestamp"]], group[0][col["is_snapshot"]]):
                yield flush()
                group = []
            if not group:
                start = no
            group.append(r)
        if group:
            yield flush()
        return
    for no, r in rows:
        if len(r) != len(header):
            raise MalformedInputError(f"{p}:{no}: {len(r)} fields, header has {len(header)}")
        doc = {c: r[i] for i, c in enumerate(header)}
        yield RawMessage(kind, _enc.encode(doc), int(doc["local_timestamp"]) * 1000, src, no, key=doc["symbol"])


def read_bybit_zip(path: str | Path) -> Iterator[RawMessage]:
    """Bybit historical ``*.data.zip`` (JSON lines of orderbook snapshot/delta) as bybit messages.

    The connection id is the file name, so each file keeps its own sequence.
    """
    p = Path(path)
    try:
        zf = zipfile.ZipFile(p)
    except zipfile.BadZipFile as exc:
        raise MalformedInputError(f"{p}: {exc}") from None
    with zf:
        for member in zf.namelist():
            src = f"{p}!{member}"
            with zf.open(member) as fh:
                for no, line in enumerate(io.BufferedReader(fh), 1):  # type: ignore[arg-type]
                    line = line.rstrip(b"\r\n")
                    if not line.strip():
                        continue
                    # the exchange stamp stands in for the receive time (the file has none)
                    i = line.find(b'"ts":')
                    ts = 0
                    if i >= 0:
                        j = i + 5
                        while j < len(line) and 48 <= line[j] <= 57:
                            j += 1
                        ts = int(line[i + 5 : j] or 0) * 1_000_000
                    yield RawMessage("bybit", line, ts, src, no, conn=p.name)
