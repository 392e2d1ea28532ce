"""Settlement transactions and audit records: the executor's batch formats.

A batch of settlement work is one numpy structured array of ``TXN_DTYPE``
rows; the executor answers with one reason code per row and an audit trail of
``AUDIT_DTYPE`` rows, one per balance change, in sequence order.

Units: money in integer minor units of the currency (``amount``), prices in
integer ticks, quantities in integer lots, fees in basis points, funding
rates in parts per million.

Transaction layout (``TXN_DTYPE``, 112 bytes)::

    seq            i8    sequence number, copied into the audit trail
    a              i8    the primary account: payer of a transfer, taker of a
                         trade, the account of a deposit, withdrawal, fee,
                         funding or insurance payment, the deleveraged
                         account of an ADL
    b              i8    the secondary account: payee of a transfer, maker of
                         a trade; -1 when unused
    decl           i8[4] the accounts the transaction declares it writes; -1
                         marks an empty slot.  Must contain ``a`` (and ``b``
                         when used), no duplicates, all in range.  An ADL
                         declares a superset found by ``declare_adl``.
    amount         i8    minor units (deposit, withdrawal, transfer, fee,
                         insurance); funding: the rate in ppm (> 0: longs pay)
    price          i8    ticks (trade price, ADL bankruptcy price)
    qty            i8    lots; trade: signed, > 0 when the taker buys;
                         ADL: lots of ``a``'s position to close (> 0)
    ref            i8    trade id or other reference, copied into the audit
    instrument     i4    trade, funding, ADL; spot trade: the base currency
    currency       i4    deposit, withdrawal, transfer, fee, insurance;
                         spot trade: the quote currency
                         (spot trade: ``amount`` quote minor units, ``qty``
                         base minor units signed from the taker, ``price``
                         ticks, fees in bps of ``amount``, paid in quote)
                         (option expiry: ``amount`` / ``price`` is the cash
                         value of one lot, minor units, as a fraction:
                         ``amount`` >= 0 the numerator, ``price`` > 0 the
                         denominator)
    taker_fee_bps  i4    trade: taker fee in bps of the notional
    maker_fee_bps  i4    trade: maker fee in bps (negative: a rebate)
    kind           i4    ``TxnKind``
    flags          i4    ``FLAG_MARGIN_CHECKED`` or 0

Audit layout (``AUDIT_DTYPE``, 56 bytes)::

    seq            i8    of the transaction that caused the change
    txn            i8    the transaction's row in its batch
    account        i8    the account; ``FEE_POOL`` (-1) or ``INSURANCE_FUND`` (-2)
    delta          i8    the change, minor units
    balance_after  i8    the balance right after the change
    ref            i8    the transaction's ``ref`` (trade id)
    currency       i4
    cause          i4    ``AuditCause``
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = [
    "AUDIT_DTYPE",
    "FEE_POOL",
    "INSURANCE_FUND",
    "MAX_AUDIT_PER_TXN",
    "MAX_DECL",
    "TXN_DTYPE",
    "AuditCause",
    "TxnKind",
    "adl_txns",
    "deposit_txns",
    "spot_trade_txns",
    "empty_txns",
    "funding_txns",
    "option_expiry_txns",
    "trade_txns",
    "transfer_txns",
    "withdraw_txns",
]


class TxnKind(IntEnum):
    """What a settlement transaction does (``TXN_DTYPE.kind``)."""

    DEPOSIT = 1  #: credit ``amount`` of ``currency`` to ``a``
    WITHDRAW = 2  #: debit ``amount`` from ``a``; rejected beyond the free balance
    TRANSFER = 3  #: move ``amount`` from ``a`` to ``b``; rejected beyond ``a``'s free balance
    TRADE = 4  #: settle a fill: positions, realized PnL, fees, both accounts' margin
    FEE = 5  #: charge ``amount`` from ``a`` to the fee pool
    FUNDING = 6  #: perpetual funding between ``a`` and the insurance fund
    ADL = 7  #: auto-deleverage ``a`` against the most profitable opposite positions
    INSURANCE = 8  #: ``a`` pays ``amount`` to the insurance fund (negative: receives)
    SPOT_TRADE = 9  #: exchange ``qty`` base for ``amount`` quote between ``a`` (taker) and ``b``; fees in quote
    OPTION_EXPIRY = 10  #: close ``a``'s option position in cash against the insurance fund (see the builder)


class AuditCause(IntEnum):
    """Why a balance changed (``AUDIT_DTYPE.cause``)."""

    DEPOSIT = 1
    WITHDRAWAL = 2
    TRANSFER = 3
    TRADE_PNL = 4
    TRADE_FEE = 5
    FEE = 6
    FUNDING = 7
    ADL_PNL = 8
    INSURANCE = 9
    SPOT_TRADE = 10
    OPTION_PREMIUM = 11
    OPTION_EXPIRY = 12


#: ``AUDIT_DTYPE.account`` of the fee pool (a hot account, one per currency).
FEE_POOL = -1
#: ``AUDIT_DTYPE.account`` of the insurance fund (a hot account, one per currency).
INSURANCE_FUND = -2
#: Account slots in ``TXN_DTYPE.decl``.
MAX_DECL = 4
#: Audit slots reserved per transaction (a trade writes at most six records:
#: PnL and fee for each side plus the two fee-pool legs; an ADL at most six).
MAX_AUDIT_PER_TXN = 6

#: ``flags`` of a withdrawal or transfer whose margin the caller has already
#: checked under its own model (the risk layer's tiers with open orders, or
#: portfolio margin): the ledger then checks only that the balance covers it,
#: instead of its flat-rate margin, which may disagree with the caller's.
FLAG_MARGIN_CHECKED = 1

TXN_DTYPE = np.dtype(
    [
        ("seq", "<i8"),
        ("a", "<i8"),
        ("b", "<i8"),
        ("decl", "<i8", (MAX_DECL,)),
        ("amount", "<i8"),
        ("price", "<i8"),
        ("qty", "<i8"),
        ("ref", "<i8"),
        ("instrument", "<i4"),
        ("currency", "<i4"),
        ("taker_fee_bps", "<i4"),
        ("maker_fee_bps", "<i4"),
        ("kind", "<i4"),
        ("flags", "<i4"),
    ]
)

AUDIT_DTYPE = np.dtype(
    [
        ("seq", "<i8"),
        ("txn", "<i8"),
        ("account", "<i8"),
        ("delta", "<i8"),
        ("balance_after", "<i8"),
        ("ref", "<i8"),
        ("currency", "<i4"),
        ("cause", "<i4"),
    ]
)

assert TXN_DTYPE.itemsize == 112
assert AUDIT_DTYPE.itemsize == 56


def empty_txns(n: int) -> np.ndarray:
    """Return ``n`` zeroed transactions with ``b`` and every ``decl`` slot at -1.

    Complexity: O(n).
    """
    txns = np.zeros(n, TXN_DTYPE)
    txns["b"] = -1
    txns["decl"] = -1
    return txns


def _seq(seq, n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) if seq is None else np.broadcast_to(np.asarray(seq, np.int64), (n,))


def _one_account(kind: TxnKind, account, currency, amount, seq) -> np.ndarray:
    account = np.atleast_1d(np.asarray(account, np.int64))
    txns = empty_txns(account.size)
    txns["kind"] = kind
    txns["seq"] = _seq(seq, account.size)
    txns["a"] = account
    txns["decl"][:, 0] = account
    txns["currency"] = currency
    txns["amount"] = amount
    return txns


def deposit_txns(account, currency, amount, seq=None) -> np.ndarray:
    """Build deposits: credit ``amount`` minor units of ``currency`` to ``account``.

    Arguments broadcast against ``account`` (an int or an array); ``seq``
    defaults to 0, 1, 2, ...  The declaration is filled in.
    """
    return _one_account(TxnKind.DEPOSIT, account, currency, amount, seq)


def withdraw_txns(account, currency, amount, seq=None) -> np.ndarray:
    """Build withdrawals of ``amount`` minor units; see ``deposit_txns``."""
    return _one_account(TxnKind.WITHDRAW, account, currency, amount, seq)


def transfer_txns(src, dst, currency, amount, seq=None) -> np.ndarray:
    """Build transfers of ``amount`` minor units of ``currency`` from ``src`` to ``dst``."""
    src = np.atleast_1d(np.asarray(src, np.int64))
    txns = _one_account(TxnKind.TRANSFER, src, currency, amount, seq)
    dst = np.broadcast_to(np.asarray(dst, np.int64), src.shape)
    txns["b"] = dst
    txns["decl"][:, 1] = dst
    return txns


def trade_txns(
    taker, maker, instrument, price, qty, taker_fee_bps=0, maker_fee_bps=0, trade_id=0, seq=None
) -> np.ndarray:
    """Build trade settlements, one per fill: the engine's entry point.

    Parameters
    ----------
    taker, maker
        Account ids of the two sides.
    instrument
        Instrument index in the ledger's instrument table.
    price
        Trade price in ticks (> 0).
    qty
        Lots, signed from the taker's side: > 0 when the taker buys.
    taker_fee_bps, maker_fee_bps
        Fee rates in basis points of the notional; a negative maker fee is a
        rebate paid from the fee pool.
    trade_id
        Copied to ``ref`` and to every audit record of the fill.
    seq
        Sequence numbers (default 0, 1, 2, ...).

    All arguments broadcast against ``taker``.  Complexity: O(n).
    """
    txns = _fills(TxnKind.TRADE, taker, maker, taker_fee_bps, maker_fee_bps, trade_id, seq)
    txns["instrument"] = instrument
    txns["price"] = price
    txns["qty"] = qty
    return txns


def funding_txns(account, instrument, rate_ppm, seq=None) -> np.ndarray:
    """Build funding payments: ``account`` pays ``qty * mark * multiplier * rate_ppm / 1e6``.

    A positive rate makes longs pay and shorts receive; the insurance fund is
    the counterparty of every payment (it clears funding and keeps the
    rounding residue).
    """
    account = np.atleast_1d(np.asarray(account, np.int64))
    txns = _one_account(TxnKind.FUNDING, account, 0, rate_ppm, seq)
    txns["instrument"] = instrument
    return txns


def adl_txns(account, instrument, price, qty, seq=None) -> np.ndarray:
    """Build auto-deleveraging transactions; declare their accounts with ``declare_adl``.

    Each closes up to ``qty`` lots of ``account``'s position in ``instrument``
    at ``price`` ticks against the most profitable opposite positions (at
    most ``MAX_DECL - 1`` of them).  Only ``account`` is declared here.
    """
    account = np.atleast_1d(np.asarray(account, np.int64))
    txns = _one_account(TxnKind.ADL, account, 0, 0, seq)
    txns["instrument"] = instrument
    txns["price"] = price
    txns["qty"] = qty
    return txns


def spot_trade_txns(
    taker, maker, base, quote, base_amount, quote_amount, price, taker_fee_bps=0, maker_fee_bps=0, trade_id=0, seq=None
) -> np.ndarray:
    """Build spot fills: ``base_amount`` of currency ``base`` against ``quote_amount`` of ``quote``.

    Parameters
    ----------
    taker, maker
        Account ids of the two sides (distinct).
    base, quote
        Currency indices.
    base_amount
        Base minor units, signed from the taker's side: > 0 when the taker buys.
    quote_amount
        Quote minor units paid by the buyer to the seller (> 0).
    price
        Trade price in ticks (> 0), kept for the record.
    taker_fee_bps, maker_fee_bps
        Fees in bps of ``quote_amount``, charged in quote (truncated toward
        zero; a negative maker fee is a rebate from the fee pool).
    trade_id, seq
        Copied to ``ref`` / ``seq`` (``seq`` defaults to 0, 1, 2, ...).

    All arguments broadcast against ``taker``.  Complexity: O(n).
    """
    txns = _fills(TxnKind.SPOT_TRADE, taker, maker, taker_fee_bps, maker_fee_bps, trade_id, seq)
    txns["instrument"] = base
    txns["currency"] = quote
    txns["qty"] = base_amount
    txns["amount"] = quote_amount
    txns["price"] = price
    return txns


def option_expiry_txns(account, instrument, value_num, value_den=1, seq=None) -> np.ndarray:
    """Build option expiries: close ``account``'s position in ``instrument`` in cash.

    One lot is worth ``value_num / value_den`` minor units of the option's
    settlement currency at expiry (its intrinsic value; ``value_num >= 0``,
    ``value_den > 0``).  A position of ``q`` lots is credited
    ``floor(q * value_num / value_den)``: a long receives its value rounded
    down, a short pays its value rounded up.  The insurance fund is the
    counterparty of every payment: once all positions of the instrument are
    closed it has paid the longs and collected from the shorts, and keeps
    the rounding residue (``>= 0``; 0 when ``value_den`` divides every
    payment exactly, as for linear options).  The position's quantity and
    entry cost go to zero.  Only premium-style instruments (options) may
    expire this way (``INVALID_COMMAND`` otherwise).

    Arguments broadcast against ``account``.  Complexity: O(n).
    """
    account = np.atleast_1d(np.asarray(account, np.int64))
    txns = _one_account(TxnKind.OPTION_EXPIRY, account, 0, value_num, seq)
    txns["instrument"] = instrument
    txns["price"] = value_den
    return txns


def _fills(kind, taker, maker, taker_fee_bps, maker_fee_bps, trade_id, seq) -> np.ndarray:
    """Fill rows between ``taker`` (``a``) and ``maker`` (``b``): both declared, fees, ``ref``."""
    taker = np.atleast_1d(np.asarray(taker, np.int64))
    n = taker.size
    txns = empty_txns(n)
    txns["kind"] = kind
    txns["seq"] = _seq(seq, n)
    txns["a"] = taker
    txns["b"] = maker
    txns["decl"][:, 0] = taker
    txns["decl"][:, 1] = maker
    txns["taker_fee_bps"] = taker_fee_bps
    txns["maker_fee_bps"] = maker_fee_bps
    txns["ref"] = trade_id
    return txns
