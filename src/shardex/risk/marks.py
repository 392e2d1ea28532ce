"""Real mark prices: Binance ``markPrice@1s`` captures to ``MARK_PRICE`` commands.

A Binance USDⓈ-M ``markPriceUpdate`` carries the mark price ``p``, the index
price ``i``, the funding rate ``r`` of the interval now running and the next
funding time ``T``, as decimal strings with up to 8 decimals, once a second.
:func:`read_binance_marks` pulls them out of an hftbacktest capture (lines
``<receive stamp> <raw websocket JSON>``, gzip or plain) into a
:data:`MARK_DTYPE` array: integers only, exact.

The engine keeps a mark in ticks of its instrument, but Binance computes its
mark to 1e-8 USDT, off BTCUSDT's 0.1 tick about a third of the time
(``"28147.27373413"``).  Such a value is refused with ``OffGridError``
unless the caller names a ``rounding`` (a :mod:`decimal` rounding mode,
e.g. ``decimal.ROUND_HALF_EVEN``): putting a venue's mark on a coarser grid
is a modelling choice, so it is never made silently, and the exact values
stay in the array beside the rounded ticks (``mark_e8``, ``index_e8``).

:func:`mark_commands` turns the array into ``COMMAND_DTYPE`` ``MARK_PRICE``
commands (price = mark ticks, stop_price = index ticks, ts = Binance's event
time) for ``RiskExchange.process``; :func:`mark_batches` cuts them into
batches.  :func:`sample_path` is a small copy of the real stream shipped with
the package (the 99 ``markPrice@1s`` lines of hftbacktest's
``usdm/btcusdt_20230404.dat.gz``, MIT; see ``data/NOTICE``), for runs
without ``../shared/data``.

>>> from decimal import ROUND_HALF_EVEN
>>> from shardex.instruments import Instrument, InstrumentKind
>>> perp = Instrument(0, "BTCUSDT", tick_size="0.1", lot_size="0.001", kind=InstrumentKind.PERPETUAL)
>>> m = read_binance_marks(sample_path(), perp, rounding=ROUND_HALF_EVEN)
>>> len(m), int(m["mark"][0]), int(m["mark_e8"][0]), int(m["funding_e8"][0])
(99, 281473, 2814727373413, 2754)
>>> read_binance_marks(sample_path(), perp)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
shardex.errors.OffGridError: ...:1: mark price 28147.27373413 is not a multiple of the tick 0.1 of BTCUSDT; ...
"""

from __future__ import annotations

import decimal
import gzip
from decimal import Decimal
from importlib import resources
from pathlib import Path

import msgspec
import numpy as np

from shardex.errors import MalformedInputError, OffGridError
from shardex.feeds._decimal import parse_units
from shardex.instruments import Instrument
from shardex.schema import COMMAND_DTYPE, CommandKind

__all__ = ["MARK_DTYPE", "RATE_DECIMALS", "mark_batches", "mark_commands", "read_binance_marks", "sample_path"]

#: Decimals Binance sends for mark, index and funding rate; ``*_e8`` fields are in these units.
RATE_DECIMALS = 8

#: One mark update.  ``mark``/``index``: the instrument's ticks (on the grid,
#: rounded only when asked); ``mark_e8``/``index_e8``: the prices exactly as
#: sent, in 1e-8 of the quote currency; ``funding_e8``: the funding rate per
#: interval in 1e-8 (``"0.00002754"`` -> 2754; Binance's resolution, finer
#: than the ledger's ppm); times in ns since the epoch.
MARK_DTYPE = np.dtype([
    ("event_ns", "<i8"),  # Binance "E" (ms) in ns
    ("recv_ns", "<i8"),  # the collector's receive stamp, ns
    ("mark", "<i8"),
    ("index", "<i8"),
    ("mark_e8", "<i8"),
    ("index_e8", "<i8"),
    ("funding_e8", "<i8"),
    ("next_funding_ns", "<i8"),  # Binance "T" (ms) in ns
])

_ROUNDINGS = frozenset({decimal.ROUND_CEILING, decimal.ROUND_DOWN, decimal.ROUND_FLOOR, decimal.ROUND_HALF_DOWN,
                        decimal.ROUND_HALF_EVEN, decimal.ROUND_HALF_UP, decimal.ROUND_UP, decimal.ROUND_05UP})
_SAMPLE = "binance_btcusdt_markprice_20230404.txt.gz"


class _MarkUpdate(msgspec.Struct):
    e: str
    E: int
    s: str
    p: str
    i: str = "0"
    r: str = "0"
    T: int = 0


class _Envelope(msgspec.Struct):
    stream: str
    data: _MarkUpdate


_decode = msgspec.json.Decoder(_Envelope).decode


def sample_path() -> Path:
    """The embedded real sample: 99 ``btcusdt@markPrice@1s`` lines, 2023-04-04 23:58:21-23:59:59 UTC (µs stamps)."""
    return Path(str(resources.files("shardex.risk") / "data" / _SAMPLE))


