"""Random ledgers and transaction batches for the settlement property tests.

Batches are generated with numpy from a seed that hypothesis draws, so a
10,000-row batch costs microseconds to build and shrinks to a seed.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from shardex.ledger import (
    TXN_DTYPE,
    Ledger,
    LinearPerp,
    PremiumContract,
    TxnKind,
    deposit_txns,
)

N_INST = 6
CURRENCIES = ("USDT", "BTC")
MARK = 20_000  # ticks
#: four linear perpetuals and two options (premium paid at the trade): one in USDT, one inverse in BTC
SPECS = [LinearPerp(multiplier=10, im_bps=1000, mm_bps=500), LinearPerp(multiplier=3, im_bps=500, mm_bps=200)] * 2 + [
    PremiumContract(multiplier=7), PremiumContract(multiplier=5, currency="BTC")]

#: Kinds in a random batch and their weights (ADLs are added separately).
KIND_WEIGHTS = {
    TxnKind.TRADE: 8,
    TxnKind.TRANSFER: 4,
    TxnKind.DEPOSIT: 1,
    TxnKind.WITHDRAW: 2,
    TxnKind.FEE: 1,
    TxnKind.FUNDING: 1,
    TxnKind.INSURANCE: 1,
}

# Contention from 2 to 10,000 accounts, small counts drawn more often.
accounts = st.one_of(st.integers(2, 12), st.integers(13, 200), st.integers(201, 10_000))
txn_counts = st.one_of(st.integers(0, 50), st.integers(51, 2_000), st.integers(2_001, 10_000))
threads = st.integers(1, 4)
seeds = st.integers(0, 2**32 - 1)


def funded_ledger(n_accounts: int, seed: int = 0) -> Ledger:
    """A ledger whose accounts hold USDT and BTC and some open positions."""
    led = Ledger(n_accounts, CURRENCIES, SPECS, margin_currency="USDT")
    led.set_marks(np.full(N_INST, MARK))
    rng = np.random.default_rng(seed)
    led.settle(deposit_txns(np.arange(n_accounts), 0, rng.integers(10**6, 10**9, n_accounts)), threads=1)
    led.settle(deposit_txns(np.arange(n_accounts), 1, rng.integers(0, 10**6, n_accounts)), threads=1)
    return led


def random_batch(rng: np.random.Generator, n_accounts: int, n: int) -> np.ndarray:
    """``n`` random valid transactions over ``n_accounts`` accounts (rows in seq order)."""
    kinds = np.array(list(KIND_WEIGHTS), np.int32)
    w = np.array(list(KIND_WEIGHTS.values()), float)
    txns = np.zeros(n, TXN_DTYPE)
    txns["seq"] = np.arange(n) + 1000
    txns["kind"] = rng.choice(kinds, n, p=w / w.sum())
    a = rng.integers(0, n_accounts, n)
    b = rng.integers(0, n_accounts - 1, n)
    b = np.where(b >= a, b + 1, b)  # b != a
    two = np.isin(txns["kind"], [TxnKind.TRADE, TxnKind.TRANSFER])
    txns["a"] = a
    txns["b"] = np.where(two, b, -1)
    txns["decl"] = -1
    txns["decl"][:, 0] = a
    txns["decl"][:, 1] = np.where(two, b, -1)
    # Some declarations name an extra account: a superset is legal.
    extra = rng.random(n) < 0.05
    c = rng.integers(0, n_accounts, n)
    txns["decl"][:, 2] = np.where(extra & (c != a) & (c != b), c, -1)
    txns["currency"] = rng.integers(0, len(CURRENCIES), n)
    txns["instrument"] = rng.integers(0, N_INST, n)
    txns["price"] = MARK + rng.integers(-2_000, 2_000, n)
    txns["qty"] = rng.integers(1, 60, n) * rng.choice([-1, 1], n)
    txns["taker_fee_bps"] = rng.integers(0, 8, n)
    txns["maker_fee_bps"] = rng.integers(-2, 4, n)
    txns["ref"] = np.arange(n) + 1
    # Amounts around typical balances, so some withdrawals and transfers bounce.
    amount = rng.integers(1, 10**6, n) * np.where(rng.random(n) < 0.2, 1000, 1)
    txns["amount"] = amount
    ins = txns["kind"] == TxnKind.INSURANCE
    txns["amount"][ins] = rng.integers(-10**5, 10**5, ins.sum())
    fund = txns["kind"] == TxnKind.FUNDING
    txns["amount"][fund] = rng.integers(-500, 500, fund.sum())  # ppm
    return txns
