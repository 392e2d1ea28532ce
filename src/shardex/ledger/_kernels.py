"""Settlement kernels: validation and levels, the transaction body, the runners.

Private module; ``shardex.ledger.executor`` is the API.  Every kernel is
``@njit(cache=True, nogil=True)``, takes arrays and returns integer codes.

State arrays (owned by ``Ledger``):

* ``balances``  int64 ``[n_accounts, n_currencies]``, minor units
* ``positions`` int64 ``[n_accounts, n_instruments, 3]`` (see ``margin``)
* ``margin``    int64 ``[n_accounts, 3]``: equity, initial, maintenance
* ``inst``      int64 ``[n_instruments, 4]``; ``marks`` int64 ``[n_instruments]``

Hot accounts (fee pool, insurance fund) are never written while transactions
run: each transaction writes its hot-account deltas into its own audit slots,
and the merge (``finalize`` after the sequential kernel, the end of
``run_worker`` after the parallel one) adds them up in a fixed order.
Integer addition makes any order give the same sums; the fixed order also
yields each hot record's ``balance_after`` exactly as a sequential run would.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.crew import await_all
from shardex.lowlevel import aligned, borrow, prefetch_read, prefetch_write
from shardex.sync import cpu_yield, cycles, fetch_add, load_acquire, store_release, store_seq_cst
from shardex.ledger.margin import INST_CCY, INST_KIND, INST_MULT, KIND_LINEAR, POS_COST, POS_QTY, POS_RPNL, linear_margin
from shardex.ledger.txn import AUDIT_DTYPE, FEE_POOL, FLAG_MARGIN_CHECKED, INSURANCE_FUND, MAX_AUDIT_PER_TXN, MAX_DECL
from shardex.schema import Reason

# Module-level ints are compile-time constants for numba.
K_DEPOSIT = 1
K_WITHDRAW = 2
K_TRANSFER = 3
K_TRADE = 4
K_FEE = 5
K_FUNDING = 6
K_ADL = 7
K_INSURANCE = 8
K_SPOT_TRADE = 9
K_OPTION_EXPIRY = 10

C_DEPOSIT = 1
C_WITHDRAWAL = 2
C_TRANSFER = 3
C_TRADE_PNL = 4
C_TRADE_FEE = 5
C_FEE = 6
C_FUNDING = 7
C_ADL_PNL = 8
C_INSURANCE = 9
C_SPOT_TRADE = 10
C_OPTION_PREMIUM = 11
C_OPTION_EXPIRY = 12

R_OK = int(Reason.OK)
R_INSUFFICIENT_BALANCE = int(Reason.INSUFFICIENT_BALANCE)
R_UNKNOWN_ACCOUNT = int(Reason.UNKNOWN_ACCOUNT)
R_UNKNOWN_CURRENCY = int(Reason.UNKNOWN_CURRENCY)
R_UNKNOWN_INSTRUMENT = int(Reason.UNKNOWN_INSTRUMENT)
# A declaration naming one account twice, or missing an account the
# transaction writes.
R_MALFORMED_DECL = int(Reason.MALFORMED_DECLARATION)
R_INVALID_COMMAND = int(Reason.INVALID_COMMAND)
R_INVALID_PRICE = int(Reason.INVALID_PRICE)
R_QTY_NOT_POSITIVE = int(Reason.QTY_NOT_POSITIVE)

#: ``apply_txn`` status: the transaction ran (or was rejected with a code).
ST_DONE = 0
#: ``apply_txn`` status: an ADL wanted an account it had not declared; nothing written.
ST_MISS = 1

NSLOT = MAX_AUDIT_PER_TXN
ADL_MAX_PICKS = MAX_DECL - 1
# A waiting thread re-checks the abort flag every SPIN_CHECK spins and gives
# its core away every SPIN_YIELD spins (more threads than cores must progress).
SPIN_CHECK = 255
SPIN_YIELD = 4096
# Transactions a thread claims at once (default of ``ctl[CTL_BLOCK]``):
# amortizes the shared cursor's cache-line transfer; small, so that a
# descheduled thread holds little and neighbours rarely wait on each other.
CLAIM_BLOCK = 8
# ``ctl`` slots, 8 int64 apart so that no two share a cache line.
CTL_CURSOR = 0  # next entry of ``order`` to claim
CTL_ABORT = 8  # set when an ADL missed: stop, the caller re-runs sequentially
CTL_STALLED = 16  # set when a thread waited longer than CTL_TAKEOVER cycles
CTL_TAKER = 24  # the first thread to see CTL_STALLED takes the rest of the batch
CTL_TAKEOVER = 32  # the wait, in CPU cycles, that counts as a stall
CTL_ARRIVED = 40  # threads done running transactions
CTL_CHUNK = 48  # next chunk of the audit merge to claim
CTL_BLOCK = 56  # rows per claim
CTL_PREFETCH = 60  # 1: workers prefetch accounts ahead (many accounts), 0: they do not
CTL_SIZE = 64
# Rows per chunk of the parallel audit merge; fixed, whatever the thread count,
# so that the merge order never depends on it.
CHUNK_ROWS = 512


# -- small arithmetic helpers ---------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _div_trunc(x, d):
    """``x / d`` rounded toward zero (``//`` floors); ``d > 0``."""
    if x >= 0:
        return x // d
    return -((-x) // d)


@njit(cache=True, nogil=True, inline="always")
def _muldiv_floor(q, num, den):
    """``floor(q * num / den)`` for ``num >= 0``, ``den > 0``, without forming ``q * num``.

    Exact while ``|q| * (num // den)`` and ``|q| * den`` fit in int64.
    """
    return q * (num // den) + (q * (num % den)) // den


@njit(cache=True, nogil=True, inline="always")
def _muldiv_trunc(x, k, n):
    """``x * k / n`` toward zero without forming ``x * k``; ``0 <= k <= n``, ``n > 0``."""
    ax = abs(x)
    r = (ax // n) * k + ((ax % n) * k) // n
    return r if x >= 0 else -r


# -- audit slots ------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _rec(aud, nrec, t, seq, ref, account, ccy, delta, after, cause):
    """Write one audit record into transaction ``t``'s own slots."""
    s = t * NSLOT + nrec[t]
    nrec[t] += 1
    aud[s].seq = seq
    aud[s].txn = t
    aud[s].account = account
    aud[s].delta = delta
    aud[s].balance_after = after
    aud[s].ref = ref
    aud[s].currency = ccy
    aud[s].cause = cause


# -- positions and margin --------------------------------------------------------
@njit(cache=True, nogil=True)
def fill_position(positions, acct, i, dq, price):
    """Add ``dq`` lots bought (> 0) or sold (< 0) at ``price`` ticks to a position.

    Average-cost accounting on an integer cost basis: a reduction removes the
    closed fraction of the cost (truncated); a flip closes the whole position
    and opens the rest at ``price``.  Returns the realized PnL in tick-lots,
    defined as ``-dq * price + (change of cost)``, so that ``balance - cost *
    mult`` moves by exactly ``-dq * price * mult``: money is conserved to the
    unit whatever the rounding.
    """
    q = positions[acct, i, POS_QTY]
    c = positions[acct, i, POS_COST]
    if q == 0 or (q > 0) == (dq > 0):
        positions[acct, i, POS_QTY] = q + dq
        positions[acct, i, POS_COST] = c + dq * price
        return 0
    aq = abs(q)
    adq = abs(dq)
    s = 1 if q > 0 else -1
    closing = min(aq, adq)
    removed = c if closing == aq else _muldiv_trunc(c, closing, aq)
    realized = s * closing * price - removed
    q -= s * closing
    c -= removed
    rest = adq - closing
    if rest > 0:  # the fill flips the position: open the rest at the fill price
        q -= s * rest
        c -= s * rest * price
    positions[acct, i, POS_QTY] = q
    positions[acct, i, POS_COST] = c
    positions[acct, i, POS_RPNL] += realized
    return realized


@njit(cache=True, nogil=True)
def fill_cash(positions, inst, acct, i, dq, price):
    """Fill ``dq`` lots at ``price`` into a position; return the cash it moves into the account, minor units.

    Linear instruments (``KIND_LINEAR``): the realized PnL times the
    multiplier.  Premium-style instruments (options): the premium,
    ``-dq * price * mult`` (a buyer pays, a seller receives); the position
    keeps its average entry and realized premium PnL all the same.
    """
    realized = fill_position(positions, acct, i, dq, price)
    if inst[i, INST_KIND] == KIND_LINEAR:
        return realized * inst[i, INST_MULT]
    return -dq * price * inst[i, INST_MULT]


@njit(cache=True, nogil=True)
def remargin(acct, balances, positions, margin, inst, marks, mccy):
    """Recompute and store one account's equity, initial and maintenance margin."""
    e, im, mm = linear_margin(positions[acct], balances[acct, mccy], marks, inst)
    margin[acct, 0] = e
    margin[acct, 1] = im
    margin[acct, 2] = mm


@njit(cache=True, nogil=True)
def free_balance(acct, ccy, balances, positions, inst, marks, mccy):
    """What ``acct`` may withdraw or transfer out of ``ccy``, minor units.

    In the margin currency: the balance, but no more than equity minus
    initial margin (unrealized profit is not withdrawable, losses and open
    positions' margin are held back).  Other currencies: the balance.
    """
    bal = balances[acct, ccy]
    if ccy != mccy:
        return bal
    e, im, _mm = linear_margin(positions[acct], bal, marks, inst)
    return min(bal, e - im)


@njit(cache=True, nogil=True)
def adl_picks(a, i, need, positions, marks, picks):
    """Choose the counterparties of an ADL of ``need`` lots of ``a`` in instrument ``i``.

    Opposite positions ranked by unrealized PnL per unit of entry cost at the
    mark, highest first, ties to the lower account id; taken until they cover
    ``need`` lots or ``picks`` is full.  Writes account ids into ``picks``
    (-1 for unused) and returns how many.  Read-only.  Complexity:
    O(n_accounts * len(picks)).
    """
    for j in range(picks.size):
        picks[j] = -1
    qa = positions[a, i, POS_QTY]
    if qa == 0:
        return 0
    mark = marks[i]
    n = 0
    left = need
    while left > 0 and n < picks.size:
        best = -1
        best_key = 0.0
        for c in range(positions.shape[0]):
            qc = positions[c, i, POS_QTY]
            if c == a or qc == 0 or (qc > 0) == (qa > 0):
                continue
            taken = False
            for j in range(n):
                if picks[j] == c:
                    taken = True
            if taken:
                continue
            cost = positions[c, i, POS_COST]
            key = float(qc * mark - cost) / float(max(abs(cost), 1))
            if best < 0 or key > best_key:
                best = c
                best_key = key
        if best < 0:
            break
        picks[n] = best
        n += 1
        left -= min(left, abs(positions[best, i, POS_QTY]))
    return n


@njit(cache=True, nogil=True, inline="always")
def _bps_trunc(x, bps):
    """``x * bps / 10_000`` toward zero, ``x >= 0``, ``|bps| <= 10_000``, without forming ``x * bps``."""
    r = (x // 10_000) * abs(bps) + ((x % 10_000) * abs(bps)) // 10_000
    return r if bps >= 0 else -r


@njit(cache=True, nogil=True)
def _spot_trade(t, r, balances, positions, margin, inst, marks, mccy, codes, aud, nrec):
    """Exchange base for quote between taker ``a`` and maker ``b``; fees in quote to the fee pool.

    ``qty`` base minor units (> 0: the taker buys), ``amount`` quote minor
    units, ``instrument`` the base currency, ``currency`` the quote.  The
    paying legs (buyer's quote with its fee, seller's base) must stay >= 0,
    else ``INSUFFICIENT_BALANCE`` and nothing is written: the risk layer's
    holds make that impossible, this guards the ledger against a caller
    without them.  Six audit records at most: each account's base and net
    quote change (cause ``SPOT_TRADE``) and the two fee-pool legs.
    """
    a = r.a
    b = r.b
    seq = r.seq
    ref = r.ref
    bc = r.instrument
    qc = r.currency
    v = r.amount
    dq = r.qty
    ft = _bps_trunc(v, r.taker_fee_bps)
    fm = _bps_trunc(v, r.maker_fee_bps)
    buyer, seller = (a, b) if dq > 0 else (b, a)
    fb, fs = (ft, fm) if dq > 0 else (fm, ft)
    base = abs(dq)
    if balances[buyer, qc] - v - fb < 0 or balances[seller, bc] - base < 0:
        codes[t] = R_INSUFFICIENT_BALANCE
        return
    balances[a, bc] += dq
    _rec(aud, nrec, t, seq, ref, a, bc, dq, balances[a, bc], C_SPOT_TRADE)
    da = (-v if dq > 0 else v) - ft
    balances[a, qc] += da
    _rec(aud, nrec, t, seq, ref, a, qc, da, balances[a, qc], C_SPOT_TRADE)
    balances[b, bc] -= dq
    _rec(aud, nrec, t, seq, ref, b, bc, -dq, balances[b, bc], C_SPOT_TRADE)
    db = (v if dq > 0 else -v) - fm
    balances[b, qc] += db
    _rec(aud, nrec, t, seq, ref, b, qc, db, balances[b, qc], C_SPOT_TRADE)
    if ft != 0:
        _rec(aud, nrec, t, seq, ref, FEE_POOL, qc, ft, 0, C_TRADE_FEE)
    if fm != 0:
        _rec(aud, nrec, t, seq, ref, FEE_POOL, qc, fm, 0, C_TRADE_FEE)
    # Either currency may be the margin currency: equity follows the balance.
    remargin(a, balances, positions, margin, inst, marks, mccy)
    remargin(b, balances, positions, margin, inst, marks, mccy)


# -- the transaction body ---------------------------------------------------------
@njit(cache=True, nogil=True)
def _declared(r, acct):
    for j in range(MAX_DECL):
        if r.decl[j] == acct:
            return True
    return False


@njit(cache=True, nogil=True)
def apply_txn(t, txns, balances, positions, margin, inst, marks, mccy, codes, aud, nrec, verify):
    """Run transaction ``t`` against the state; write its code and audit records.

    ``verify``: the parallel runner sets it so that an ADL whose chosen
    counterparties are not all declared returns ``ST_MISS`` before writing
    anything.  Returns ``ST_DONE`` or ``ST_MISS``.  A rejected transaction
    (code set) writes nothing.
    """
    r = txns[t]
    k = r.kind
    a = r.a
    seq = r.seq
    ref = r.ref
    if k == K_DEPOSIT:
        c = r.currency
        balances[a, c] += r.amount
        _rec(aud, nrec, t, seq, ref, a, c, r.amount, balances[a, c], C_DEPOSIT)
        remargin(a, balances, positions, margin, inst, marks, mccy)
    elif k == K_WITHDRAW or k == K_TRANSFER:
        c = r.currency
        v = r.amount
        room = balances[a, c] if r.flags & FLAG_MARGIN_CHECKED else free_balance(a, c, balances, positions, inst,
                                                                                  marks, mccy)
        if v > room:
            codes[t] = R_INSUFFICIENT_BALANCE
            return ST_DONE
        balances[a, c] -= v
        if k == K_WITHDRAW:
            _rec(aud, nrec, t, seq, ref, a, c, -v, balances[a, c], C_WITHDRAWAL)
        else:
            b = r.b
            _rec(aud, nrec, t, seq, ref, a, c, -v, balances[a, c], C_TRANSFER)
            balances[b, c] += v
            _rec(aud, nrec, t, seq, ref, b, c, v, balances[b, c], C_TRANSFER)
            remargin(b, balances, positions, margin, inst, marks, mccy)
        remargin(a, balances, positions, margin, inst, marks, mccy)
    elif k == K_FEE or k == K_INSURANCE:
        c = r.currency
        v = r.amount
        balances[a, c] -= v
        if k == K_FEE:
            _rec(aud, nrec, t, seq, ref, a, c, -v, balances[a, c], C_FEE)
            _rec(aud, nrec, t, seq, ref, FEE_POOL, c, v, 0, C_FEE)
        else:
            _rec(aud, nrec, t, seq, ref, a, c, -v, balances[a, c], C_INSURANCE)
            _rec(aud, nrec, t, seq, ref, INSURANCE_FUND, c, v, 0, C_INSURANCE)
        remargin(a, balances, positions, margin, inst, marks, mccy)
    elif k == K_FUNDING:
        i = r.instrument
        c = inst[i, INST_CCY]
        # notional * rate / 1e6 without forming notional * rate: a 1,000 BTC position in 1e-8 USDT overflows it
        notional = positions[a, i, POS_QTY] * marks[i] * inst[i, INST_MULT]
        pay = _muldiv_trunc(notional, abs(r.amount), 1_000_000)
        if r.amount < 0:
            pay = -pay
        if pay != 0:
            balances[a, c] -= pay
            _rec(aud, nrec, t, seq, ref, a, c, -pay, balances[a, c], C_FUNDING)
            _rec(aud, nrec, t, seq, ref, INSURANCE_FUND, c, pay, 0, C_FUNDING)
            remargin(a, balances, positions, margin, inst, marks, mccy)
    elif k == K_TRADE:
        b = r.b
        i = r.instrument
        p = r.price
        dq = r.qty
        mult = inst[i, INST_MULT]
        c = inst[i, INST_CCY]
        # linear: realized PnL; options: the premium, buyer to seller
        cause = C_TRADE_PNL if inst[i, INST_KIND] == KIND_LINEAR else C_OPTION_PREMIUM
        rt = fill_cash(positions, inst, a, i, dq, p)
        rm = fill_cash(positions, inst, b, i, -dq, p)
        notional = p * abs(dq) * mult
        # Fees truncate toward zero: a rebate never exceeds its rate.
        ft = _div_trunc(notional * r.taker_fee_bps, 10_000)
        fm = _div_trunc(notional * r.maker_fee_bps, 10_000)
        if rt != 0:
            balances[a, c] += rt
            _rec(aud, nrec, t, seq, ref, a, c, rt, balances[a, c], cause)
        if ft != 0:
            balances[a, c] -= ft
            _rec(aud, nrec, t, seq, ref, a, c, -ft, balances[a, c], C_TRADE_FEE)
        if rm != 0:
            balances[b, c] += rm
            _rec(aud, nrec, t, seq, ref, b, c, rm, balances[b, c], cause)
        if fm != 0:
            balances[b, c] -= fm
            _rec(aud, nrec, t, seq, ref, b, c, -fm, balances[b, c], C_TRADE_FEE)
        if ft != 0:
            _rec(aud, nrec, t, seq, ref, FEE_POOL, c, ft, 0, C_TRADE_FEE)
        if fm != 0:
            _rec(aud, nrec, t, seq, ref, FEE_POOL, c, fm, 0, C_TRADE_FEE)
        remargin(a, balances, positions, margin, inst, marks, mccy)
        remargin(b, balances, positions, margin, inst, marks, mccy)
    elif k == K_SPOT_TRADE:
        _spot_trade(t, r, balances, positions, margin, inst, marks, mccy, codes, aud, nrec)
    elif k == K_ADL:
        i = r.instrument
        qa = positions[a, i, POS_QTY]
        if qa == 0:
            return ST_DONE
        s = 1 if qa > 0 else -1
        need = min(r.qty, abs(qa))
        picks = np.empty(ADL_MAX_PICKS, np.int64)
        n = adl_picks(a, i, need, positions, marks, picks)
        if verify:
            for j in range(n):
                if not _declared(r, picks[j]):
                    return ST_MISS
        c = inst[i, INST_CCY]
        p = r.price
        left = need
        for j in range(n):
            cp = picks[j]
            lots = min(left, abs(positions[cp, i, POS_QTY]))
            left -= lots
            ra = fill_cash(positions, inst, a, i, -s * lots, p)
            rc = fill_cash(positions, inst, cp, i, s * lots, p)
            if ra != 0:
                balances[a, c] += ra
                _rec(aud, nrec, t, seq, ref, a, c, ra, balances[a, c], C_ADL_PNL)
            if rc != 0:
                balances[cp, c] += rc
                _rec(aud, nrec, t, seq, ref, cp, c, rc, balances[cp, c], C_ADL_PNL)
            remargin(cp, balances, positions, margin, inst, marks, mccy)
        remargin(a, balances, positions, margin, inst, marks, mccy)
    elif k == K_OPTION_EXPIRY:
        i = r.instrument
        if inst[i, INST_KIND] == KIND_LINEAR:  # futures expire by trades at the settlement price
            codes[t] = R_INVALID_COMMAND
            return ST_DONE
        q = positions[a, i, POS_QTY]
        if q == 0:
            return ST_DONE
        c = inst[i, INST_CCY]
        pay = _muldiv_floor(q, r.amount, r.price)  # long: value rounded down; short: pays it rounded up
        positions[a, i, POS_QTY] = 0
        positions[a, i, POS_COST] = 0
        if pay != 0:
            balances[a, c] += pay
            _rec(aud, nrec, t, seq, ref, a, c, pay, balances[a, c], C_OPTION_EXPIRY)
            _rec(aud, nrec, t, seq, ref, INSURANCE_FUND, c, -pay, 0, C_OPTION_EXPIRY)
        remargin(a, balances, positions, margin, inst, marks, mccy)
    return ST_DONE


# -- validation and levels ------------------------------------------------------------
@njit(cache=True, nogil=True)
def _validate(r, n_acc, n_ccy, n_inst):
    """Reason code of a transaction's static checks (``R_OK`` if it may run)."""
    k = r.kind
    if k < K_DEPOSIT or k > K_OPTION_EXPIRY:
        return R_INVALID_COMMAND
    for j in range(MAX_DECL):
        d = r.decl[j]
        if d == -1:
            continue
        if d < -1 or d >= n_acc:
            return R_UNKNOWN_ACCOUNT
        for j2 in range(j):
            if r.decl[j2] == d:
                return R_MALFORMED_DECL
    a = r.a
    if a < 0 or a >= n_acc:
        return R_UNKNOWN_ACCOUNT
    if not _declared(r, a):
        return R_MALFORMED_DECL
    if k == K_TRANSFER or k == K_TRADE or k == K_SPOT_TRADE:
        b = r.b
        if b < 0 or b >= n_acc:
            return R_UNKNOWN_ACCOUNT
        if b == a or not _declared(r, b):
            return R_MALFORMED_DECL
    if k == K_TRADE or k == K_FUNDING or k == K_ADL or k == K_OPTION_EXPIRY:
        if r.instrument < 0 or r.instrument >= n_inst:
            return R_UNKNOWN_INSTRUMENT
        if k == K_OPTION_EXPIRY and (r.price <= 0 or r.amount < 0):
            return R_INVALID_PRICE
    elif k == K_SPOT_TRADE:  # instrument: the base currency; currency: the quote
        if r.currency < 0 or r.currency >= n_ccy or r.instrument < 0 or r.instrument >= n_ccy:
            return R_UNKNOWN_CURRENCY
        if r.instrument == r.currency:
            return R_INVALID_COMMAND
        if r.amount <= 0 or r.price <= 0:
            return R_INVALID_PRICE
        if r.qty == 0:
            return R_QTY_NOT_POSITIVE
        if abs(r.taker_fee_bps) > 10_000 or abs(r.maker_fee_bps) > 10_000:
            return R_INVALID_COMMAND
    else:
        if r.currency < 0 or r.currency >= n_ccy:
            return R_UNKNOWN_CURRENCY
    if k == K_DEPOSIT or k == K_WITHDRAW or k == K_TRANSFER or k == K_FEE:
        if r.amount <= 0:
            return R_INVALID_COMMAND
    if k == K_TRADE or k == K_ADL:
        if r.price <= 0:
            return R_INVALID_PRICE
        if r.qty == 0 or (k == K_ADL and r.qty < 0):
            return R_QTY_NOT_POSITIVE
    return R_OK


@njit(cache=True, nogil=True)
def validate(txns, n_acc, n_ccy, n_inst, codes):
    """Fill ``codes`` with each transaction's static reason code; return how many pass.

    Complexity: O(n).
    """
    ok = 0
    for t in range(txns.size):
        codes[t] = _validate(txns[t], n_acc, n_ccy, n_inst)
        if codes[t] == R_OK:
            ok += 1
    return ok


@njit(cache=True, nogil=True)
def count_heavy(txns):
    """How many transactions change positions (trade, funding, ADL, option expiry: ``executor.HEAVY_KINDS``)."""
    k = 0
    for t in range(txns.size):
        kind = txns[t].kind
        k += kind == K_TRADE or kind == K_FUNDING or kind == K_ADL or kind == K_OPTION_EXPIRY
    return k


@njit(cache=True, nogil=True)
def plan(txns, n_acc, n_ccy, n_inst, codes, by_level, max_levels=0):
    """Validate every transaction, then give each valid one its level and sync targets.

    One serial pass.  Fills ``codes`` as ``validate`` does.  A transaction's
    level is one more than the highest level of any earlier transaction
    declaring one of its accounts.  Trades and ADLs also meet on their
    instrument: an ADL reads every position in the instrument (to rank
    counterparties), so it comes after all earlier trades in it and before
    all later ones; trades among themselves do not conflict on the instrument
    (each writes only its own accounts' rows).

    Returns ``(level, order, n_levels, exp_ver, inst_wait, n_excl)``:

    * ``level[t]`` (0 for rejected transactions, else >= 1)
    * ``order``: the valid rows, sorted by (level, row) if ``by_level``,
      else in row order
    * ``exp_ver[t, j]``: how many earlier valid transactions declared
      ``decl[j]``; the runner waits until that account's counter reaches it
    * ``inst_wait[t]``: earlier ADLs and earlier trades on ``t``'s instrument
    * ``n_excl``: number of valid ADLs (0: no instrument synchronization)

    ``max_levels`` > 0: once a level passes it, the pass only validates the
    rest (``level``, ``exp_ver`` and ``inst_wait`` stay incomplete) and
    ``n_levels`` is returned as ``max_levels + 1``: enough for a caller
    that only runs the batch in parallel with at most ``max_levels`` levels
    to know it will not, at a fraction of the pass.

    Complexity: O(n + n_accounts + n_instruments).
    """
    n = txns.size
    level = np.zeros(n, np.int64)
    exp_ver = np.empty((n, MAX_DECL), np.int64)
    inst_wait = np.empty((n, 2), np.int64)
    last_level = np.zeros(n_acc, np.int64)
    count = np.zeros(n_acc, np.int64)
    excl_level = np.zeros(n_inst, np.int64)
    shared_level = np.zeros(n_inst, np.int64)
    excl_count = np.zeros(n_inst, np.int64)
    shared_count = np.zeros(n_inst, np.int64)
    order = np.empty(n, np.int64)
    n_valid = 0
    n_levels = 0
    n_excl = 0
    for t in range(n):
        r = txns[t]
        codes[t] = _validate(r, n_acc, n_ccy, n_inst)
        if codes[t] != R_OK:
            continue
        order[n_valid] = t
        n_valid += 1
        if max_levels > 0 and n_levels > max_levels:
            continue  # too deep for the caller: validate only
        lv = 0
        for j in range(MAX_DECL):
            d = r.decl[j]
            if d >= 0 and last_level[d] > lv:
                lv = last_level[d]
        k = r.kind
        sync_inst = k == K_TRADE or k == K_ADL
        i = r.instrument
        if sync_inst:
            lv = max(lv, excl_level[i])
            if k == K_ADL:
                lv = max(lv, shared_level[i])
        lv += 1
        level[t] = lv
        n_levels = max(n_levels, lv)
        for j in range(MAX_DECL):
            d = r.decl[j]
            if d >= 0:
                last_level[d] = lv
                exp_ver[t, j] = count[d]
                count[d] += 1
        if sync_inst:
            inst_wait[t, 0] = excl_count[i]
            inst_wait[t, 1] = shared_count[i]
            if k == K_TRADE:
                shared_level[i] = max(shared_level[i], lv)
                shared_count[i] += 1
            else:
                excl_level[i] = lv
                excl_count[i] += 1
                n_excl += 1
    order = order[:n_valid]
    if max_levels > 0 and n_levels > max_levels:
        return level, order, max_levels + 1, exp_ver, inst_wait, n_excl
    if by_level:  # counting sort by level, stable in row order
        fill = np.zeros(n_levels + 1, np.int64)
        for t in order:
            fill[level[t]] += 1
        pos = 0
        for L in range(n_levels + 1):
            c = fill[L]
            fill[L] = pos
            pos += c
        sorted_order = np.empty(n_valid, np.int64)
        for t in order:
            sorted_order[fill[level[t]]] = t
            fill[level[t]] += 1
        order = sorted_order
    return level, order, n_levels, exp_ver, inst_wait, n_excl


# -- runners ------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def run_sequential(txns, balances, positions, margin, inst, marks, mccy, codes, aud, nrec):
    """Run the valid transactions one by one in row order: the reference semantics."""
    _run_sequential(borrow(txns), borrow(balances), borrow(positions), borrow(margin), borrow(inst), borrow(marks),
                    mccy, borrow(codes), borrow(aud), borrow(nrec))


# The workers pass their arrays down to apply_txn and its helpers once per
# transaction.  numba counts references to an array with an atomic add at each
# such call; with two threads on the same arrays those counters bounce between
# the cores' caches and cost more than the settlement itself.  Borrowed views
# (shardex.lowlevel.borrow) carry no counter; the caller's arrays outlive
# the call.


#: How many transactions ahead the settlement loops prefetch the rows of the
#: accounts a transaction declares.
PREFETCH_AHEAD = 2


@njit(cache=True, nogil=True, inline="always")
def _prefetch_accounts(r, n_decl, balances, positions, margin, write):
    """Warm the balance, margin and position rows of the first ``n_decl`` accounts ``r`` declares.

    With many accounts these rows miss every cache; fetched two transactions
    early, their misses overlap the current transaction's work.  Measured on
    10,000 trades over 100,000 accounts: the sequential kernel 6.8 -> 3.2 ms.
    The sequential loop fetches for writing (every declared account).  A
    parallel worker fetches for reading, the two trade accounts only: a row
    fetched for writing is taken from the other thread if it is working on
    that account (or, for the 24-byte balance and margin rows, on a
    neighbour sharing the line); in quiet runs the two intents measured
    alike, and reading is the safe one.
    """
    per_acct = positions.shape[1] * positions.shape[2]
    for j in range(n_decl):
        d = r.decl[j]
        if 0 <= d < balances.shape[0]:
            _prefetch(balances, d * balances.shape[1], write)
            _prefetch(margin, d * margin.shape[1], write)
            for off in range(0, per_acct, 8):
                _prefetch(positions, d * per_acct + off, write)
            _prefetch(positions, d * per_acct + per_acct - 1, write)


@njit(cache=True, nogil=True, inline="always")
def _prefetch(arr, flat, write):
    if write:
        prefetch_write(arr, flat)
    else:
        prefetch_read(arr, flat)


@njit(cache=True, nogil=True)
def _run_sequential(txns, balances, positions, margin, inst, marks, mccy, codes, aud, nrec):
    for t in range(txns.size):
        if t + PREFETCH_AHEAD < txns.size:
            _prefetch_accounts(txns[t + PREFETCH_AHEAD], MAX_DECL, balances, positions, margin, True)
        if codes[t] == R_OK:
            apply_txn(t, txns, balances, positions, margin, inst, marks, mccy, codes, aud, nrec, False)


@njit(cache=True, nogil=True)
def _wait(arr, idx, target, ctl):
    """Spin until ``arr[idx] >= target``; False if the batch was aborted meanwhile.

    A wait longer than ``ctl[CTL_TAKEOVER]`` cycles means the thread we wait
    for lost its core (the machine is shared): flag it, so that the rest of
    the batch is claimed by one thread instead of stalling again and again.
    """
    if target <= 0:  # the first transaction of the batch on this account: nothing to wait for, no load
        return True
    if load_acquire(arr, idx) >= target:
        return True
    start = cycles()
    spins = 0
    while load_acquire(arr, idx) < target:
        spins += 1
        if spins & SPIN_CHECK == 0:
            if load_acquire(ctl, CTL_ABORT) != 0:
                return False
            if cycles() - start > ctl[CTL_TAKEOVER]:
                store_release(ctl, CTL_STALLED, 1)
            if spins >= SPIN_YIELD:
                cpu_yield()
    return True


@njit(cache=True, nogil=True)
def _account_chunk(acc, c, t, aud, nrec):
    """Add transaction ``t``'s record count and hot-account deltas to chunk row ``acc[c]``."""
    acc[c, 0] += nrec[t]
    base = t * NSLOT
    for j in range(nrec[t]):
        rec = aud[base + j]
        col = 1 + 3 * rec.currency
        if rec.account == FEE_POOL:
            acc[c, col] += rec.delta
        elif rec.account == INSURANCE_FUND:
            acc[c, col + 1] += rec.delta
        elif rec.cause == C_DEPOSIT or rec.cause == C_WITHDRAWAL:
            acc[c, col + 2] += rec.delta


@njit(cache=True, nogil=True)
def _copy_chunk(c, offset, fee, ins, n_rows, nrec, aud, out):
    """Copy chunk ``c``'s records to ``out[offset:]`` in row order.

    ``fee`` and ``ins`` enter as the hot accounts' balances before the
    chunk (sums of all earlier chunks: fixed chunking, fixed order) and are
    advanced record by record to fill ``balance_after``.
    """
    m = offset
    for t in range(c * CHUNK_ROWS, min((c + 1) * CHUNK_ROWS, n_rows)):
        base = t * NSLOT
        for j in range(nrec[t]):
            src = aud[base + j]
            out[m] = src
            if src.account == FEE_POOL:
                fee[src.currency] += src.delta
                out[m].balance_after = fee[src.currency]
            elif src.account == INSURANCE_FUND:
                ins[src.currency] += src.delta
                out[m].balance_after = ins[src.currency]
            m += 1


@njit(cache=True, nogil=True)
def run_worker(
    k, n_threads, order, exp_ver, inst_wait, n_excl, ver, inst_done, ctl, acc,
    txns, balances, positions, margin, inst, marks, mccy, codes, aud, nrec,
    fee_pool, insurance, out,
):  # fmt: skip
    """Settlement thread ``k`` of ``n_threads`` (see ``_run_worker``), on borrowed views of its arrays."""
    _run_worker(
        k, n_threads, borrow(order), borrow(exp_ver), borrow(inst_wait), n_excl, borrow(ver), borrow(inst_done),
        borrow(ctl), borrow(acc), borrow(txns), borrow(balances), borrow(positions), borrow(margin), borrow(inst),
        borrow(marks), mccy, borrow(codes), borrow(aud), borrow(nrec), borrow(fee_pool), borrow(insurance),
        borrow(out),
    )  # fmt: skip


@njit(cache=True, nogil=True)
def run_worker_go(
    flags, slot, value, done_flags, done_slots, done_round, done_spins,
    k, n_threads, order, exp_ver, inst_wait, n_excl, ver, inst_done, ctl, acc,
    txns, balances, positions, margin, inst, marks, mccy, codes, aud, nrec,
    fee_pool, insurance, out,
):  # fmt: skip
    """``flags[slot] = value`` once the GIL is released (the calling thread starts a ``Crew`` round), then ``run_worker``.

    Then, the GIL still released, waits for the crew's threads to post their
    round done (``Crew.finish_line``): they end their share of the batch when
    this thread does, and returning while one of them holds the GIL would
    make this thread sleep until it is handed over.
    """
    store_seq_cst(flags, slot, value)
    run_worker(
        k, n_threads, order, exp_ver, inst_wait, n_excl, ver, inst_done, ctl, acc,
        txns, balances, positions, margin, inst, marks, mccy, codes, aud, nrec,
        fee_pool, insurance, out,
    )  # fmt: skip
    await_all(done_flags, done_slots, done_round, done_spins)


@njit(cache=True, nogil=True)
def _claim(ctl, n, taker):
    """This thread's next block of ``order``: ``(start, end, taker)``; ``start >= n`` when none is left for it.

    After a stall the first thread to claim takes every remaining entry (and
    becomes the taker); the others get nothing more.
    """
    if load_acquire(ctl, CTL_STALLED) != 0 and not taker:
        if fetch_add(ctl, CTL_TAKER, 1) == 0:
            return fetch_add(ctl, CTL_CURSOR, n), n, True
        return n, n, False
    block = n if taker else ctl[CTL_BLOCK]
    q0 = fetch_add(ctl, CTL_CURSOR, block)
    return q0, min(q0 + block, n), taker


@njit(cache=True, nogil=True)
def _run_worker(
    k, n_threads, order, exp_ver, inst_wait, n_excl, ver, inst_done, ctl, acc,
    txns, balances, positions, margin, inst, marks, mccy, codes, aud, nrec,
    fee_pool, insurance, out,
):  # fmt: skip
    """Settlement thread ``k`` of ``n_threads``: claim blocks of ``order``, run them, merge.

    ``order`` lists the valid transactions (by row, or level by level).
    Threads claim ``ctl[CTL_BLOCK]`` consecutive entries at a time from the
    shared cursor ``ctl[CTL_CURSOR]``; instead of a barrier after each level,
    a transaction waits only for its own predecessors: each declared
    account's counter in ``ver`` (transactions done that declared it) must
    reach ``exp_ver``.  Every predecessor sits earlier in ``order`` and each
    thread runs its block in order, so the earliest unfinished transaction
    can always run: no deadlock.

    If a thread stalled (``_wait``), the first thread to claim next takes
    all the remaining entries and the others stop: on a loaded machine one
    thread that keeps its core beats two that keep waiting for each other.

    While running, each thread sums its transactions' record counts and
    hot-account deltas per fixed chunk of ``CHUNK_ROWS`` rows into its own
    ``acc[k]`` (no sharing).  After all threads arrive, each derives every
    chunk's output offset and starting hot balances from ``acc`` (summing
    threads, then chunks, in a fixed order) and the threads copy chunks into
    ``out`` in parallel.  The caller adds the totals to the hot accounts.

    An ADL that chose an undeclared account sets ``ctl[CTL_ABORT]``; all
    threads stop and the caller re-runs the batch sequentially.
    """
    n = order.size
    mine = acc[k]
    taker = False
    prefetch = ctl[CTL_PREFETCH] != 0
    # With prefetching on, claims run one block ahead: the next block is
    # claimed before the current one runs, so the look-ahead reaches into it
    # and a block's first transactions do not start cold (one thread, 100,000
    # accounts: 3.8 -> 2.9 ms per 10,000 trades).  Every transaction a thread
    # holds precedes every one claimed after it, so waits still point only
    # backwards: no deadlock.  Without prefetching a thread claims when it is
    # done: holding two blocks widened the window of rows in flight, and with
    # few accounts more of them waited (100 accounts: 1.18x -> 1.00x).
    q0, q1, taker = _claim(ctl, n, taker)
    while q0 < n:
        if load_acquire(ctl, CTL_ABORT) != 0:
            break
        p0 = q0
        p1 = q1
        if prefetch:
            q0, q1, taker = _claim(ctl, n, taker)
        for p in range(p0, p1):
            if prefetch:
                ahead = p + PREFETCH_AHEAD
                if ahead >= p1:  # past this block: into the one claimed ahead (q1 >= p1 either way)
                    ahead = q0 + ahead - p1
                if ahead < q1:
                    _prefetch_accounts(txns[order[ahead]], 2, balances, positions, margin, False)
            t = order[p]
            r = txns[t]
            ok = True
            for j in range(MAX_DECL):
                d = r.decl[j]
                if d >= 0 and not _wait(ver, d, exp_ver[t, j], ctl):
                    ok = False
            kind = r.kind
            i = r.instrument
            sync_inst = n_excl > 0 and (kind == K_TRADE or kind == K_ADL)
            if ok and sync_inst:
                ok = _wait(inst_done, 2 * i, inst_wait[t, 0], ctl)
                if ok and kind == K_ADL:
                    ok = _wait(inst_done, 2 * i + 1, inst_wait[t, 1], ctl)
            if not ok:
                break
            if apply_txn(t, txns, balances, positions, margin, inst, marks, mccy, codes, aud, nrec, True) != ST_DONE:
                store_release(ctl, CTL_ABORT, 1)
                break
            _account_chunk(mine, t // CHUNK_ROWS, t, aud, nrec)
            for j in range(MAX_DECL):
                d = r.decl[j]
                if d >= 0:
                    store_release(ver, d, exp_ver[t, j] + 1)
            if sync_inst:
                if kind == K_TRADE:
                    fetch_add(inst_done, 2 * i + 1, 1)
                else:
                    store_release(inst_done, 2 * i, inst_wait[t, 0] + 1)
        if not prefetch:
            q0, q1, taker = _claim(ctl, n, taker)
    # -- merge the audit slots ------------------------------------------------
    fetch_add(ctl, CTL_ARRIVED, 1)
    if load_acquire(ctl, CTL_ABORT) != 0:
        return
    if not taker and load_acquire(ctl, CTL_TAKER) != 0:
        return  # a stall handed the batch to one thread; let it merge alone
    if not _wait(ctl, CTL_ARRIVED, n_threads, ctl):
        return
    n_chunks = acc.shape[1]
    n_ccy = fee_pool.size
    offsets = np.empty(n_chunks, np.int64)
    fee_start = np.empty((n_chunks, n_ccy), np.int64)
    ins_start = np.empty((n_chunks, n_ccy), np.int64)
    m = 0
    fee = fee_pool.copy()
    ins = insurance.copy()
    for c in range(n_chunks):
        offsets[c] = m
        fee_start[c] = fee
        ins_start[c] = ins
        for kk in range(acc.shape[0]):
            m += acc[kk, c, 0]
            for cc in range(n_ccy):
                fee[cc] += acc[kk, c, 1 + 3 * cc]
                ins[cc] += acc[kk, c, 2 + 3 * cc]
    while True:
        c = fetch_add(ctl, CTL_CHUNK, 1)
        if c >= n_chunks:
            break
        _copy_chunk(c, offsets[c], fee_start[c], ins_start[c], txns.size, nrec, aud, out)


@njit(cache=True, nogil=True)
def finalize(nrec, slots, fee_pool, insurance, net_flow, out):
    """Merge the per-transaction audit slots into ``out`` in row order.

    Adds hot-account deltas to ``fee_pool`` and ``insurance`` (int64
    ``[n_currencies]``) in that fixed order, filling their ``balance_after``,
    and deposits minus withdrawals into ``net_flow``.  Complexity: O(records).
    """
    m = 0
    for t in range(nrec.size):
        for j in range(nrec[t]):
            src = slots[t * NSLOT + j]
            c = src.currency
            acct = src.account
            after = src.balance_after
            if acct == FEE_POOL:
                fee_pool[c] += src.delta
                after = fee_pool[c]
            elif acct == INSURANCE_FUND:
                insurance[c] += src.delta
                after = insurance[c]
            elif src.cause == C_DEPOSIT or src.cause == C_WITHDRAWAL:
                net_flow[c] += src.delta
            out[m] = src
            out[m].balance_after = after
            m += 1
    return m


@njit(cache=True, nogil=True)
def declare_adl_kernel(txns, positions, marks, n_acc, n_inst):
    """Reconnaissance: declare each ADL's account and its likely counterparties.

    Ranks counterparties on the state as it is now (before the batch); the
    runner verifies the guess when the ADL runs.  Returns how many ADLs were
    declared.
    """
    picks = np.empty(ADL_MAX_PICKS, np.int64)
    m = 0
    for t in range(txns.size):
        r = txns[t]
        if r.kind != K_ADL or r.a < 0 or r.a >= n_acc or r.instrument < 0 or r.instrument >= n_inst:
            continue
        qa = positions[r.a, r.instrument, POS_QTY]
        n = adl_picks(r.a, r.instrument, min(max(r.qty, 0), abs(qa)), positions, marks, picks)
        r.decl[0] = r.a
        for j in range(ADL_MAX_PICKS):
            r.decl[j + 1] = picks[j] if j < n else -1
        m += 1
    return m


@njit(cache=True, nogil=True)
def remargin_all(balances, positions, margin, inst, marks, mccy):
    """Recompute every account's margin (after a mark update).  O(n_accounts * n_instruments)."""
    for a in range(balances.shape[0]):
        remargin(a, balances, positions, margin, inst, marks, mccy)


def aligned_zeros(n: int, dtype) -> np.ndarray:
    """``np.zeros(n, dtype)`` starting on a 64-byte cache-line boundary.

    Per-row arrays (reason codes, record counts, audit slots) are written by
    whichever thread claimed the row; with ``CLAIM_BLOCK`` rows per claim and
    aligned rows, two threads never write one cache line except at the edges
    of the slot array's blocks.
    """
    return aligned(n, dtype, 0)


def new_audit_slots(n: int) -> np.ndarray:
    """Aligned audit slots for ``n`` transactions, not zeroed.

    A slot is read only below its transaction's record count, and a record
    is written whole (every field) before it is counted, so zeroing the
    3.4 MB of slots a 10,000-transaction batch needs would be a memset on
    every batch for nothing.
    """
    return aligned(n * NSLOT, AUDIT_DTYPE)
