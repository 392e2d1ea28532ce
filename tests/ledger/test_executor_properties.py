"""Property tests of the parallel settlement executor.

For random batches at every contention level (2 to 10,000 accounts, 0 to
10,000 transactions, 1 to 4 threads): parallel settlement equals sequential
settlement exactly (state hash, audit trail, reason codes); no level holds two
transactions declaring one account; malformed declarations are rejected and
change nothing; money is conserved.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_strategies import accounts, funded_ledger, random_batch, seeds, threads, txn_counts

from shardex.ledger import AUDIT_DTYPE, schedule, settle
from shardex.schema import Reason

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run_both(n_accounts: int, n_txns: int, n_threads: int, seed: int, mode: str):
    rng = np.random.default_rng(seed)
    base = funded_ledger(n_accounts, seed)
    txns = random_batch(rng, n_accounts, n_txns)
    seq, par = base.copy(), base.copy()
    rs = settle(seq, txns, mode="sequential")
    rp = settle(par, txns, threads=n_threads, mode=mode)
    return seq, par, rs, rp


def _assert_same(seq, par, rs, rp):
    assert np.array_equal(rs.codes, rp.codes)
    assert rs.audit.dtype == AUDIT_DTYPE and np.array_equal(rs.audit, rp.audit)
    assert seq.state_hash() == par.state_hash()
    seq.check()
    par.check()


@PROPS
@given(accounts, txn_counts, threads, seeds)
def test_auto_mode_equals_sequential(n_accounts, n_txns, n_threads, seed):
    """The executor as the engine calls it, over the whole contention range."""
    _assert_same(*_run_both(n_accounts, n_txns, n_threads, seed, "auto"))


@PROPS
@given(st.data(), threads, seeds)
def test_forced_parallel_equals_sequential(data, n_threads, seed):
    """The threads run even where the fallback would not use them.

    Narrow batches (few accounts) make every transaction wait for the one
    before on another thread, the hardest case for the synchronization; they
    are kept short because each hand-off costs a context switch when the
    threads outnumber the cores.
    """
    n_accounts = data.draw(accounts)
    cap = 300 if n_accounts < 50 else 10_000
    n_txns = data.draw(st.integers(0, cap))
    order = data.draw(st.sampled_from(["row", "level"]))
    rng = np.random.default_rng(seed)
    base = funded_ledger(n_accounts, seed)
    txns = random_batch(rng, n_accounts, n_txns)
    seq, par = base.copy(), base.copy()
    rs = settle(seq, txns, mode="sequential")
    rp = settle(par, txns, threads=max(n_threads, 2), mode="parallel", order=order)
    assert rp.mode == "parallel" or n_txns == 0
    _assert_same(seq, par, rs, rp)


def test_repeated_runs_shake_out_races():
    """The same contended batch, 4 threads, many times: always the sequential answer."""
    n_accounts, n_txns = 60, 3_000
    base = funded_ledger(n_accounts, 7)
    txns = random_batch(np.random.default_rng(7), n_accounts, n_txns)
    ref = base.copy()
    rs = settle(ref, txns, mode="sequential")
    for i in range(12):
        par = base.copy()
        rp = settle(par, txns, threads=2 + i % 3, mode="parallel")
        assert par.state_hash() == ref.state_hash()
        assert np.array_equal(rp.audit, rs.audit)
        assert np.array_equal(rp.codes, rs.codes)


@PROPS
@given(accounts, txn_counts, seeds)
def test_no_level_holds_two_writers_of_one_account(n_accounts, n_txns, seed):
    led = funded_ledger(n_accounts, 0)
    txns = random_batch(np.random.default_rng(seed), n_accounts, n_txns)
    codes, level = schedule(led, txns)
    ok = codes == 0
    assert (level[ok] >= 1).all() and (level[~ok] == 0).all()
    lv = np.repeat(level, txns["decl"].shape[1])
    acct = txns["decl"].ravel()
    keep = (lv > 0) & (acct >= 0)
    pairs = lv[keep] * (n_accounts + 1) + acct[keep]
    assert np.unique(pairs).size == pairs.size


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 30), st.integers(0, 60), seeds)
def test_levels_are_one_more_than_the_latest_conflict(n_accounts, n_txns, seed):
    """Compare with a direct transcription of the rule (no ADLs here)."""
    led = funded_ledger(n_accounts, 0)
    txns = random_batch(np.random.default_rng(seed), n_accounts, n_txns)
    _codes, level = schedule(led, txns)
    for t in range(n_txns):
        mine = {int(d) for d in txns["decl"][t] if d >= 0}
        earlier = [int(level[u]) for u in range(t) if mine & {int(d) for d in txns["decl"][u] if d >= 0}]
        assert level[t] == 1 + max(earlier, default=0)


MALFORMED = {
    "out_of_range": Reason.UNKNOWN_ACCOUNT,
    "negative": Reason.UNKNOWN_ACCOUNT,
    "duplicate": Reason.MALFORMED_DECLARATION,
    "undeclared_a": Reason.MALFORMED_DECLARATION,
    "undeclared_b": Reason.MALFORMED_DECLARATION,
}


@settings(max_examples=30, deadline=None)
@given(accounts, st.integers(1, 3_000), threads, seeds, st.sampled_from(sorted(MALFORMED)))
def test_malformed_declarations_are_rejected_and_change_nothing(n_accounts, n_txns, n_threads, seed, how):
    rng = np.random.default_rng(seed)
    base = funded_ledger(n_accounts, 1)
    txns = random_batch(rng, n_accounts, n_txns)
    bad = rng.random(n_txns) < 0.1
    bad[rng.integers(0, n_txns)] = True
    if how == "undeclared_b":
        bad &= txns["b"] >= 0
    rows = np.flatnonzero(bad)
    decl = txns["decl"]
    if how == "out_of_range":
        decl[rows, 3] = n_accounts + rng.integers(0, 5, rows.size)
    elif how == "negative":
        decl[rows, 3] = -2 - rng.integers(0, 5, rows.size)
    elif how == "duplicate":
        decl[rows, 3] = decl[rows, 0]
    elif how == "undeclared_a":
        decl[rows, 0] = -1
    else:
        decl[rows, 1] = -1
    par, clean = base.copy(), base.copy()
    rp = settle(par, txns, threads=n_threads, mode="parallel" if n_accounts >= 50 else "auto")
    assert (rp.codes[rows] == MALFORMED[how]).all()
    assert not np.isin(rp.audit["txn"], rows).any()
    # Rejected rows are no-ops: the rest of the batch alone gives the same state.
    settle(clean, txns[~bad], mode="sequential")
    assert par.state_hash() == clean.state_hash()
    par.check()


@settings(max_examples=30, deadline=None)
@given(accounts, txn_counts, threads, seeds)
def test_money_is_conserved(n_accounts, n_txns, n_threads, seed):
    """Accounts' value + fee pool + insurance fund changes only by deposits and withdrawals."""
    led = funded_ledger(n_accounts, seed)
    before = led.total_value().copy()
    flow0 = led.net_flow.copy()
    res = settle(led, random_batch(np.random.default_rng(seed), n_accounts, n_txns), threads=n_threads)
    assert np.array_equal(led.total_value() - before, led.net_flow - flow0)
    moved = np.zeros_like(flow0)
    dw = np.isin(res.audit["cause"], [1, 2])  # deposits and withdrawals
    np.add.at(moved, res.audit["currency"][dw], res.audit["delta"][dw])
    assert np.array_equal(led.net_flow - flow0, moved)
    led.check()