def read_binance_marks(source: str | Path | bytes, instrument: Instrument, *, symbol: str | None = None,
                       rounding: str | None = None) -> np.ndarray:
    """Every ``markPriceUpdate`` of an hftbacktest capture as a :data:`MARK_DTYPE` array, in file order.

    Parameters
    ----------
    source
        A capture file (gzip or plain) or its decompressed bytes.  Lines
        without ``@markPrice`` are skipped unparsed.
    instrument
        Gives the tick grid of ``mark`` and ``index``.
    symbol
        Keep this symbol's updates (``"BTCUSDT"``, any case); ``None``: the
        capture must hold one symbol's marks only.
    rounding
        ``None`` (default): a price off the tick grid raises
        ``OffGridError``.  A :mod:`decimal` rounding mode: put it on the grid
        that way (the exact value stays in ``mark_e8``/``index_e8``).

    A price or rate with more than 8 decimals raises ``OffGridError`` (it is
    not Binance's), a line that does not parse ``MalformedInputError``; both
    name the file and line.  Receive stamps are read as ns when they have
    18 digits or more, else as µs (the 2023 captures).  Complexity: O(bytes)
    for the filter, O(updates) for the rest.
    """
    if rounding is not None and rounding not in _ROUNDINGS:
        raise ValueError(f"rounding must be None or a decimal rounding mode such as {decimal.ROUND_HALF_EVEN!r}, "
                         f"got {rounding!r}")
    if isinstance(source, (bytes, bytearray)):
        raw, where = bytes(source), "<bytes>"
    else:
        p = Path(source)
        raw, where = p.read_bytes(), str(p)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    tick = instrument.tick_size
    scale = max(RATE_DECIMALS, -tick.as_tuple().exponent)  # units fine enough for both the tick and Binance
    tick_units = int(tick * 10**scale)
    want = symbol.upper() if symbol is not None else None
    rows = []
    seen: set[str] = set()
    for no, line in enumerate(raw.split(b"\n"), 1):
        if b"@markPrice" not in line:
            continue
        at = f"{where}:{no}"
        stamp, _, body = line.partition(b" ")
        if not stamp.isdigit():
            raise MalformedInputError(f"{at}: no receive stamp before the message")
        try:
            d = _decode(body).data
        except msgspec.DecodeError as exc:
            raise MalformedInputError(f"{at}: not a markPriceUpdate: {exc}") from None
        if d.e != "markPriceUpdate":
            raise MalformedInputError(f"{at}: event {d.e!r} on a markPrice stream")
        if want is not None and d.s.upper() != want:
            continue
        seen.add(d.s)
        try:
            mark_u = parse_units(d.p, scale)
            index_u = parse_units(d.i, scale)
            rate = parse_units(d.r, RATE_DECIMALS)
            mark_e8 = parse_units(d.p, RATE_DECIMALS)
            index_e8 = parse_units(d.i, RATE_DECIMALS)
        except OffGridError as exc:
            raise OffGridError(f"{at}: {exc}") from None
        recv = int(stamp) * (1 if len(stamp) >= 18 else 1000)
        rows.append((d.E * 1_000_000, recv,
                     _ticks(mark_u, tick_units, rounding, at, "mark", d.p, instrument),
                     _ticks(index_u, tick_units, rounding, at, "index", d.i, instrument),
                     mark_e8, index_e8, rate, d.T * 1_000_000))
    if want is None and len(seen) > 1:
        raise ValueError(f"{where}: marks of several symbols {sorted(seen)}; pass symbol=")
    return np.array(rows, MARK_DTYPE)


def _ticks(units: int, tick_units: int, rounding: str | None, at: str, what: str, text: str, ins: Instrument) -> int:
    q, r = divmod(units, tick_units)
    if r == 0:
        return q
    if rounding is None:
        raise OffGridError(f"{at}: {what} price {text} is not a multiple of the tick {ins.tick_size.normalize()} of "
                           f"{ins.symbol}; pass rounding= (a decimal rounding mode) to put it on the grid")
    # Exact: the quotient of two integers below 1e20 is far from a tie at 60 digits unless it is one.
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        return int((Decimal(units) / Decimal(tick_units)).to_integral_value(rounding=rounding))


def mark_commands(marks: np.ndarray, instrument: int) -> np.ndarray:
    """``MARK_PRICE`` commands, one per update: price = mark ticks, stop_price = index ticks, ts = event time.

    ``RiskExchange.process`` restamps ``ts`` with its clock; ``apply`` (the
    replay path) keeps it.  O(updates).
    """
    cmds = np.zeros(len(marks), COMMAND_DTYPE)
    cmds["kind"] = CommandKind.MARK_PRICE
    cmds["instrument"] = instrument
    cmds["price"] = marks["mark"]
    cmds["stop_price"] = marks["index"]
    cmds["ts"] = marks["event_ns"]
    return cmds


def mark_batches(marks: np.ndarray, instrument: int, per_batch: int = 1) -> list[np.ndarray]:
    """:func:`mark_commands` cut into batches of ``per_batch`` updates (1: check the state after each)."""
    if per_batch < 1:
        raise ValueError(f"per_batch must be >= 1, got {per_batch}")
    cmds = mark_commands(marks, instrument)
    return [cmds[k:k + per_batch] for k in range(0, len(cmds), per_batch)]
