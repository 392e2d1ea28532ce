"""Option instruments and chains: European, cash-settled, linear or inverse.

* **linear** options quote their premium and settle in the quote currency
  (USDT, USDC): payoff ``(F_T - K)^+`` in quote units per contract.
* **inverse** options (Deribit) quote and settle in the coin: payoff
  ``(F_T - K)^+ / F_T`` coins, worth ``V / F`` coins today (``api`` documents
  the Greeks).

A chain is columnar (numpy arrays, one row per listed option), grouped by
underlying, expiry and strike; symbols follow Deribit's ``BTC-26JUN20-8000-C``.
Expiry times are Unix milliseconds (Deribit expires at 08:00 UTC).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

import numpy as np

from shardex.errors import InvalidInstrumentError
from shardex.instruments import Instrument, InstrumentKind, OptionType

__all__ = ["MS_PER_YEAR", "OptionChain", "OptionSpec", "Settlement", "parse_symbol", "year_fraction"]

#: Deribit's (and our) year: 365 days of 86,400,000 ms.
MS_PER_YEAR = 365.0 * 86_400_000.0
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_SYMBOL = re.compile(r"^([A-Z0-9_]+)-(\d{1,2})([A-Z]{3})(\d{2})-(\d+(?:d\d+)?(?:\.\d+)?)-([CP])$")


class Settlement(str, Enum):
    """How the premium is quoted and the option settled."""

    LINEAR = "linear"
    INVERSE = "inverse"


def year_fraction(expiry_ms, now_ms):
    """Years from ``now_ms`` to ``expiry_ms`` (365-day year); arrays broadcast.  O(n)."""
    return (np.asarray(expiry_ms, dtype=np.float64) - np.asarray(now_ms, dtype=np.float64)) / MS_PER_YEAR


def parse_symbol(symbol: str) -> tuple[str, int, float, bool]:
    """``'BTC-26JUN20-8000-C'`` -> ``('BTC', expiry_ms, 8000.0, True)``; expiry at 08:00 UTC.

    Raises ``InvalidInstrumentError`` for anything else.
    """
    m = _SYMBOL.match(symbol)
    if not m or m.group(3) not in _MONTHS:
        raise InvalidInstrumentError(f"not an option symbol of the form BTC-26JUN20-8000-C: {symbol!r}")
    under, day, mon, yy, strike, cp = m.groups()
    expiry = datetime(2000 + int(yy), _MONTHS.index(mon) + 1, int(day), 8, tzinfo=UTC)
    return under, int(expiry.timestamp() * 1000), float(strike.replace("d", ".")), cp == "C"


@dataclass(frozen=True)
class OptionSpec:
    """One listed European option.

    ``expiry_ms`` Unix ms; ``strike`` in the quote currency; ``contract_size``
    in units of the underlying per contract (Deribit BTC: 1).
    """

    underlying: str
    expiry_ms: int
    strike: float
    is_call: bool
    settlement: Settlement = Settlement.INVERSE
    contract_size: float = 1.0

    def __post_init__(self) -> None:
        if not self.strike > 0:
            raise InvalidInstrumentError(f"option strike must be positive, got {self.strike}")
        if not self.contract_size > 0:
            raise InvalidInstrumentError(f"contract size must be positive, got {self.contract_size}")
        object.__setattr__(self, "settlement", Settlement(self.settlement))

    @classmethod
    def from_symbol(cls, symbol: str, settlement: Settlement = Settlement.INVERSE, contract_size: float = 1.0) -> OptionSpec:
        """Parse a Deribit-style symbol."""
        under, expiry, strike, is_call = parse_symbol(symbol)
        return cls(under, expiry, strike, is_call, settlement, contract_size)

    @property
    def symbol(self) -> str:
        """Deribit-style name, e.g. ``BTC-26JUN20-8000-C``."""
        d = datetime.fromtimestamp(self.expiry_ms / 1000, tz=UTC)
        strike = f"{self.strike:g}".replace(".", "d") if self.strike != int(self.strike) else str(int(self.strike))
        return f"{self.underlying}-{d.day}{_MONTHS[d.month - 1]}{d.year % 100:02d}-{strike}-{'C' if self.is_call else 'P'}"

    def time_to_expiry(self, now_ms: int) -> float:
        """Years to expiry (negative once expired)."""
        return float(year_fraction(self.expiry_ms, now_ms))

    def is_expired(self, now_ms: int) -> bool:
        """True from the expiry instant on."""
        return now_ms >= self.expiry_ms

    def payoff(self, settle_price: float) -> float:
        """Settlement value of one contract: quote units (linear) or coins (inverse)."""
        intrinsic = max(settle_price - self.strike, 0.0) if self.is_call else max(self.strike - settle_price, 0.0)
        value = intrinsic * self.contract_size
        return value / settle_price if self.settlement is Settlement.INVERSE else value

    def to_instrument(self, instrument_id: int, tick_size: str = "0.0005", lot_size: str = "0.1",
                      underlying: int | None = None) -> Instrument:
        """The matching engine's ``Instrument`` for this option (Deribit's BTC ticks and lots by default).

        ``underlying``: the id of the instrument whose mark is the option's
        underlying price (``shardex.risk.RiskExchange`` needs it).
        """
        return Instrument(
            id=instrument_id,
            symbol=self.symbol,
            tick_size=tick_size,
            lot_size=lot_size,
            kind=InstrumentKind.OPTION,
            base=self.underlying,
            quote=self.underlying if self.settlement is Settlement.INVERSE else "USDT",
            contract_size=str(self.contract_size),
            expiry_ns=self.expiry_ms * 1_000_000,
            strike=self.strike,
            option_type=OptionType.CALL if self.is_call else OptionType.PUT,
            underlying=underlying,
            inverse=self.settlement is Settlement.INVERSE,
            extra={"strike": self.strike, "is_call": self.is_call, "settlement": self.settlement.value},
        )


class OptionChain:
    """A columnar chain: arrays ``underlying``, ``expiry_ms``, ``strike``, ``is_call``, one row per option.

    Rows are kept sorted by (underlying, expiry, strike, put before call).
    """

    def __init__(self, underlying, expiry_ms, strike, is_call, settlement: Settlement = Settlement.INVERSE,
                 contract_size: float = 1.0) -> None:
        u = np.asarray(underlying, dtype=object)
        e = np.asarray(expiry_ms, dtype=np.int64)
        k = np.asarray(strike, dtype=np.float64)
        c = np.asarray(is_call, dtype=np.bool_)
        if not (u.shape == e.shape == k.shape == c.shape) or u.ndim != 1:
            raise InvalidInstrumentError("chain columns must be 1-D arrays of one length")
        if np.any(~(k > 0)):
            raise InvalidInstrumentError("every strike of a chain must be positive")
        order = np.lexsort((c, k, e, u.astype(str)))
        self.underlying, self.expiry_ms, self.strike, self.is_call = u[order], e[order], k[order], c[order]
        self.settlement = Settlement(settlement)
        self.contract_size = float(contract_size)

    @classmethod
    def list_options(cls, underlying: str, expiries_ms, strikes, settlement: Settlement = Settlement.INVERSE,
                     contract_size: float = 1.0) -> OptionChain:
        """List a call and a put for every (expiry, strike): the usual venue listing.  O(E*S)."""
        e, k = np.meshgrid(np.asarray(expiries_ms, dtype=np.int64), np.asarray(strikes, dtype=np.float64), indexing="ij")
        e, k = np.repeat(e.ravel(), 2), np.repeat(k.ravel(), 2)
        c = np.tile([False, True], e.size // 2)
        return cls(np.full(e.size, underlying, dtype=object), e, k, c, settlement, contract_size)

    @classmethod
    def from_symbols(cls, symbols, settlement: Settlement = Settlement.INVERSE) -> OptionChain:
        """A chain from Deribit-style symbols."""
        parsed = [parse_symbol(s) for s in symbols]
        u, e, k, c = zip(*parsed) if parsed else ((), (), (), ())
        return cls(list(u), list(e), list(k), list(c), settlement)

    def __len__(self) -> int:
        return int(self.strike.size)

    @property
    def symbols(self) -> list[str]:
        """Deribit-style names of every row."""
        return [self.spec(i).symbol for i in range(len(self))]

    def spec(self, i: int) -> OptionSpec:
        """Row ``i`` as an ``OptionSpec``."""
        return OptionSpec(str(self.underlying[i]), int(self.expiry_ms[i]), float(self.strike[i]), bool(self.is_call[i]),
                          self.settlement, self.contract_size)

    def expiries(self, underlying: str | None = None) -> np.ndarray:
        """Distinct expiries (ms), ascending."""
        mask = slice(None) if underlying is None else self.underlying == underlying
        return np.unique(self.expiry_ms[mask])

    def strikes(self, expiry_ms: int, underlying: str | None = None) -> np.ndarray:
        """Distinct strikes listed for one expiry, ascending."""
        mask = self.expiry_ms == expiry_ms
        if underlying is not None:
            mask &= self.underlying == underlying
        return np.unique(self.strike[mask])

    def select(self, mask: np.ndarray) -> OptionChain:
        """The rows where ``mask`` holds."""
        return OptionChain(self.underlying[mask], self.expiry_ms[mask], self.strike[mask], self.is_call[mask],
                           self.settlement, self.contract_size)

    def expire(self, now_ms: int) -> tuple[OptionChain, OptionChain]:
        """Split into (still live, expired at ``now_ms``)."""
        dead = self.expiry_ms <= now_ms
        return self.select(~dead), self.select(dead)

    def time_to_expiry(self, now_ms) -> np.ndarray:
        """Years to expiry for every row (<= 0 once expired)."""
        return year_fraction(self.expiry_ms, now_ms)
