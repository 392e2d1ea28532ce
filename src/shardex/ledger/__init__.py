"""Balances, positions, fees, funding and the parallel settlement executor.

The engine settles a batch of fills by building ``TXN_DTYPE`` rows
(``trade_txns``) and calling ``Ledger.settle`` (or ``settle``); the result is
the same for any number of threads.  See docs/settlement.md.
"""

from shardex.ledger.executor import MIN_TXNS_PER_LEVEL, SettlementResult, declare_adl, schedule, settle
from shardex.ledger.ledger import Ledger, LedgerInvariantError, LinearPerp, PremiumContract
from shardex.ledger.margin import linear_margin
from shardex.ledger.txn import (
    AUDIT_DTYPE,
    FEE_POOL,
    INSURANCE_FUND,
    MAX_AUDIT_PER_TXN,
    MAX_DECL,
    TXN_DTYPE,
    AuditCause,
    TxnKind,
    adl_txns,
    deposit_txns,
    empty_txns,
    funding_txns,
    option_expiry_txns,
    trade_txns,
    transfer_txns,
    withdraw_txns,
)

__all__ = [
    "AUDIT_DTYPE",
    "FEE_POOL",
    "INSURANCE_FUND",
    "MAX_AUDIT_PER_TXN",
    "MAX_DECL",
    "MIN_TXNS_PER_LEVEL",
    "TXN_DTYPE",
    "AuditCause",
    "Ledger",
    "LedgerInvariantError",
    "LinearPerp",
    "PremiumContract",
    "SettlementResult",
    "TxnKind",
    "adl_txns",
    "declare_adl",
    "deposit_txns",
    "empty_txns",
    "funding_txns",
    "linear_margin",
    "option_expiry_txns",
    "schedule",
    "settle",
    "trade_txns",
    "transfer_txns",
    "withdraw_txns",
]