@settings(max_examples=15, deadline=None)
@given(n_accounts=st.integers(50, 3_000), n_txns=st.integers(0, 5_000), n_threads=st.integers(2, 4), seed=seeds)
def test_stall_takeover_equals_sequential(monkeypatch_takeover, n_accounts, n_txns, n_threads, seed):
    """With every wait counted as a stall, one thread takes over mid-batch: same answer."""
    _assert_same(*_run_both(n_accounts, n_txns, n_threads, seed, "parallel"))


def test_auto_mode_keeps_light_batches_sequential_and_threads_trades():
    """Transfers alone cost less than handing accounts between cores; trades are worth the threads."""
    from shardex.ledger import trade_txns, transfer_txns

    rng = np.random.default_rng(7)
    n = 2000
    base = funded_ledger(1000, 7)
    a = rng.integers(0, 500, n)
    transfers = transfer_txns(a, a + 500, 0, 1)
    trades = trade_txns(a, a + 500, 0, 100, 1, 5, -1)
    assert settle(base.copy(), transfers, threads=2).mode == "sequential"
    assert settle(base.copy(), transfers, threads=2, mode="parallel").mode == "parallel"
    assert settle(base.copy(), trades, threads=2).mode == "parallel"
    # Mostly light with a few trades: still sequential.
    mixed = np.concatenate([transfers, trades[:n // 4]])
    assert settle(base.copy(), mixed, threads=2).mode == "sequential"


def test_heavy_count_matches_heavy_kinds():
    """The compiled count of position-changing transactions names the same kinds as ``HEAVY_KINDS``."""
    from shardex.ledger import _kernels as K
    from shardex.ledger.executor import HEAVY_KINDS
    from shardex.ledger.txn import empty_txns

    txns = empty_txns(64)
    txns["kind"] = np.arange(64) % 12
    assert K.count_heavy(txns) == np.count_nonzero(np.isin(txns["kind"], HEAVY_KINDS))


@pytest.mark.parametrize("n_accounts", [2, 3, 40])
def test_auto_mode_stops_planning_a_batch_too_deep_for_threads(n_accounts):
    """A plan cut short at ``n // MIN_TXNS_PER_LEVEL`` levels falls back exactly where the full plan does."""
    from shardex.ledger import _kernels as K
    from shardex.ledger import trade_txns
    from shardex.ledger.executor import MIN_TXNS_PER_LEVEL

    rng = np.random.default_rng(n_accounts)
    n = 3000
    a = rng.integers(0, n_accounts, n)
    b = (a + 1 + rng.integers(0, n_accounts - 1, n)) % n_accounts
    txns = trade_txns(a, b, 0, 100, 1, 5, -1)
    full = K.plan(txns, n_accounts, 1, 1, np.zeros(n, np.int64), False)
    cut = K.plan(txns, n_accounts, 1, 1, np.zeros(n, np.int64), False, n // MIN_TXNS_PER_LEVEL)
    deep = full[1].size < MIN_TXNS_PER_LEVEL * full[2]
    assert (cut[1].size < MIN_TXNS_PER_LEVEL * cut[2]) == deep
    assert np.array_equal(cut[1], full[1])  # every valid row is still listed
    base = funded_ledger(n_accounts, 3)
    res, ref = settle(base.copy(), txns, threads=2), settle(base.copy(), txns, mode="sequential")
    assert res.mode == ("sequential" if deep else "parallel")
    assert np.array_equal(res.codes, ref.codes) and np.array_equal(res.audit, ref.audit)
