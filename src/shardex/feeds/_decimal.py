"""Decimal strings at the edge, integers inside: the price/quantity grid of one book.

A :class:`Grid` turns the decimal strings a venue sends into int64 ticks and
lots and back into canonical decimal strings. Every value is first read as an
integer number of *units* of ``10**-decimals`` (exact, no float), then divided
by the tick (or lot) size in units; a remainder means the string is off the
instrument's grid, which is reported, never rounded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from math import gcd
from typing import Iterable, Sequence

from shardex.errors import MalformedInputError, OffGridError

__all__ = ["Grid", "canonical_decimal", "parse_units", "units_to_str", "top10_sha256", "derive_step"]


def parse_units(text: str, decimals: int) -> int:
    """Exact integer value of the decimal string ``text`` in units of ``10**-decimals``.

    Accepts ``"61800.20"``, ``"4714"``, ``"4714.0"``, ``"1e-05"`` (float reprs, as
    Deribit's JSON numbers become) and a leading ``-``. Raises
    :class:`OffGridError` when the value has non-zero digits below
    ``10**-decimals`` and :class:`MalformedInputError` when it is not a number.
    O(len(text)).
    """
    s = text.strip()
    neg = s.startswith("-")
    if neg or s.startswith("+"):
        s = s[1:]
    exp = 0
    if "e" in s or "E" in s:
        mant, _, e = s.replace("E", "e").partition("e")
        try:
            exp = int(e)
        except ValueError:
            raise MalformedInputError(f"not a decimal number: {text!r}") from None
        s = mant
    whole, dot, frac = s.partition(".")
    digits = whole + frac
    if not digits or not digits.isdigit() or (dot and "." in frac):
        raise MalformedInputError(f"not a decimal number: {text!r}")
    shift = decimals - len(frac) + exp  # power of ten to multiply the digit string by
    value = int(digits)
    if shift >= 0:
        value *= 10**shift
    else:
        value, rest = divmod(value, 10 ** (-shift))
        if rest:
            raise OffGridError(f"{text!r} has more than {decimals} decimals")
    return -value if neg else value


def units_to_str(units: int, decimals: int) -> str:
    """Canonical decimal string of ``units * 10**-decimals``: no exponent, no trailing zeros or dot.

    >>> units_to_str(6180020000000, 8)
    '61800.2'
    >>> units_to_str(100000000000, 8)
    '1000'
    """
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"


def canonical_decimal(text: str | float | int) -> str:
    """The canonical decimal string of a number given as a string, float or int.

    >>> [canonical_decimal(x) for x in ("61800.20", "1000.00", 4714.0, "0.00000000")]
    ['61800.2', '1000', '4714', '0']
    """
    s = repr(text) if isinstance(text, float) else str(text)
    return units_to_str(parse_units(s, 18), 18)


def derive_step(values: Iterable[int]) -> int:
    """Greatest common divisor of non-zero unit values (the coarsest grid they all sit on); 1 if none."""
    g = 0
    for v in values:
        if v:
            g = gcd(g, v)
            if g == 1:
                break
    return g or 1


@dataclass(frozen=True)
class Grid:
    """Tick and lot of one instrument, in units of ``10**-decimals``.

    ``tick`` and ``lot`` are int sizes in units (``decimals=8``, tick 0.1 ->
    ``tick=10_000_000``). Prices become ``units // tick`` ticks, quantities
    ``units // lot`` lots; ``source`` says where the grid came from
    (``"exchangeInfo"``, ``"snapshot gcd"``, ...), for reports.
    """

    tick: int = 1
    lot: int = 1
    decimals: int = 8
    source: str = "default"

    @classmethod
    def from_steps(cls, tick: str | float, lot: str | float, decimals: int = 8, source: str = "exchange") -> "Grid":
        """Grid from the venue's tick and lot sizes given as decimal strings or floats."""
        t = parse_units(repr(tick) if isinstance(tick, float) else str(tick), decimals)
        q = parse_units(repr(lot) if isinstance(lot, float) else str(lot), decimals)
        return cls(max(t, 1), max(q, 1), decimals, source)

    def ticks(self, px: str | float) -> int:
        """Price string to int ticks; :class:`OffGridError` if off the tick grid."""
        u = parse_units(repr(px) if isinstance(px, float) else px, self.decimals)
        t, r = divmod(u, self.tick)
        if r:
            raise OffGridError(f"price {px!r} is not a multiple of the tick {units_to_str(self.tick, self.decimals)}")
        return t

    def lots(self, qty: str | float) -> int:
        """Quantity string to int lots; :class:`OffGridError` if off the lot grid."""
        u = parse_units(repr(qty) if isinstance(qty, float) else qty, self.decimals)
        q, r = divmod(u, self.lot)
        if r:
            raise OffGridError(f"quantity {qty!r} is not a multiple of the lot {units_to_str(self.lot, self.decimals)}")
        return q

    def px_str(self, ticks: int) -> str:
        """Canonical decimal string of a price in ticks."""
        return units_to_str(ticks * self.tick, self.decimals)

    def qty_str(self, lots: int) -> str:
        """Canonical decimal string of a quantity in lots."""
        return units_to_str(lots * self.lot, self.decimals)


def top10_sha256(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> str:
    """sha256 (hex) of the top-10 JSON of issue 7: canonical strings, best first, sorted keys, no spaces."""
    doc = {"asks": [list(x) for x in asks[:10]], "bids": [list(x) for x in bids[:10]]}
    return hashlib.sha256(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()).hexdigest()
