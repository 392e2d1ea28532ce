"""The parallel settlement executor: level scheduling over nogil kernels.

``settle(ledger, txns, threads=T)`` runs a batch of ``TXN_DTYPE``
transactions and leaves the ledger exactly as running them one by one in row
order would -- same state hash, same audit trail, same reason codes -- for any
``T``.

How (docs/settlement.md has the measurements):

1. ``plan``: one serial pass validates each transaction (a malformed
   declaration -- an account out of range, named twice, or written without
   being declared -- is rejected with a reason code and never runs), gives
   it its level (one more than the highest level of an earlier transaction
   declaring one of its accounts) and the per-account counter values it
   must wait for.
2. If levels are too narrow to gain (fewer than ``MIN_TXNS_PER_LEVEL``
   transactions per level on average), if the batch is mostly light
   transactions (less than ``MIN_HEAVY_SHARE`` of ``HEAVY_KINDS``), or if
   one thread is asked for, the sequential kernel runs instead.
3. Otherwise ``T`` threads (the caller and a ``Crew`` of ``T - 1``, each in
   a nogil kernel) claim small blocks of transactions from a shared cursor, in row
   order by default; a transaction waits only for the counters of its own
   accounts, so no two transactions sharing an account ever run at once,
   and each account sees its transactions in row order.
4. The threads then merge the per-transaction audit slots into one trail in
   row order, in fixed chunks of rows; hot-account deltas (fee pool,
   insurance fund) are summed per thread and chunk and combined in a fixed
   order, so every hot record's ``balance_after`` is the sequential one.

ADL transactions name counterparties that depend on data.  ``declare_adl``
guesses them from the current state (a reconnaissance read); when an ADL
runs, the kernel checks that its actual counterparties were declared.  If not,
the whole batch is rolled back to a snapshot and re-run sequentially.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from shardex.crew import Crew
from shardex.ledger import _kernels as K
from shardex.ledger.txn import AUDIT_DTYPE, TXN_DTYPE
from shardex.sync import usable_cores

__all__ = ["HEAVY_KINDS", "MIN_HEAVY_SHARE", "MIN_TXNS_PER_LEVEL", "SettlementResult", "declare_adl", "schedule", "settle"]

#: Below this many transactions per level (on average over the batch) the
#: executor runs the sequential kernel: the threads would spend their time
#: waiting on each other.  Measured on 2 cores (docs/settlement.md): forced
#: parallel runs lose below ~5 per level, break even at 5, and gain at 10
#: and above in every quiet run (1.03-1.35x at 10, 1.1-1.5x at 18).
MIN_TXNS_PER_LEVEL = 10

#: Transaction kinds that change positions (and so recompute margin over
#: them): the work per transaction that parallel settlement spreads.  The
#: others (deposits, withdrawals, transfers, fees, insurance, spot trades)
#: move a balance or two, less than handing accounts between cores costs.
HEAVY_KINDS = (K.K_TRADE, K.K_FUNDING, K.K_ADL, K.K_OPTION_EXPIRY)

#: In ``"auto"`` mode, below this share of ``HEAVY_KINDS`` in a batch the
#: sequential kernel runs.  Measured on 2 cores (docs/settlement.md): 10,000
#: transfers ran 0.40-0.88x as fast on two threads as on one, at every
#: account count from 100 to 100,000, while trades gained.
MIN_HEAVY_SHARE = 0.5

#: A wait for another thread longer than this many CPU cycles (~30 us at
#: 3 GHz; a transaction takes well under 1 us) means that thread lost its
#: core; one thread then finishes the batch alone.  Tests set 0 to force it.
TAKEOVER_CYCLES = 100_000

#: From this many accounts up, the parallel workers prefetch the accounts of
#: the transactions ahead.  Below it the accounts fit in a core's caches, so
#: a prefetch gains nothing and mostly pulls rows away from the other
#: thread, which is likely to be working on them (docs/settlement.md).
PREFETCH_MIN_ACCOUNTS = 4096

#: Rows a thread claims at once from the shared cursor (measured, docs/settlement.md).
CLAIM_BLOCK = K.CLAIM_BLOCK

_MODES = ("auto", "parallel", "sequential")


@dataclass(frozen=True)
class SettlementResult:
    """What ``settle`` returns.

    Attributes
    ----------
    codes
        uint16 ``[n]``: ``Reason`` code per transaction (``Reason.OK`` = 0 ran).
    audit
        ``AUDIT_DTYPE`` records of every balance change, in row order.
    mode
        ``"sequential"``, ``"parallel"``, or ``"rerun"`` (an ADL guessed its
        counterparties wrong; the batch was re-run sequentially).
    threads
        Threads used (1 for sequential).
    n_levels
        Levels of the schedule (0 when no schedule was made).
    stalled
        A thread waited so long for another (which had lost its core) that
        one thread finished the batch alone.
    """

    codes: np.ndarray
    audit: np.ndarray
    mode: str
    threads: int
    n_levels: int
    stalled: bool = False


#: How long a settlement worker polls for the next batch, and the caller for the workers, before
#: blocking (``shardex.crew.Crew``): a pool's wake-up took ~0.1 ms of a 3 ms batch on 2 cores.
SPIN_SECONDS = 0.0005

_CREWS = threading.local()  # each calling thread its own crew: a crew runs one round at a time


def crew(workers: int) -> Crew:
    """This thread's crew of ``workers`` settlement threads (made, or remade at another size, on demand).

    The threads poll between rounds while there are cores for them all
    (``SPIN_SECONDS``), and block otherwise.  They stop when the calling
    thread ends (the crew is then garbage collected).
    """
    got = getattr(_CREWS, "crew", None)
    if got is None or got.threads != workers:
        if got is not None:
            got.close()
        spin = SPIN_SECONDS if workers + 1 <= usable_cores() else 0.0
        got = _CREWS.crew = Crew(workers, spin=spin, name="shardex-settle")
    return got


def _check_txns(txns: np.ndarray) -> np.ndarray:
    if not isinstance(txns, np.ndarray) or txns.dtype != TXN_DTYPE or txns.ndim != 1:
        raise TypeError("txns must be a 1-d numpy array of TXN_DTYPE (see shardex.ledger.empty_txns)")
    return np.ascontiguousarray(txns)


def schedule(ledger, txns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(codes, level)`` for a batch without running it.

    ``codes``: the static reason code of each transaction; ``level``: its
    level (0 for rejected ones).  No two transactions in one level declare a
    common account.  Complexity: O(n + n_accounts).
    """
    txns = _check_txns(txns)
    codes = np.zeros(txns.size, np.int64)
    level = K.plan(txns, ledger.n_accounts, len(ledger.currencies), ledger.n_instruments, codes, False)[0]
    return codes.astype(np.uint16), level


