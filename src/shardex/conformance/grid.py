"""Decimal <-> integer translation between tracebook's float world and shardex's grids.

tracebook carries prices and quantities as binary floats and writes them out
as canonical decimal strings; shardex works in integer ticks and lots.  These
helpers are the only place where the two meet, so every rounding rule of the
adapter lives here.

>>> canonical(Decimal("100.00"))
'100'
>>> snap_to_tick(100.004, 0.01), snap_to_tick(0.004, 0.01)
(10000, 0)
>>> to_units(0.5, Decimal("0.001"))
500
>>> to_units(0.0005, Decimal("0.001")) is None
True
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from numbers import Integral, Real

__all__ = [
    "MAX_ORDER_LOTS",
    "canonical",
    "exact_decimal",
    "lot_size_for",
    "snap_to_tick",
    "to_units",
]

#: Largest order size in lots the adapter sends: 1e17 leaves room for ~90 such
#: orders on one level before an int64 level total could overflow.
MAX_ORDER_LOTS = 10**17


def exact_decimal(value: object) -> Decimal | None:
    """The decimal a JSON number means, or ``None`` if it is not a finite number.

    Floats go through ``repr`` so that ``0.1`` is the decimal 0.1, the same
    value tracebook's canonical output prints for it.
    """
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, Integral):
            dec = Decimal(int(value))
        elif isinstance(value, Real):
            dec = Decimal(repr(float(value)))
        elif isinstance(value, str):
            dec = Decimal(value.strip())
        else:
            return None
    except (InvalidOperation, ValueError, OverflowError):
        return None
    return dec if dec.is_finite() else None


def canonical(value: Decimal) -> str:
    """tracebook's canonical decimal string: no exponent, no trailing zeros, ``"0"`` for zero."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def snap_to_tick(price: float, tick_size: float) -> int:
    """The tick tracebook snaps ``price`` to: nearest tick, ties to even.

    This is deliberately float arithmetic (``round(price / tick_size)``): a
    conforming candidate must put ``100.005`` on the same tick as the
    reference, and the reference divides floats.
    """
    return int(round(float(price) / float(tick_size)))


def to_units(value: object, step: Decimal) -> int | None:
    """``value`` as a whole number of ``step``; ``None`` when it is off that grid or not finite."""
    dec = exact_decimal(value)
    if dec is None:
        return None
    units, rest = divmod(dec, step)
    if rest != 0:
        return None
    return int(units)


def lot_size_for(quantity_decimal_places: int) -> Decimal:
    """The lot size of an adapter instrument: ``10**-quantity_decimal_places``.

    tracebook prints quantities rounded to ``quantity_decimal_places``, so a
    lot of exactly that size represents every value it can print.
    """
    if not 0 <= quantity_decimal_places <= 18:
        raise ValueError(f"quantity_decimal_places must be between 0 and 18, got {quantity_decimal_places}")
    return Decimal(1).scaleb(-quantity_decimal_places)


def is_positive_finite(value: object) -> bool:
    """Whether ``value`` is a real, finite, strictly positive number (bools excluded)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return False
    return math.isfinite(float(value)) and float(value) > 0
