"""Instrument specifications and the decimal <-> integer conversions at the edges.

Inside the engine a price is an integer number of ticks and a quantity an
integer number of lots.  ``Instrument`` owns the grid: it converts decimals
from users and files to integers, and refuses values that are not on the grid
instead of rounding them.

>>> btc = Instrument(0, "BTC-PERP", tick_size="0.5", lot_size="0.001")
>>> btc.price_to_ticks("61800.5")
123601
>>> str(btc.ticks_to_price(123601))
'61800.5'
>>> btc.qty_to_lots("0.0015")
Traceback (most recent call last):
...
shardex.errors.OffGridError: quantity 0.0015 is not a multiple of the lot size 0.001 of BTC-PERP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import IntEnum

import numpy as np

from shardex.errors import InvalidInstrumentError, OffGridError

__all__ = ["Instrument", "InstrumentKind", "Matching", "OptionType", "to_decimal", "INSTRUMENT_DTYPE"]

_INT64_MAX = np.iinfo(np.int64).max


class InstrumentKind(IntEnum):
    """What an instrument is; the risk layer treats each differently."""

    SPOT = 0
    PERPETUAL = 1
    FUTURE = 2
    OPTION = 3


class OptionType(IntEnum):
    """Call or put (the values of ``shardex.options.portfolio.CALL`` / ``PUT``)."""

    CALL = 0
    PUT = 1

    @classmethod
    def parse(cls, value: object) -> OptionType:
        """``OptionType``, its int value, or ``"call"``/``"put"``/``"C"``/``"P"`` (any case)."""
        if isinstance(value, str):
            key = value.strip().upper()
            if key in ("C", "CALL"):
                return cls.CALL
            if key in ("P", "PUT"):
                return cls.PUT
            raise InvalidInstrumentError(f"option_type must be 'call' or 'put', got {value!r}")
        try:
            return cls(value)
        except ValueError:
            raise InvalidInstrumentError(f"option_type must be OptionType.CALL or PUT, got {value!r}") from None


class Matching(IntEnum):
    """How a price level shares an incoming order among its resting orders."""

    FIFO = 0
    PRO_RATA = 1


# The per-instrument rules the matching kernels read, one row per instrument.
INSTRUMENT_DTYPE = np.dtype(
    [
        ("min_qty", "<i8"),
        ("max_qty", "<i8"),
        ("min_price", "<i8"),
        ("max_price", "<i8"),
        ("matching", "<i8"),
        ("listed", "<i8"),
    ]
)


def _plain(value: Decimal) -> Decimal:
    """``value`` without trailing zeros and without exponent (105000, not 1.05E+5)."""
    return Decimal(format(value.normalize(), "f"))


def to_decimal(value: object, what: str = "value") -> Decimal:
    """Convert a user value (str, int, Decimal or float) to an exact Decimal.

    Floats go through ``repr`` so that ``0.1`` means the decimal 0.1, not the
    binary fraction nearest to it.
    """
    if isinstance(value, Decimal):
        dec = value
    elif isinstance(value, bool):
        raise TypeError(f"{what} must be a number, not a bool")
    elif isinstance(value, (int, str)):
        try:
            dec = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            raise ValueError(f"{what} {value!r} is not a decimal number") from None
    elif isinstance(value, float):
        dec = Decimal(repr(value))
    else:
        raise TypeError(f"{what} must be a str, int, float or Decimal, not {type(value).__name__}")
    if not dec.is_finite():
        raise ValueError(f"{what} {value!r} is not finite")
    return dec


@dataclass(frozen=True)
class Instrument:
    """One tradable instrument: its grid, its limits and how it matches.

    Parameters
    ----------
    id
        Integer id used in commands and events (``COMMAND_DTYPE.instrument``).
    symbol
        Human name, e.g. ``"BTC-PERP"``.
    tick_size, lot_size
        Price and quantity increments, as decimals.  Every price inside the
        engine is a whole number of ticks, every quantity a whole number of lots.
    min_qty, max_qty
        Order size limits in lots (``max_qty=None``: no limit).
    min_price, max_price
        Price band in ticks; orders outside it are rejected.
    matching
        ``Matching.FIFO`` (price-time) or ``Matching.PRO_RATA``.
    kind, base, quote, contract_size
        Descriptive fields the risk layer uses: what is traded and in which
        currencies; ``contract_size`` is the base amount of one lot's unit.
    expiry_ns
        Expiry of a dated future or an option, ns since the epoch (0: none).
    strike, option_type, underlying
        Options only (``kind=InstrumentKind.OPTION``): the strike price as a
        decimal in the underlying's price unit (e.g. USD), ``OptionType.CALL``
        or ``PUT`` (or ``"call"``/``"put"``), and the id of the instrument
        whose mark price is the option's underlying price.  Given together
        (strike and type) or not at all; the matching engine ignores them,
        ``shardex.risk.RiskExchange`` needs all three and ``expiry_ns``.
    inverse
        Premium quoted and settled in the coin (``base``, e.g. BTC, as on
        Deribit) instead of the quote currency.  Not for spot.

    >>> c = Instrument(2, "BTC-28JUN24-70000-C", tick_size="0.0005", lot_size="0.1", kind=InstrumentKind.OPTION,
    ...                base="BTC", strike="70000", option_type="call", underlying=0, inverse=True)
    >>> c.option_type.name, c.strike, c.is_option
    ('CALL', Decimal('70000'), True)
    """

    id: int
    symbol: str
    tick_size: Decimal | str | int = "1"
    lot_size: Decimal | str | int = "1"
    min_qty: int = 1
    max_qty: int | None = None
    min_price: int = 1
    max_price: int | None = None
    matching: Matching = Matching.FIFO
    kind: InstrumentKind = InstrumentKind.SPOT
    base: str = ""
    quote: str = ""
    contract_size: Decimal | str | int = "1"
    expiry_ns: int = 0
    strike: Decimal | str | int | None = None
    option_type: OptionType | str | int | None = None
    underlying: int | None = None
    inverse: bool = False
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, (int, np.integer)) or not 0 <= self.id < 2**31:
            raise InvalidInstrumentError(f"instrument id must be an integer in [0, 2**31), got {self.id!r}")
        if not self.symbol:
            raise InvalidInstrumentError("instrument symbol must be a non-empty string")
        for name in ("tick_size", "lot_size", "contract_size"):
            dec = to_decimal(getattr(self, name), name)
            if dec <= 0:
                raise InvalidInstrumentError(f"{name} of {self.symbol} must be positive, got {dec}")
            object.__setattr__(self, name, dec)
        object.__setattr__(self, "matching", Matching(self.matching))
        object.__setattr__(self, "kind", InstrumentKind(self.kind))
        if self.min_qty < 1:
            raise InvalidInstrumentError(f"min_qty of {self.symbol} must be at least 1 lot")
        if self.max_qty is not None and self.max_qty < self.min_qty:
            raise InvalidInstrumentError(f"max_qty of {self.symbol} is below its min_qty")
        if self.min_price < 1:
            raise InvalidInstrumentError(f"min_price of {self.symbol} must be at least 1 tick")
        if self.max_price is not None and self.max_price < self.min_price:
            raise InvalidInstrumentError(f"max_price of {self.symbol} is below its min_price")
        self._check_option_fields()

    def _check_option_fields(self) -> None:
        if isinstance(self.expiry_ns, bool) or not isinstance(self.expiry_ns, (int, np.integer)) or self.expiry_ns < 0:
            raise InvalidInstrumentError(f"expiry_ns of {self.symbol} must be an integer >= 0, got {self.expiry_ns!r}")
        if not isinstance(self.inverse, (bool, np.bool_)) and self.inverse not in (0, 1):
            raise InvalidInstrumentError(f"inverse of {self.symbol} must be a bool, got {self.inverse!r}")
        object.__setattr__(self, "inverse", bool(self.inverse))
        if self.inverse and self.kind == InstrumentKind.SPOT:
            raise InvalidInstrumentError(f"{self.symbol}: a spot instrument cannot be inverse")
        named = [n for n in ("strike", "option_type", "underlying") if getattr(self, n) is not None]
        if self.kind != InstrumentKind.OPTION:
            if named:
                raise InvalidInstrumentError(f"{self.symbol}: {', '.join(named)} only apply to options, "
                                             f"not to {self.kind.name}")
            return
        if (self.strike is None) != (self.option_type is None):
            raise InvalidInstrumentError(f"option {self.symbol}: give strike and option_type together")
        if self.strike is not None:
            strike = to_decimal(self.strike, "strike")
            if strike <= 0:
                raise InvalidInstrumentError(f"strike of {self.symbol} must be positive, got {strike}")
            object.__setattr__(self, "strike", strike)
            object.__setattr__(self, "option_type", OptionType.parse(self.option_type))
        u = self.underlying
        if u is not None:
            if isinstance(u, bool) or not isinstance(u, (int, np.integer)) or not 0 <= u < 2**31 or u == self.id:
                raise InvalidInstrumentError(f"underlying of {self.symbol} must be another instrument's id, got {u!r}")
            object.__setattr__(self, "underlying", int(u))

    @property
    def is_option(self) -> bool:
        """Whether this is an option with its strike and type given."""
        return self.kind == InstrumentKind.OPTION and self.strike is not None

    # -- conversions ---------------------------------------------------------
    def price_to_ticks(self, price: object) -> int:
        """Convert a decimal price to ticks; raise ``OffGridError`` if off the grid."""
        return self._to_units(price, self.tick_size, "price")

    def qty_to_lots(self, qty: object) -> int:
        """Convert a decimal quantity to lots; raise ``OffGridError`` if off the grid."""
        return self._to_units(qty, self.lot_size, "quantity")

    def ticks_to_price(self, ticks: int) -> Decimal:
        """Convert ticks back to the decimal price."""
        return _plain(int(ticks) * self.tick_size)

    def lots_to_qty(self, lots: int) -> Decimal:
        """Convert lots back to the decimal quantity."""
        return _plain(int(lots) * self.lot_size)

    def _to_units(self, value: object, step: Decimal, what: str) -> int:
        dec = to_decimal(value, what)
        units, rest = divmod(dec, step)
        if rest != 0:
            size = "tick size" if what == "price" else "lot size"
            raise OffGridError(f"{what} {dec} is not a multiple of the {size} {step.normalize()} of {self.symbol}")
        return int(units)

    def rules_row(self) -> tuple:
        """The row of ``INSTRUMENT_DTYPE`` the matching kernels enforce."""
        return (
            self.min_qty,
            _INT64_MAX if self.max_qty is None else self.max_qty,
            self.min_price,
            _INT64_MAX if self.max_price is None else self.max_price,
            int(self.matching),
            1,
        )