def declare_adl(ledger, txns: np.ndarray) -> int:
    """Fill the ``decl`` of every ADL in ``txns`` (in place) from the current state.

    The reconnaissance read: slot 0 is the deleveraged account, slots 1..3
    the counterparties the ranking picks now.  Call it just before
    ``settle``; if earlier transactions of the batch change the ranking, the
    executor notices and re-runs the batch sequentially.  Returns the number
    of ADLs declared.  Complexity: O(n_adl * n_accounts).
    """
    if not isinstance(txns, np.ndarray) or txns.dtype != TXN_DTYPE or not txns.flags.c_contiguous:
        raise TypeError("txns must be a C-contiguous numpy array of TXN_DTYPE")
    return int(K.declare_adl_kernel(txns, ledger.positions, ledger.marks, ledger.n_accounts, ledger.n_instruments))


def _finish(ledger, codes, slots, nrec, mode, threads, n_levels, stalled=False) -> SettlementResult:
    audit = np.empty(int(nrec.sum()), AUDIT_DTYPE)  # finalize writes every record whole
    K.finalize(nrec, slots, ledger.fee_pool, ledger.insurance, ledger.net_flow, audit)
    return SettlementResult(codes.astype(np.uint16), audit, mode, threads, n_levels, stalled)


#: Audit slots are scratch (read only below each row's record count, and
#: copied out before ``settle`` returns), so each calling thread keeps its
#: own for the next batch: a fresh 3.4 MB per 10,000 transactions meant
#: ~850 page faults per batch, taken by the worker threads as they first
#: wrote each page, and serialized between them by the kernel.
_SCRATCH = threading.local()
#: Batches whose slots would exceed this many bytes get fresh ones, not kept.
MAX_KEPT_SLOT_BYTES = 64 << 20


def _audit_slots(n: int) -> np.ndarray:
    """Audit slots for ``n`` transactions, reused from this thread's last batch when they are large enough."""
    need = n * K.NSLOT
    if need * AUDIT_DTYPE.itemsize > MAX_KEPT_SLOT_BYTES:
        return K.new_audit_slots(n)
    kept = getattr(_SCRATCH, "slots", None)
    if kept is None or kept.size < need:
        kept = _SCRATCH.slots = K.new_audit_slots(max(n, 1024))
    return kept[:need]


def _light(txns: np.ndarray) -> bool:
    """Whether too few of the batch's transactions are ``HEAVY_KINDS`` for threads to gain."""
    return K.count_heavy(txns) < MIN_HEAVY_SHARE * txns.size  # one compiled pass: np.isin on the field took ~0.1 ms


def _run_sequential(ledger, txns, codes, slots, nrec) -> None:
    K.run_sequential(
        txns, ledger.balances, ledger.positions, ledger.margin, ledger.inst, ledger.marks, ledger.mccy, codes, slots, nrec
    )


