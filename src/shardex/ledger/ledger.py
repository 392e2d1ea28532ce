"""The ledger state: balances, positions, margin, hot accounts, and its invariants.

``Ledger`` owns numpy arrays only; every change goes through a batch of
transactions (``Ledger.settle``), so every balance change has an audit record.

>>> led = Ledger(3, ["USDT", "BTC"], [LinearPerp(multiplier=100, im_bps=1000, mm_bps=500)])
>>> led.set_marks([600_000])
>>> res = led.settle(deposit_txns([0, 1], 0, 10_000_000_000))
>>> res.codes.tolist()
[0, 0]
>>> res = led.settle(trade_txns(0, 1, 0, price=600_000, qty=5, taker_fee_bps=5, maker_fee_bps=-1))
>>> led.positions[0, 0].tolist(), led.positions[1, 0].tolist()  # qty lots, cost tick-lots, realized
([5, 3000000, 0], [-5, -3000000, 0])
>>> int(led.fee_pool[0])  # 5 bps taker minus 1 bp maker rebate on 300,000,000 minor units
120000
>>> led.check()
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from shardex.errors import ShardexError
from shardex.instruments import Instrument
from shardex.ledger._kernels import aligned_zeros, remargin_all
from shardex.ledger.margin import (
    INST_CCY,
    INST_COLS,
    INST_IM_BPS,
    INST_KIND,
    INST_MM_BPS,
    INST_MULT,
    KIND_LINEAR,
    KIND_PREMIUM,
    KIND_PREMIUM_OTHER,
    POS_COST,
    POS_QTY,
    bps_ceil,
)
from shardex.ledger.txn import deposit_txns, trade_txns  # noqa: F401  (doctest)

__all__ = ["Ledger", "LedgerInvariantError", "LinearPerp", "PremiumContract"]


class LedgerInvariantError(ShardexError, AssertionError):
    """``Ledger.check`` found the state inconsistent (a bug, never bad input)."""


@dataclass(frozen=True)
class LinearPerp:
    """Margin parameters of one linear perpetual, as the ledger needs them.

    Parameters
    ----------
    multiplier
        Minor units of the margin currency per tick per lot (integer > 0).
    im_bps, mm_bps
        Initial and maintenance margin rates in basis points of the notional.
    """

    multiplier: int
    im_bps: int = 1000
    mm_bps: int = 500

    def __post_init__(self) -> None:
        if self.multiplier <= 0 or not 0 <= self.mm_bps <= self.im_bps <= 10_000:
            raise ValueError(f"need multiplier > 0 and 0 <= mm_bps <= im_bps <= 10000, got {self}")

    @classmethod
    def from_instrument(cls, instrument: Instrument, currency_decimals: int, im_bps: int = 1000, mm_bps: int = 500) -> LinearPerp:
        """Derive the multiplier from an instrument: tick * lot * contract size * 10**decimals.

        Raises ``ValueError`` when that is not a whole number of minor units.
        """
        mult = (
            Decimal(instrument.tick_size)
            * Decimal(instrument.lot_size)
            * Decimal(instrument.contract_size)
            * (Decimal(10) ** currency_decimals)
        )
        if mult != mult.to_integral_value() or mult <= 0:
            raise ValueError(f"{instrument.symbol}: one tick on one lot is {mult} minor units, not a whole number")
        return cls(int(mult), im_bps, mm_bps)


@dataclass(frozen=True)
class PremiumContract:
    """A premium-style instrument (an option), as the ledger needs it.

    Its price is paid in full at the trade: the buyer pays ``price * qty *
    multiplier`` minor units of ``currency`` to the seller; a position is
    worth ``qty * mark * multiplier`` (in the margin currency's equity when
    ``currency`` is the margin currency; otherwise the risk layer values it
    in its own currency).  It carries no margin in the ledger's flat model:
    the risk layer computes the margin of options (``shardex.risk.options``).

    Parameters
    ----------
    multiplier
        Minor units of ``currency`` per tick per lot (integer > 0).
    currency
        Settlement currency, name or index (``None``: the margin currency).
    """

    multiplier: int
    currency: str | int | None = None

    def __post_init__(self) -> None:
        if self.multiplier <= 0:
            raise ValueError(f"need multiplier > 0, got {self}")


class Ledger:
    """Balances in several currencies, perpetual positions, margin and hot accounts.

    Parameters
    ----------
    n_accounts
        Accounts are ``0 .. n_accounts - 1``.
    currencies
        Currency names; balances are int64 minor units of each.
    instruments
        One spec per instrument index: ``LinearPerp`` (settled in
        ``margin_currency``) or ``PremiumContract`` (options, in their own
        settlement currency).
    margin_currency
        Name or index of the collateral currency (cross margin).

    Attributes (numpy arrays, read them, change them only through ``settle``)
    -------------------------------------------------------------------------
    balances : int64 ``[n_accounts, n_currencies]``
    positions : int64 ``[n_accounts, n_instruments, 3]`` -- qty lots, cost tick-lots, realized tick-lots
        (options: cost and realized count the premium; the expiry's cash is in the audit trail)
    margin : int64 ``[n_accounts, 3]`` -- equity, initial, maintenance (margin currency)
    fee_pool, insurance : int64 ``[n_currencies]`` -- the hot accounts
    net_flow : int64 ``[n_currencies]`` -- deposits minus withdrawals so far
    marks : int64 ``[n_instruments]`` -- mark prices, ticks
    """

    def __init__(
        self,
        n_accounts: int,
        currencies: Sequence[str],
        instruments: Sequence[LinearPerp | PremiumContract],
        margin_currency: str | int = 0,
    ) -> None:
        if n_accounts < 1:
            raise ValueError(f"n_accounts must be >= 1, got {n_accounts}")
        if not currencies:
            raise ValueError("need at least one currency")
        self.currencies = tuple(currencies)
        self.mccy = self.currency_index(margin_currency)
        self.specs = tuple(instruments)
        n_ccy, n_inst = len(self.currencies), len(self.specs)
        self.inst = np.zeros((max(n_inst, 0), INST_COLS), np.int64)
        for i, spec in enumerate(self.specs):
            self.inst[i, INST_MULT] = spec.multiplier
            if isinstance(spec, PremiumContract):
                ccy = self.mccy if spec.currency is None else self.currency_index(spec.currency)
                self.inst[i, INST_CCY] = ccy
                self.inst[i, INST_KIND] = KIND_PREMIUM if ccy == self.mccy else KIND_PREMIUM_OTHER
            elif isinstance(spec, LinearPerp):
                self.inst[i, INST_IM_BPS] = spec.im_bps
                self.inst[i, INST_MM_BPS] = spec.mm_bps
                self.inst[i, INST_CCY] = self.mccy
                self.inst[i, INST_KIND] = KIND_LINEAR
            else:
                raise TypeError(f"instrument {i}: need a LinearPerp or a PremiumContract, got {type(spec).__name__}")
        self.balances = np.zeros((n_accounts, n_ccy), np.int64)
        # Aligned so that an account's row (n_instruments * 24 bytes) spans as
        # few cache lines as it can: rows move between the settlement threads.
        self.positions = aligned_zeros(n_accounts * n_inst * 3, np.int64).reshape(n_accounts, n_inst, 3)
        self.margin = np.zeros((n_accounts, 3), np.int64)
        self.fee_pool = np.zeros(n_ccy, np.int64)
        self.insurance = np.zeros(n_ccy, np.int64)
        self.net_flow = np.zeros(n_ccy, np.int64)
        self.marks = np.ones(n_inst, np.int64)

    # -- shape --------------------------------------------------------------
    @property
    def n_accounts(self) -> int:
        """Number of accounts."""
        return self.balances.shape[0]

    @property
    def n_instruments(self) -> int:
        """Number of instruments."""
        return self.positions.shape[1]

    def currency_index(self, currency: str | int) -> int:
        """Index of a currency given by name or index; ``KeyError`` if unknown."""
        if isinstance(currency, (int, np.integer)) and not isinstance(currency, bool):
            if 0 <= currency < len(self.currencies):
                return int(currency)
        elif currency in self.currencies:
            return self.currencies.index(currency)
        raise KeyError(f"unknown currency {currency!r}; the ledger has {self.currencies}")

    # -- marks ----------------------------------------------------------------
    def set_marks(self, marks: Sequence[int] | np.ndarray) -> None:
        """Set every instrument's mark price (ticks, > 0) and recompute all margins.

        Complexity: O(n_accounts * n_instruments).
        """
        arr = np.asarray(marks, dtype=np.int64)
        if arr.shape != self.marks.shape:
            raise ValueError(f"need {self.marks.size} marks, got shape {arr.shape}")
        if (arr <= 0).any():
            raise ValueError("mark prices must be positive ticks")
        self.marks[:] = arr
        remargin_all(self.balances, self.positions, self.margin, self.inst, self.marks, self.mccy)

    # -- settlement -------------------------------------------------------------
    def settle(self, txns: np.ndarray, *, threads: int | None = None, mode: str = "auto", order: str = "row"):
        """Run a batch of ``TXN_DTYPE`` transactions; see ``shardex.ledger.executor.settle``."""
        from shardex.ledger.executor import settle

        return settle(self, txns, threads=threads, mode=mode, order=order)

    # -- identity and invariants ------------------------------------------------------
    def state_arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays that make up the state, in hashing order."""
        return (self.balances, self.positions, self.margin, self.fee_pool, self.insurance, self.net_flow, self.marks)

    def state_hash(self) -> str:
        """SHA-256 (hex) over the bytes of every state array: equal hashes, equal states.

        Complexity: O(size of the state).
        """
        h = hashlib.sha256()
        for arr in self.state_arrays():
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def copy(self) -> Ledger:
        """An independent deep copy (arrays copied)."""
        new = object.__new__(Ledger)
        new.__dict__.update(self.__dict__)
        for name in ("inst", "balances", "margin", "fee_pool", "insurance", "net_flow", "marks"):
            setattr(new, name, getattr(self, name).copy())
        new.positions = aligned_zeros(self.positions.size, np.int64).reshape(self.positions.shape)
        new.positions[...] = self.positions
        return new

    def total_value(self) -> np.ndarray:
        """Per currency: accounts' balances minus linear entry costs, plus fee pool and insurance fund.

        Equivalently the total equity at any common mark, since positions net
        to zero per instrument.  Money conservation says this equals
        ``net_flow`` (deposits minus withdrawals) at all times.  Options
        (premium-style) carry no entry cost here: their premium moved
        between balances at the trade.
        """
        total = self.balances.sum(axis=0) + self.fee_pool + self.insurance
        if self.n_instruments:
            linear = self.inst[:, INST_KIND] == KIND_LINEAR
            cost = self.positions[:, :, POS_COST].sum(axis=0) * self.inst[:, INST_MULT] * linear
            np.subtract.at(total, self.inst[:, INST_CCY], cost)
        return total

    def check(self) -> None:
        """Validate the invariants; raise ``LedgerInvariantError`` on the first broken one.

        * money is conserved: ``total_value() == net_flow`` in every currency
        * every instrument's positions sum to zero lots
        * a flat position carries no entry cost
        * every account's stored margin equals the model's value now

        Complexity: O(n_accounts * n_instruments).
        """
        tv = self.total_value()
        if not np.array_equal(tv, self.net_flow):
            raise LedgerInvariantError(f"money not conserved: total value {tv.tolist()} != net deposits {self.net_flow.tolist()}")
        net = self.positions[:, :, POS_QTY].sum(axis=0)
        if net.any():
            raise LedgerInvariantError(f"positions do not net to zero per instrument: {net.tolist()}")
        flat = self.positions[:, :, POS_QTY] == 0
        if self.positions[:, :, POS_COST][flat].any():
            raise LedgerInvariantError("a flat position has a non-zero entry cost")
        q = self.positions[:, :, POS_QTY]
        kind = self.inst[:, INST_KIND]
        in_equity = kind != KIND_PREMIUM_OTHER
        notional = np.abs(q) * self.marks * self.inst[:, INST_MULT] * in_equity
        cost = self.positions[:, :, POS_COST] * (kind == KIND_LINEAR)
        want = np.stack(
            [
                self.balances[:, self.mccy] + ((q * self.marks - cost) * self.inst[:, INST_MULT] * in_equity).sum(axis=1),
                bps_ceil.py_func(notional, self.inst[:, INST_IM_BPS]).sum(axis=1),  # the kernels' rounding
                bps_ceil.py_func(notional, self.inst[:, INST_MM_BPS]).sum(axis=1),
            ],
            axis=1,
        )
        bad = np.flatnonzero((want != self.margin).any(axis=1))
        if bad.size:
            a = int(bad[0])
            raise LedgerInvariantError(f"account {a}: stored margin {self.margin[a].tolist()} != model {want[a].tolist()}")

