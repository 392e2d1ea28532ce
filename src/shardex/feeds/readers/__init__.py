"""Readers: each turns one capture family into a stream of :class:`RawMessage` (raw bytes + receive time).

:func:`read` picks the reader from a file's name and first bytes:

* hftbacktest ``*.gz`` / ``*.dat.gz`` (Binance spot/USDⓈ-M/COIN-M, Hyperliquid)
* cryptofeed v1 ``X.ws.1.0`` (+ ``X.http.0.0`` snapshots, ``X.0`` reference data) and ``X.jsonl.zst``
* nautilus_trader test data: Binance depth CSVs, tardis CSVs, Bybit ``*.data.zip``
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from shardex.errors import MalformedInputError
from shardex.feeds.readers._types import VENUES, RawMessage
from shardex.feeds.readers.cryptofeed import load_reference, read_cryptofeed_v1, read_cryptofeed_zst, sibling_reference
from shardex.feeds.readers.hftbacktest import HftCapture, looks_like_hftbacktest, read_hftbacktest
from shardex.feeds.readers.nautilus import csv_kind, read_binance_depth_csv, read_bybit_zip, read_tardis_csv

__all__ = [
    "RawMessage",
    "VENUES",
    "HftCapture",
    "family",
    "read",
    "read_hftbacktest",
    "read_cryptofeed_v1",
    "read_cryptofeed_zst",
    "read_binance_depth_csv",
    "read_tardis_csv",
    "read_bybit_zip",
    "load_reference",
    "reference_for",
]


def family(path: str | Path) -> str:
    """Which reader a file needs: hftbacktest, cryptofeed-v1, cryptofeed-zst, binance-csv, tardis-csv, bybit-zip."""
    p = Path(path)
    name = p.name
    if name.endswith(".jsonl.zst"):
        return "cryptofeed-zst"
    if name.endswith(".zip"):
        return "bybit-zip"
    if name.endswith(".csv"):
        with p.open(newline="") as fh:
            header = fh.readline().strip().split(",")
        kind = csv_kind(header)
        if kind == "binance-depth":
            return "binance-csv"
        if kind is not None:
            return "tardis-csv"
        raise MalformedInputError(f"{p}:1: unknown CSV header {header[:6]}")
    parts = name.split(".")
    if len(parts) >= 2 and parts[0].isupper() and (parts[1] in ("ws", "http") or parts[1].isdigit()):
        return "cryptofeed-v1"
    if name.endswith(".gz"):
        return "hftbacktest"
    with p.open("rb") as fh:
        head = fh.read(256)
    if looks_like_hftbacktest(head):
        return "hftbacktest"
    raise MalformedInputError(f"{p}: unknown capture format")


def read(path: str | Path) -> Iterator[RawMessage]:
    """Every message of one capture file, in file order (v1 captures: snapshots merged by receive time)."""
    fam = family(path)
    if fam == "hftbacktest":
        yield from read_hftbacktest(path).messages()
    elif fam == "cryptofeed-v1":
        yield from read_cryptofeed_v1(path)
    elif fam == "cryptofeed-zst":
        yield from read_cryptofeed_zst(path)
    elif fam == "binance-csv":
        yield from read_binance_depth_csv(path)
    elif fam == "tardis-csv":
        yield from read_tardis_csv(path)
    else:
        yield from read_bybit_zip(path)


def reference_for(path: str | Path) -> dict:
    """Instrument grids found beside a capture (cryptofeed ``X.0``), keyed ``venue:SYMBOL``."""
    p = Path(path)
    if family(p) == "cryptofeed-v1":
        ref = sibling_reference(p)
        if ref is not None:
            return load_reference(read_cryptofeed_v1(ref))
    return {}