def settle(
    ledger, txns: np.ndarray, *, threads: int | None = None, mode: str = "auto", order: str = "row"
) -> SettlementResult:
    """Run a batch of transactions against ``ledger``; the result never depends on ``threads``.

    Parameters
    ----------
    ledger
        The ``Ledger`` to change.
    txns
        1-d ``TXN_DTYPE`` array; rows run in row order (``seq`` is only
        copied into the audit trail).
    threads
        Worker threads (default: the cores this process may use).
    mode
        ``"auto"``: parallel unless levels are narrower than
        ``MIN_TXNS_PER_LEVEL``, the batch is mostly light transactions
        (``MIN_HEAVY_SHARE``), or ``threads == 1``; ``"parallel"``: always
        use the threads (tests use it to shake out races);
        ``"sequential"``: the sequential kernel, the reference.
    order
        The order in which threads claim transactions: ``"row"`` (default,
        measured faster: memory is walked in order) or ``"level"`` (level
        by level, as the levels were computed).  Either order gives the same
        result; it only changes how often threads wait.

    Returns a ``SettlementResult``.  Transactions that fail a check change
    nothing and carry their ``Reason`` code.

    Complexity: O(n + n_accounts) scheduling, plus the transactions' own
    work (O(n_instruments) margin recomputation per account written).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    threads = usable_cores() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    txns = _check_txns(txns)
    if order not in ("row", "level"):
        raise ValueError(f"order must be 'row' or 'level', got {order!r}")
    n = txns.size
    n_ccy = len(ledger.currencies)
    codes = K.aligned_zeros(n, np.int64)
    slots = _audit_slots(n)
    nrec = K.aligned_zeros(n, np.int64)
    if mode == "sequential" or threads == 1 or (mode == "auto" and _light(txns)):
        K.validate(txns, ledger.n_accounts, n_ccy, ledger.n_instruments, codes)
        _run_sequential(ledger, txns, codes, slots, nrec)
        return _finish(ledger, codes, slots, nrec, "sequential", 1, 0)

    workers = crew(threads - 1)
    workers.wake()  # threads asleep since the last batch wake while the plan runs, not on the round's clock
    # In "auto" mode the plan stops computing levels once the batch is too
    # deep to run in parallel (fewer than MIN_TXNS_PER_LEVEL rows per level
    # whatever the rest holds): a contended batch then pays a fraction of it.
    max_levels = n // MIN_TXNS_PER_LEVEL if mode == "auto" else 0
    _level, order_arr, n_levels, exp_ver, inst_wait, n_excl = K.plan(
        txns, ledger.n_accounts, n_ccy, ledger.n_instruments, codes, order == "level", max_levels
    )
    n_valid = order_arr.size
    if n_valid == 0 or (mode == "auto" and n_valid < MIN_TXNS_PER_LEVEL * n_levels):
        _run_sequential(ledger, txns, codes, slots, nrec)
        return _finish(ledger, codes, slots, nrec, "sequential", 1, n_levels)

    snapshot = None
    if n_excl:  # an ADL may guess wrong: keep what a rollback needs
        snapshot = (ledger.balances.copy(), ledger.positions.copy(), ledger.margin.copy(), codes.copy())
    ver = np.zeros(ledger.n_accounts, np.int64)
    inst_done = np.zeros(2 * max(ledger.n_instruments, 1), np.int64)
    ctl = np.zeros(K.CTL_SIZE, np.int64)
    ctl[K.CTL_TAKEOVER] = TAKEOVER_CYCLES
    ctl[K.CTL_BLOCK] = CLAIM_BLOCK
    ctl[K.CTL_PREFETCH] = ledger.n_accounts >= PREFETCH_MIN_ACCOUNTS
    n_chunks = -(-n // K.CHUNK_ROWS)
    acc = np.zeros((threads, n_chunks, 1 + 3 * n_ccy), np.int64)
    out = np.empty(n * K.NSLOT, AUDIT_DTYPE)  # pages are touched only where written
    args = (
        order_arr, exp_ver, inst_wait, n_excl, ver, inst_done, ctl, acc,
        txns, ledger.balances, ledger.positions, ledger.margin, ledger.inst, ledger.marks, ledger.mccy,
        codes, slots, nrec, ledger.fee_pool, ledger.insurance, out,
    )  # fmt: skip
    go = workers.stage([(K.run_worker, (k, threads, *args)) for k in range(1, threads)])
    try:  # the round starts from compiled code, the GIL released (see Crew)
        K.run_worker_go(*go, *workers.finish_line(), 0, threads, *args)
    finally:
        workers.collect()
    if ctl[K.CTL_ABORT]:
        ledger.balances[...], ledger.positions[...], ledger.margin[...], codes[...] = snapshot
        slots = K.new_audit_slots(n)
        nrec[:] = 0
        _run_sequential(ledger, txns, codes, slots, nrec)
        return _finish(ledger, codes, slots, nrec, "rerun", threads, n_levels)
    totals = acc.sum(axis=(0, 1))
    ledger.fee_pool += totals[1::3]
    ledger.insurance += totals[2::3]
    ledger.net_flow += totals[3::3]
    audit = out[: int(totals[0])]
    return SettlementResult(codes.astype(np.uint16), audit, "parallel", threads, n_levels, bool(ctl[K.CTL_STALLED]))
