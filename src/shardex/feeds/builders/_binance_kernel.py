"""Byte-level Binance depth kernel: parse, sync rule, apply, cross-check, in one nogil pass.

One call walks a buffer of raw bytes: either many capture lines
``<receive_ts> <json>`` (a whole decompressed hftbacktest file) or one bare
websocket/REST message. It never builds a Python object; the JSON is walked
once, byte by byte, and only the keys the sync rule needs are read.

State lives in caller-owned arrays so the same book continues across calls
(files of a continuation, or one live message per call):

* ``st`` int64[N_STATE]: positions, phase, ids, grid, counters (``S_*``/``C_*``).
* ``bk`` int64[2, blocks, BLOCK], ``meta`` int64[2, 4, blocks] and ``hs``
  int64[2, 2, 2**k]: the two sides (0 bids, 1 asks), each the keys in a
  blocked sorted array and key -> lots in a hash (see ``_upsert``). A level's
  key is ``+ticks`` for bids and ``-ticks`` for asks, so both sides ascend
  with the best level last.
* ``pmeta``/``plv``: diffs buffered while there is no book (before the first
  snapshot, or after a gap), already parsed to ticks and lots.
* ``lv``: scratch for the levels of the message being parsed; nothing in the
  book changes until a message is fully parsed, so a message that needs more
  room is simply re-read after the caller grows the arrays.
* ``ev`` int64[cap, 4]: (line, code, a, b) events for the Python layer to report.

Kernels return integer codes (``R_*``); the Python builder grows arrays or
raises. Prices and quantities are read straight into integers of
``10**-S_PXDEC`` / ``10**-S_QDEC`` (the precision the venue prints), with no
division; a level off the instrument's own tick/lot (``S_VTICK``/``S_VLOT``,
from exchangeInfo) is counted and reported.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shardex.lowlevel import borrow

# ---- state slots --------------------------------------------------------------
S_POS = 0  # byte offset of the next unread line
S_LINE = 1  # lines (or messages) consumed so far
S_PHASE = 2  # PH_*
S_LAST_U = 3  # final update id of the last applied diff
S_SNAP_L = 4  # lastUpdateId of the snapshot loaded (phase AWAIT)
S_NB = 5  # bid levels
S_NA = 6  # ask levels
S_FUTURES = 7  # 1: futures rule (pu), 0: spot rule (U == last_u + 1)
S_PREFIX = 8  # 1: lines are "<int receive ts> <json>"
S_TS_MULT = 9  # receive ts unit -> ns (1 or 1000)
S_PXDEC = 10  # decimals a price is held at: ticks are 10**-S_PXDEC
S_QDEC = 11  # decimals a quantity is held at: lots are 10**-S_QDEC
S_AFTER_GAP = 12  # the next sync is a resync
S_RECV = 13  # receive ns of the current message (given in message mode)
S_NPEND = 14  # buffered diffs
S_NPLV = 15  # levels of the buffered diffs
S_NEV = 16  # events written to ev
S_EV_LOST = 17  # events not written (ev full)
S_SNAP_SEEN = 18  # a snapshot was parsed at least once
S_CROSSED_NOW = 19  # the book is crossed after the last message

C_BOOK_MSGS = 20  # depth diffs + snapshots for this book
C_APPLIED = 21  # diffs applied to a synced book
C_STALE = 22  # diffs dropped as covered by the snapshot
C_GAPS = 23
C_RESYNCS = 24
C_SNAPSHOTS = 25
C_SNAP_REJECT = 26  # snapshots older than the buffered diffs
C_CROSSED = 27  # messages after which the synced book was crossed
C_XOK = 28  # bookTicker cross-checks that matched
C_XBAD = 29  # ... that did not
C_OFFGRID = 30  # levels off the instrument's grid (kept exactly, reported)
C_MALFORMED = 31
C_UNKNOWN = 32  # JSON objects of no known kind
C_OTHER = 33  # known channels that do not touch the book (trade, markPrice, ...)
C_FOREIGN = 34  # messages for another symbol
C_TICKERS = 35
C_PEND_DROP = 36  # buffered diffs thrown away because the buffer was full
C_SNAP_IGNORED = 37  # snapshots received while synced
C_SYNCS = 38  # times the book became synced
C_BUFFERED = 39  # diffs that went to the buffer

T_HAVE = 40  # a bookTicker is waiting for the book to reach its update id
T_U = 41
T_BP = 42
T_BQ = 43
T_AP = 44
T_AQ = 45
T_LINE = 46
T_POS = 48  # T_HAVE == 2: byte offset of the ticker object in this call's buffer, values not read yet
S_NEED = 49  # R_GROW_BOOK: levels of the message that did not fit

B_BP = 50  # best bid/ask read after the last book message (ticks, lots)
B_BQ = 51
B_AP = 52
B_AQ = 53
B_E = 54  # exchange event time (ms) of the last book message
B_RECV = 55  # its receive time (ns)
B_READS = 56  # best bid/ask reads
S_NORD = 58  # blocks in use, bids (58) and asks (59)
S_NFREE = 60  # free block ids, bids (60) and asks (61)
S_VTICK = 62  # instrument tick in held ticks (0 or 1: no check)
S_VLOT = 63  # instrument lot in held lots (0 or 1: no check)
S_STRICT = 57  # 1: a level off the instrument grid discards the book too
C_UNREPR = 47  # messages with a decimal finer than the held precision (book discarded)
S_FIELDS = 64  # st[S_FIELDS : S_FIELDS + N_F]: the per-line fields (F_*) of the line being read

#: Levels per block of the blocked sorted array (see _upsert).
BLOCK = 64
M_CNT = 0  # meta[side, M_CNT, block id]: levels in that block
M_ORDER = 1  # meta[side, M_ORDER, i]: block id at sorted position i
M_MIN = 2  # meta[side, M_MIN, i]: first key of the block at sorted position i
M_FREE = 3  # meta[side, M_FREE, :nfree]: stack of free block ids

PH_NOBOOK = 0
PH_AWAIT = 1  # snapshot loaded, waiting for the diff that bridges it
PH_SYNCED = 2

# ---- return codes -------------------------------------------------------------
R_DONE = 0
R_GROW_BOOK = 1
R_GROW_SCRATCH = 2

# ---- event codes (ev[:, 1]) ---------------------------------------------------
EV_GAP = 1  # a: expected id (last_u or last_u+1), b: the diff's U (spot) or pu (futures)
EV_RESYNC = 2  # a: update id synced at
EV_SNAP_REJECT = 3  # a: snapshot lastUpdateId, b: first buffered U
EV_CROSSED = 4  # a: best bid ticks, b: best ask ticks
EV_XBAD = 5  # a: ticker u
EV_OFFGRID = 6  # a: ticks, b: lots of the first level off the instrument grid
EV_UNREPR = 12  # a decimal finer than the book's precision
EV_MALFORMED = 7  # a: byte offset within the line
EV_UNKNOWN = 8
EV_PEND_DROP = 9  # a: number of buffered diffs dropped
EV_SYNC = 10  # a: update id synced at (first sync)
EV_BOOK_DISCARDED = 11  # a: reason (EV_OFFGRID / EV_MALFORMED)

# ---- per-line fields ----------------------------------------------------------
F_KIND = 0  # K_*
F_U = 1
F_LU = 2
F_PU = 3
F_E = 4
F_LUID = 5
F_NLV = 6
F_ERR = 7  # ERR_*
F_TBP = 8
F_TBQ = 9
F_TAP = 10
F_TAQ = 11
F_HAS_PU = 12
F_NOFF = 13  # levels off the instrument grid
F_STOP = 14  # where the walk stopped early (a line of no interest)
F_OFFPX = 15  # first off-grid level (ticks, lots), for the report
F_OFFQ = 16
F_TOBJ = 17  # where the message's innermost object starts
N_F = 20
N_STATE = S_FIELDS + N_F

K_NONE = 0
K_DEPTH = 1
K_TICKER = 2
K_SNAPSHOT = 3
K_OTHER = 4
K_FOREIGN = 5
K_TICKER_LAZY = 6  # a bookTicker not comparable yet: only u and its offset were read
K_TICKER_PAST = 7  # a bookTicker the book has already moved past

ERR_NONE = 0
ERR_MALFORMED = 1
ERR_OFFGRID = 2
ERR_SCRATCH = 3

_UNIT_DEC = 8


@njit(cache=True, nogil=True)
def _ws(buf, p, end):
    while p < end and (buf[p] == 32 or buf[p] == 9 or buf[p] == 13):
        p += 1
    return p


@njit(cache=True, nogil=True)
def _skip_string(buf, p, end):
    """p at the opening quote; returns the index after the closing quote, -1 if unterminated."""
    p += 1
    while p < end:
        c = buf[p]
        if c == 34:
            return p + 1
        if c == 92:
            p += 2
        elif c == 10:
            return -1  # a raw newline ends the line: the string is cut
        else:
            p += 1
    return -1


@njit(cache=True, nogil=True)
def _skip_value(buf, p, end):
    """Skip any JSON value starting at p; returns the index after it, -1 if malformed."""
    p = _ws(buf, p, end)
    if p >= end:
        return -1
    c = buf[p]
    if c == 34:
        return _skip_string(buf, p, end)
    if c == 123 or c == 91:
        depth = 0
        while p < end:
            c = buf[p]
            if c == 34:
                p = _skip_string(buf, p, end)
                if p < 0:
                    return -1
                continue
            if c == 123 or c == 91:
                depth += 1
            elif c == 10:
                return -1
            elif c == 125 or c == 93:
                depth -= 1
                if depth == 0:
                    return p + 1
            p += 1
        return -1
    # number or literal: runs to the next delimiter
    while p < end:
        c = buf[p]
        if c == 44 or c == 125 or c == 93 or c == 32 or c == 10:
            return p
        p += 1
    return p


@njit(cache=True, nogil=True)
def _parse_int(buf, p, end):
    """Integer at p (optionally quoted or negative): (value, next index); next -1 if malformed."""
    p = _ws(buf, p, end)
    quoted = p < end and buf[p] == 34
    if quoted:
        p += 1
    neg = p < end and buf[p] == 45
    if neg:
        p += 1
    v = 0
    start = p
    while p < end and 48 <= buf[p] <= 57:
        v = v * 10 + (buf[p] - 48)
        p += 1
    if p == start:
        return 0, -1
    if quoted:
        if p >= end or buf[p] != 34:
            return 0, -1
        p += 1
    return (-v if neg else v), p


@njit(cache=True, nogil=True)
def _parse_dec(buf, p, end, dec):
    """Quoted decimal string at p as an exact integer of 10**-dec: (value, next index, err).

    err is ERR_MALFORMED, or ERR_OFFGRID when a non-zero digit lies below
    10**-dec (the value cannot be held exactly). No division anywhere: the
    digits are simply accumulated and padded.
    """
    if p >= end or buf[p] != 34:
        p = _ws(buf, p, end)
        if p >= end or buf[p] != 34:
            return 0, -1, ERR_MALFORMED
    p += 1
    v = 0
    nd = 0
    c = buf[p] if p < end else 0
    while 48 <= c <= 57:
        v = v * 10 + (c - 48)
        nd += 1
        p += 1
        c = buf[p] if p < end else 0
    frac = 0
    err = ERR_NONE
    if c == 46:
        p += 1
        c = buf[p] if p < end else 0
        while 48 <= c <= 57:
            if frac < dec:
                v = v * 10 + (c - 48)
                frac += 1
            elif c != 48:
                err = ERR_OFFGRID
            nd += 1
            p += 1
            c = buf[p] if p < end else 0
    if nd == 0 or nd > 18 or c != 34:
        return 0, -1, ERR_MALFORMED
    while frac < dec:
        v *= 10
        frac += 1
    return v, p + 1, err


@njit(cache=True, nogil=True)
def _parse_levels(buf, p, end, side, lv, F, st):
    """Array of [price, qty] string pairs at p into lv rows (side, key, lots); next index or -1."""
    pdec = st[S_PXDEC]
    qdec = st[S_QDEC]
    vt = st[S_VTICK]
    vl = st[S_VLOT]
    p = _ws(buf, p, end)
    if p >= end or buf[p] != 91:
        return -1
    p = _ws(buf, p + 1, end)
    if p < end and buf[p] == 93:
        return p + 1
    cap = lv.shape[0]
    while p < end:
        if buf[p] != 91:
            return -1
        px, p, e1 = _parse_dec(buf, p + 1, end, pdec)
        if p < 0:
            return -1
        if buf[p] != 44:
            p = _ws(buf, p, end)
            if p >= end or buf[p] != 44:
                return -1
        qty, p, e2 = _parse_dec(buf, p + 1, end, qdec)
        if p < 0:
            return -1
        if p < end and buf[p] != 93:
            p = _ws(buf, p, end)
            while p < end and buf[p] == 44:  # venues that add fields per level: skip them
                p = _skip_value(buf, p + 1, end)
                if p < 0:
                    return -1
                p = _ws(buf, p, end)
            if p >= end or buf[p] != 93:
                return -1
        p += 1
        if e1 != ERR_NONE or e2 != ERR_NONE:
            F[F_ERR] = ERR_OFFGRID
        elif (vt > 1 and px % vt != 0) or (vl > 1 and qty % vl != 0):
            if F[F_NOFF] == 0:
                F[F_OFFPX] = px
                F[F_OFFQ] = qty
            F[F_NOFF] += 1
        n = F[F_NLV]
        if n >= cap:
            F[F_ERR] = ERR_SCRATCH
        else:
            lv[n, 0] = side
            lv[n, 1] = px if side == 0 else -px
            lv[n, 2] = qty
            F[F_NLV] = n + 1
        if p < end and buf[p] != 44 and buf[p] != 93:
            p = _ws(buf, p, end)
        if p < end and buf[p] == 44:
            p = _ws(buf, p + 1, end)
            continue
        if p < end and buf[p] == 93:
            return p + 1
        return -1
    return -1


@njit(cache=True, nogil=True)
def _key_is(buf, ks, ke, word):
    if ke - ks != len(word) or ke > buf.shape[0]:
        return False
    for i in range(ke - ks):
        if buf[ks + i] != word[i]:
            return False
    return True


@njit(cache=True, nogil=True)
def _walk(buf, p, end, F, lv, sym, st):
    """Walk one message object at p, filling F and lv; returns the index after it or -1.

    Descends into ``"data"`` once (the combined-stream envelope). Stops early,
    returning ``end``, as soon as the message is known not to concern the book.
    """
    p = _ws(buf, p, end)
    if p >= end or buf[p] != 123:
        return -1
    F[F_TOBJ] = p
    p += 1
    depth = 1
    while p < end:
        p = _ws(buf, p, end)
        if p >= end:
            return -1
        c = buf[p]
        if c == 44:
            p += 1
            continue
        if c == 125:
            depth -= 1
            p += 1
            if depth == 0:
                return p
            continue
        if c != 34:
            return -1
        ks = p + 1
        p = _skip_string(buf, p, end)
        if p < 0:
            return -1
        ke = p - 1
        p = _ws(buf, p, end)
        if p >= end or buf[p] != 58:
            return -1
        p = _ws(buf, p + 1, end)
        if p >= end:
            return -1
        klen = ke - ks
        k0 = buf[ks]
        c = buf[p]
        if klen == 1:
            if k0 == 85:  # U
                v, p = _parse_int(buf, p, end)
                F[F_U] = v
            elif k0 == 117:  # u
                v, p = _parse_int(buf, p, end)
                F[F_LU] = v
                if F[F_KIND] == K_TICKER and p > 0 and st[S_PREFIX] == 1:
                    synced = st[S_PHASE] == PH_SYNCED
                    if synced and v < st[S_LAST_U]:
                        # the book is already past this ticker: it can never be compared
                        F[F_KIND] = K_TICKER_PAST
                        F[F_STOP] = p
                        return end
                    if not synced or v > st[S_LAST_U]:
                        # compared only if a later diff ends exactly at u: read the prices then
                        F[F_KIND] = K_TICKER_LAZY
                        F[F_STOP] = p
                        return end
            elif k0 == 69:  # E
                v, p = _parse_int(buf, p, end)
                F[F_E] = v
            elif (k0 == 98 or k0 == 97) and c == 91:  # b / a as level arrays
                p = _parse_levels(buf, p, end, 0 if k0 == 98 else 1, lv, F, st)
                if F[F_KIND] == K_NONE:
                    F[F_KIND] = K_DEPTH
            elif k0 == 98 or k0 == 97 or k0 == 66 or k0 == 65:  # bookTicker fields
                isq = k0 == 66 or k0 == 65
                v, p, err = _parse_dec(buf, p, end, st[S_QDEC] if isq else st[S_PXDEC])
                m = st[S_VLOT] if isq else st[S_VTICK]
                if err != ERR_NONE:
                    F[F_ERR] = ERR_OFFGRID
                elif m > 1 and v % m != 0:
                    F[F_NOFF] += 1
                if k0 == 98:
                    F[F_TBP] = v
                elif k0 == 97:
                    F[F_TAP] = v
                elif k0 == 66:
                    F[F_TBQ] = v
                else:
                    F[F_TAQ] = v
            elif k0 == 101:  # e: event type
                if _key_is(buf, p + 1, p + 12, b"depthUpdate"):
                    F[F_KIND] = K_DEPTH
                elif _key_is(buf, p + 1, p + 11, b"bookTicker"):
                    F[F_KIND] = K_TICKER
                else:
                    F[F_KIND] = K_OTHER
                    F[F_STOP] = p
                    return end
                p = _skip_value(buf, p, end)
            elif k0 == 115 and len(sym) > 0 and F[F_KIND] != K_FOREIGN:  # s: symbol
                q = p + 1
                i = 0
                same = True
                while q < end and buf[q] != 34:
                    ch = buf[q]
                    if 65 <= ch <= 90:
                        ch += 32
                    if i >= len(sym) or ch != sym[i]:
                        same = False
                    i += 1
                    q += 1
                if not same or i != len(sym):
                    F[F_KIND] = K_FOREIGN
                    F[F_STOP] = q
                    return end
                p = _skip_value(buf, p, end)
            else:
                p = _skip_value(buf, p, end)
        elif klen == 2 and k0 == 112 and buf[ks + 1] == 117:  # pu
            v, p = _parse_int(buf, p, end)
            F[F_PU] = v
            F[F_HAS_PU] = 1
        elif klen == 4 and c == 123 and _key_is(buf, ks, ke, b"data"):
            depth += 1
            F[F_TOBJ] = p
            p += 1
        elif klen == 4 and (_key_is(buf, ks, ke, b"bids") or _key_is(buf, ks, ke, b"asks")):
            p = _parse_levels(buf, p, end, 0 if k0 == 98 else 1, lv, F, st)
        elif klen == 6 and c == 34 and _key_is(buf, ks, ke, b"stream"):
            # "<symbol>@<channel>": decide early whether the line matters at all
            q = p + 1
            i = 0
            same = True
            while q < end and buf[q] != 64 and buf[q] != 34:
                if len(sym) > 0 and (i >= len(sym) or buf[q] != sym[i]):
                    same = False
                i += 1
                q += 1
            if len(sym) > 0 and (not same or i != len(sym)):
                F[F_KIND] = K_FOREIGN
                F[F_STOP] = q
                return end
            if q < end and buf[q] == 64:
                if _key_is(buf, q + 1, q + 6, b"depth"):
                    F[F_KIND] = K_DEPTH
                elif _key_is(buf, q + 1, q + 11, b"bookTicker"):
                    F[F_KIND] = K_TICKER
                else:
                    F[F_KIND] = K_OTHER
                    F[F_STOP] = q
                    return end
            p = _skip_value(buf, p, end)
        elif klen == 12 and _key_is(buf, ks, ke, b"lastUpdateId"):
            v, p = _parse_int(buf, p, end)
            F[F_LUID] = v
            F[F_KIND] = K_SNAPSHOT
        else:
            p = _skip_value(buf, p, end)
        if p < 0:
            return -1
    return -1


@njit(cache=True, nogil=True)
def _event(st, ev, line, code, a, b):
    n = st[S_NEV]
    if n < ev.shape[0]:
        ev[n, 0] = line
        ev[n, 1] = code
        ev[n, 2] = a
        ev[n, 3] = b
        st[S_NEV] = n + 1
    else:
        st[S_EV_LOST] += 1


@njit(cache=True, nogil=True)
def _reset_side(st, meta, side):
    """Empty one side's order: no blocks in order, every block id free (the hash is cleared apart)."""
    cap = meta.shape[2]
    for i in range(cap):
        meta[side, M_FREE, i] = cap - 1 - i
    st[S_NORD + side] = 0
    st[S_NFREE + side] = cap
    st[S_NB + side] = 0


@njit(cache=True, nogil=True)
def _take_block(st, meta, side):
    nf = st[S_NFREE + side] - 1
    st[S_NFREE + side] = nf
    return meta[side, M_FREE, nf]


@njit(cache=True, nogil=True)
def _slot(hs, side, key, mask):
    """Linear-probe slot of key in the side's hash: (slot, found). Multiplicative hashing
    scatters consecutive tick keys, so probes stay short at load <= 1/2."""
    i = (key * 2654435761) & mask
    while hs[side, 1, i] != 0:
        if hs[side, 0, i] == key:
            return i, True
        i = (i + 1) & mask
    return i, False


@njit(cache=True, nogil=True)
def _hash_delete(hs, side, i, mask):
    """Remove slot i, shifting later entries of its probe run back (no tombstones)."""
    j = i
    while True:
        hs[side, 1, i] = 0
        while True:
            j = (j + 1) & mask
            if hs[side, 1, j] == 0:
                return
            k = (hs[side, 0, j] * 2654435761) & mask
            # move j into the hole at i unless its home k lies cyclically in (i, j]
            if i <= j:
                if i < k <= j:
                    continue
            elif i < k or k <= j:
                continue
            break
        hs[side, 0, i] = hs[side, 0, j]
        hs[side, 1, i] = hs[side, 1, j]
        i = j


# The order helpers index the 3-D arrays directly rather than taking views
# (``bk[side, b]``): every view is an atomic refcount increment and decrement,
# which cost more than the binary searches they served.


@njit(cache=True, nogil=True)
def _order_insert(bk, meta, st, side, key):
    """Insert key into the side's blocked sorted array (it is known to be absent)."""
    nord = st[S_NORD + side]
    if nord == 0:
        b = _take_block(st, meta, side)
        bk[side, b, 0] = key
        meta[side, M_CNT, b] = 1
        meta[side, M_ORDER, 0] = b
        meta[side, M_MIN, 0] = key
        st[S_NORD + side] = 1
        return
    pos = _find_block(meta, side, nord, key)
    b = meta[side, M_ORDER, pos]
    n = meta[side, M_CNT, b]
    lo = _find_in_block(bk, side, b, n, key)
    if n == BLOCK:
        # split: the upper half moves to a new block right after this one
        nb = _take_block(st, meta, side)
        half = BLOCK >> 1
        for i in range(half, BLOCK):
            bk[side, nb, i - half] = bk[side, b, i]
        meta[side, M_CNT, b] = half
        meta[side, M_CNT, nb] = BLOCK - half
        for i in range(nord, pos + 1, -1):
            meta[side, M_ORDER, i] = meta[side, M_ORDER, i - 1]
            meta[side, M_MIN, i] = meta[side, M_MIN, i - 1]
        meta[side, M_ORDER, pos + 1] = nb
        meta[side, M_MIN, pos + 1] = bk[side, nb, 0]
        st[S_NORD + side] = nord + 1
        if lo > half:
            b = nb
            lo -= half
            pos += 1
        n = meta[side, M_CNT, b]
    for i in range(n, lo, -1):
        bk[side, b, i] = bk[side, b, i - 1]
    bk[side, b, lo] = key
    meta[side, M_CNT, b] = n + 1
    if lo == 0:
        meta[side, M_MIN, pos] = key


@njit(cache=True, nogil=True)
def _order_delete(bk, meta, st, side, key):
    """Delete key (known present) from the side's blocked sorted array."""
    nord = st[S_NORD + side]
    pos = _find_block(meta, side, nord, key)
    b = meta[side, M_ORDER, pos]
    n = meta[side, M_CNT, b]
    lo = _find_in_block(bk, side, b, n, key)
    for i in range(lo, n - 1):
        bk[side, b, i] = bk[side, b, i + 1]
    meta[side, M_CNT, b] = n - 1
    if n - 1 == 0:
        for i in range(pos, nord - 1):
            meta[side, M_ORDER, i] = meta[side, M_ORDER, i + 1]
            meta[side, M_MIN, i] = meta[side, M_MIN, i + 1]
        st[S_NORD + side] = nord - 1
        meta[side, M_FREE, st[S_NFREE + side]] = b
        st[S_NFREE + side] += 1
    elif lo == 0:
        meta[side, M_MIN, pos] = bk[side, b, 0]


@njit(cache=True, nogil=True)
def _find_block(meta, side, nord, key):
    """Sorted position of the block that holds key: the last whose first key <= key.

    Most updates land near the best (the end), so gallop down from the top,
    then binary-search the bracket: O(log distance from the top).
    """
    hi = nord
    step = 1
    lo = nord - 1
    while lo > 0 and meta[side, M_MIN, lo] > key:
        hi = lo
        lo -= step
        step <<= 1
    if lo < 0:
        lo = 0
    while lo < hi:
        mid = (lo + hi) >> 1
        le = meta[side, M_MIN, mid] <= key
        lo = mid + 1 if le else lo
        hi = hi if le else mid
    return lo - 1 if lo > 0 else 0


@njit(cache=True, nogil=True)
def _find_in_block(bk, side, b, n, key):
    """Index of the first key >= key within block b: a count of smaller keys, with no
    data-dependent branch (LLVM vectorizes it; at most BLOCK compares)."""
    c = 0
    for i in range(n):
        c += bk[side, b, i] < key
    return c


@njit(cache=True, nogil=True)
def _upsert(bk, hs, meta, st, side, key, qty):
    """Set the level at key to qty lots (0 deletes).

    Quantities live in an open-addressing hash (``hs[side, 0]`` keys,
    ``hs[side, 1]`` lots, 0 = empty), so a size change at an existing level,
    60% of USDⓈ-M BTCUSDT's level updates, is one probe. Only a new or a
    removed level touches the order: a blocked sorted array of keys (blocks of
    at most BLOCK, first keys in ``meta[side, M_MIN]``), where an insert or
    delete costs two binary searches and a move of at most BLOCK keys, however
    far from the top (a flat sorted array moved ~5,000 levels for each far
    update and ran 10x slower).
    """
    mask = hs.shape[2] - 1
    i, found = _slot(hs, side, key, mask)
    if found:
        if qty != 0:
            hs[side, 1, i] = qty
            return
        _hash_delete(hs, side, i, mask)
        _order_delete(bk, meta, st, side, key)
        st[S_NB + side] -= 1
        return
    if qty == 0:
        return
    hs[side, 0, i] = key
    hs[side, 1, i] = qty
    _order_insert(bk, meta, st, side, key)
    st[S_NB + side] += 1


@njit(cache=True, nogil=True)
def _best(bk, hs, meta, st, side):
    """(key, lots) of the best level of one side (largest key); (0, 0) when empty. O(1)."""
    nord = st[S_NORD + side]
    if nord == 0:
        return 0, 0
    b = meta[side, M_ORDER, nord - 1]
    n = meta[side, M_CNT, b]
    key = bk[side, b, n - 1]
    i, found = _slot(hs, side, key, hs.shape[2] - 1)
    return key, hs[side, 1, i]


@njit(cache=True, nogil=True)
def rehash(hs, new):
    """Copy every entry of hs into the larger empty table new (same layout)."""
    mask = new.shape[2] - 1
    for side in range(2):
        for j in range(hs.shape[2]):
            if hs[side, 1, j] != 0:
                i, found = _slot(new, side, hs[side, 0, j], mask)
                new[side, 0, i] = hs[side, 0, j]
                new[side, 1, i] = hs[side, 1, j]


@njit(cache=True, nogil=True)
def _apply_levels(bk, hs, meta, st, lv, start, n):
    for i in range(start, start + n):
        _upsert(bk, hs, meta, st, lv[i, 0], lv[i, 1], lv[i, 2])


@njit(cache=True, nogil=True)
def _read_lazy_ticker(buf, st):
    """Read b/B/a/A of the bookTicker object at st[T_POS] into the T_* slots (T_HAVE 2 -> 1)."""
    F = np.zeros(N_F, np.int64)
    n = buf.shape[0]
    p = st[T_POS] + 1
    ok = True
    while p < n and ok:
        p = _ws(buf, p, n)
        if p >= n or buf[p] == 125:
            break
        if buf[p] == 44:
            p += 1
            continue
        ks = p + 1
        p = _skip_string(buf, p, n)
        if p < 0:
            ok = False
            break
        k0 = buf[ks]
        one = p - 1 - ks == 1
        p = _ws(buf, p, n)
        if p >= n or buf[p] != 58:
            ok = False
            break
        p = _ws(buf, p + 1, n)
        if one and (k0 == 98 or k0 == 97 or k0 == 66 or k0 == 65) and p < n and buf[p] == 34:
            isq = k0 == 66 or k0 == 65
            v, p, err = _parse_dec(buf, p, n, st[S_QDEC] if isq else st[S_PXDEC])
            if err != ERR_NONE:
                ok = False
            if k0 == 98:
                st[T_BP] = v
            elif k0 == 97:
                st[T_AP] = v
            elif k0 == 66:
                st[T_BQ] = v
            else:
                st[T_AQ] = v
        else:
            p = _skip_value(buf, p, n)
        if p < 0:
            ok = False
    st[T_HAVE] = 1 if ok else 0


@njit(cache=True, nogil=True)
def _check_ticker(bk, hs, meta, st, ev, buf):
    """Compare a waiting bookTicker with the book when both stand at the same update id."""
    if st[T_HAVE] == 0 or st[S_PHASE] != PH_SYNCED:
        return
    if st[T_U] < st[S_LAST_U]:
        st[T_HAVE] = 0  # the book moved past it in one diff: never comparable
        return
    if st[T_U] > st[S_LAST_U]:
        return
    if st[T_HAVE] == 2:
        _read_lazy_ticker(buf, st)
        if st[T_HAVE] == 0:
            return
    st[T_HAVE] = 0
    bpx, hsty = _best(bk, hs, meta, st, 0)
    apx, aqty = _best(bk, hs, meta, st, 1)
    ok = (
        st[S_NB] > 0
        and st[S_NA] > 0
        and bpx == st[T_BP]
        and hsty == st[T_BQ]
        and -apx == st[T_AP]
        and aqty == st[T_AQ]
    )
    if ok:
        st[C_XOK] += 1
    else:
        st[C_XBAD] += 1
        _event(st, ev, st[T_LINE], EV_XBAD, st[T_U], 0)


@njit(cache=True, nogil=True)
def _read_best(bk, hs, meta, st, ev, line):
    """Best bid/ask after a book message (the read every consumer makes), and the crossed check."""
    nb = st[S_NB]
    na = st[S_NA]
    st[B_READS] += 1
    bpx, hsty = _best(bk, hs, meta, st, 0)
    apx, aqty = _best(bk, hs, meta, st, 1)
    st[B_BP] = bpx
    st[B_BQ] = hsty
    st[B_AP] = -apx
    st[B_AQ] = aqty
    crossed = nb > 0 and na > 0 and bpx >= -apx
    if crossed:
        st[C_CROSSED] += 1
        if st[S_CROSSED_NOW] == 0:
            _event(st, ev, line, EV_CROSSED, st[B_BP], st[B_AP])
    st[S_CROSSED_NOW] = 1 if crossed else 0


@njit(cache=True, nogil=True)
def _buffer_diff(st, pmeta, plv, ev, line, U, u, pu, lv, start, n):
    """Keep a diff for after the next snapshot; when the buffer is full the oldest ones go."""
    if st[S_NPEND] >= pmeta.shape[0] or st[S_NPLV] + n > plv.shape[0]:
        _event(st, ev, line, EV_PEND_DROP, st[S_NPEND], 0)
        st[C_PEND_DROP] += st[S_NPEND]
        st[S_NPEND] = 0
        st[S_NPLV] = 0
        if n > plv.shape[0]:
            st[C_PEND_DROP] += 1
            return
    m = st[S_NPEND]
    o = st[S_NPLV]
    pmeta[m, 0] = U
    pmeta[m, 1] = u
    pmeta[m, 2] = pu
    pmeta[m, 3] = o
    pmeta[m, 4] = n
    pmeta[m, 5] = line
    for i in range(n):
        plv[o + i, 0] = lv[start + i, 0]
        plv[o + i, 1] = lv[start + i, 1]
        plv[o + i, 2] = lv[start + i, 2]
    st[S_NPEND] = m + 1
    st[S_NPLV] = o + n
    st[C_BUFFERED] += 1


@njit(cache=True, nogil=True)
def _discard_book(st, meta, hs):
    _reset_side(st, meta, 0)
    _reset_side(st, meta, 1)
    hs[:, 1, :] = 0
    st[S_PHASE] = PH_NOBOOK
    st[S_AFTER_GAP] = 1
    st[S_CROSSED_NOW] = 0
    st[T_HAVE] = 0


@njit(cache=True, nogil=True)
def _on_diff(bk, hs, meta, st, pmeta, plv, ev, line, U, u, pu, lv, start, n):
    """The venue's continuity rule for one diff (Binance spot or futures)."""
    ph = st[S_PHASE]
    fut = st[S_FUTURES] == 1
    if ph == PH_NOBOOK:
        _buffer_diff(st, pmeta, plv, ev, line, U, u, pu, lv, start, n)
        return
    if ph == PH_AWAIT:
        L = st[S_SNAP_L]
        if (fut and u < L) or (not fut and u <= L):
            st[C_STALE] += 1
            return
        if (fut and U <= L) or (not fut and U <= L + 1):
            _apply_levels(bk, hs, meta, st, lv, start, n)
            st[S_PHASE] = PH_SYNCED
            st[S_LAST_U] = u
            st[C_APPLIED] += 1
            st[C_SYNCS] += 1
            if st[S_AFTER_GAP] == 1:
                st[C_RESYNCS] += 1
                st[S_AFTER_GAP] = 0
                _event(st, ev, line, EV_RESYNC, u, L)
            else:
                _event(st, ev, line, EV_SYNC, u, L)
            return
        # the snapshot is older than everything still to come: it can never bridge
        st[C_SNAP_REJECT] += 1
        _event(st, ev, line, EV_SNAP_REJECT, L, U)
        after = st[S_AFTER_GAP]
        _discard_book(st, meta, hs)
        st[S_AFTER_GAP] = after
        _buffer_diff(st, pmeta, plv, ev, line, U, u, pu, lv, start, n)
        return
    last = st[S_LAST_U]
    if (fut and pu == last) or (not fut and U == last + 1):
        _apply_levels(bk, hs, meta, st, lv, start, n)
        st[S_LAST_U] = u
        st[C_APPLIED] += 1
        return
    st[C_GAPS] += 1
    _event(st, ev, line, EV_GAP, last if fut else last + 1, pu if fut else U)
    _discard_book(st, meta, hs)
    _buffer_diff(st, pmeta, plv, ev, line, U, u, pu, lv, start, n)


@njit(cache=True, nogil=True)
def _on_snapshot(bk, hs, meta, st, pmeta, plv, ev, line, luid, lv, n, buf):
    st[C_SNAPSHOTS] += 1
    st[S_SNAP_SEEN] = 1
    if st[S_PHASE] == PH_SYNCED:
        st[C_SNAP_IGNORED] += 1  # a synced book needs no snapshot; it stays as it is
        return
    after = st[S_AFTER_GAP]
    _discard_book(st, meta, hs)
    st[S_AFTER_GAP] = after
    _apply_levels(bk, hs, meta, st, lv, 0, n)
    st[S_PHASE] = PH_AWAIT
    st[S_SNAP_L] = luid
    # replay what was buffered, oldest first; a diff may go back to the buffer
    m = st[S_NPEND]
    if m == 0:
        return
    held = pmeta[:m].copy()
    lvs = plv[: st[S_NPLV]].copy()
    st[S_NPEND] = 0
    st[S_NPLV] = 0
    for i in range(m):
        _on_diff(bk, hs, meta, st, pmeta, plv, ev, held[i, 5], held[i, 0], held[i, 1], held[i, 2], lvs, held[i, 3], held[i, 4])
    if st[S_PHASE] == PH_SYNCED:
        _check_ticker(bk, hs, meta, st, ev, buf)


@njit(cache=True, nogil=True)
def _line_end(buf, p, n):
    """Index of the next newline at or after p (n if none).

    Sixteen bytes at a time with no early exit inside the block, which LLVM
    turns into one vector compare: most skipped bytes are the tails of
    bookTicker and trade lines.
    """
    while p + 16 <= n:
        hit = False
        for i in range(16):
            hit |= buf[p + i] == 10
        if hit:
            break
        p += 16
    while p < n and buf[p] != 10:
        p += 1
    return p


@njit(cache=True, nogil=True)
def run_binance(buf, sym, st, bk, hs, meta, pmeta, plv, lv, ev):
    """Process the lines of ``buf`` from ``st[S_POS]`` on; returns an ``R_*`` code.

    ``buf`` uint8: capture lines (``st[S_PREFIX] == 1``) or one message.
    ``sym`` uint8: lower-case symbol this book keeps (empty: every message).
    On ``R_GROW_*`` nothing of the current line was applied and ``st[S_POS]``
    points at it: grow the named arrays and call again. Each byte is read
    once (lines of no interest are skipped from where their channel is
    known). O(bytes + levels x log(levels) + BLOCK per level).
    """
    # Every helper below takes the arrays as arguments; borrowed views carry no
    # reference-count handle, so those calls cost no atomic increments (which
    # cost more than parsing a level did).
    buf = borrow(buf)
    sym = borrow(sym)
    st = borrow(st)
    bk = borrow(bk)
    hs = borrow(hs)
    meta = borrow(meta)
    pmeta = borrow(pmeta)
    plv = borrow(plv)
    lv = borrow(lv)
    ev = borrow(ev)
    F = st[S_FIELDS : S_FIELDS + N_F]  # a view of the borrowed st: no handle either
    n_all = buf.shape[0]
    prefix = st[S_PREFIX] == 1
    mult = st[S_TS_MULT]
    while st[S_POS] < n_all:
        ls = st[S_POS]
        line = st[S_LINE] + 1
        p = _ws(buf, ls, n_all)
        if p >= n_all or buf[p] == 10:
            st[S_POS] = p + 1
            st[S_LINE] = line
            continue
        if prefix:
            ts, p = _parse_int(buf, p, n_all)
            if p < 0 or p >= n_all or buf[p] != 32:
                st[C_MALFORMED] += 1
                _event(st, ev, line, EV_MALFORMED, 0, 0)
                st[S_POS] = _line_end(buf, ls, n_all) + 1
                st[S_LINE] = line
                continue
            st[S_RECV] = ts * mult
        for i in range(N_F):
            F[i] = 0
        q = _walk(buf, p, n_all, F, lv, sym, st)
        kind = F[F_KIND]
        if F[F_ERR] == ERR_SCRATCH:
            return R_GROW_SCRATCH
        if q == n_all and F[F_STOP] > 0:
            le = _line_end(buf, F[F_STOP], n_all)  # skipped early: find the end from where we stopped
        elif q >= 0:
            le = _line_end(buf, q, n_all)
            if le > _ws(buf, q, n_all):
                q = -1  # bytes after the JSON object: not one message
        else:
            le = _line_end(buf, ls, n_all)
        if q < 0 and kind != K_FOREIGN and kind != K_OTHER and kind != K_TICKER_PAST and kind != K_TICKER_LAZY:
            st[C_MALFORMED] += 1
            _event(st, ev, line, EV_MALFORMED, 0, 0)
            if kind == K_DEPTH and st[S_PHASE] != PH_NOBOOK:
                _discard_book(st, meta, hs)  # a diff we could not read: the book is no longer exact
                _event(st, ev, line, EV_BOOK_DISCARDED, EV_MALFORMED, 0)
        elif kind == K_FOREIGN:
            st[C_FOREIGN] += 1
        elif kind == K_OTHER:
            st[C_OTHER] += 1
        elif kind == K_TICKER_PAST:
            st[C_TICKERS] += 1
        elif kind == K_TICKER_LAZY:
            st[C_TICKERS] += 1
            st[T_HAVE] = 2
            st[T_U] = F[F_LU]
            st[T_POS] = F[F_TOBJ]
            st[T_LINE] = line
        elif kind == K_DEPTH or kind == K_SNAPSHOT:
            n = F[F_NLV]
            if n > st[S_NFREE] or n > st[S_NFREE + 1] or 2 * (max(st[S_NB], st[S_NA]) + n) > hs.shape[2]:
                st[S_NEED] = n
                return R_GROW_BOOK  # each level may split a block or fill a hash slot
            st[C_BOOK_MSGS] += 1
            st[B_E] = F[F_E]
            st[B_RECV] = st[S_RECV]
            bad = False
            if F[F_NOFF] > 0:
                st[C_OFFGRID] += F[F_NOFF]
                _event(st, ev, line, EV_OFFGRID, F[F_OFFPX], F[F_OFFQ])
                bad = st[S_STRICT] == 1
            if F[F_ERR] == ERR_OFFGRID:
                st[C_UNREPR] += 1
                _event(st, ev, line, EV_UNREPR, kind, 0)
                bad = True
            if bad:
                if st[S_PHASE] != PH_NOBOOK:
                    _discard_book(st, meta, hs)
                    _event(st, ev, line, EV_BOOK_DISCARDED, EV_OFFGRID, 0)
            elif kind == K_SNAPSHOT:
                _on_snapshot(bk, hs, meta, st, pmeta, plv, ev, line, F[F_LUID], lv, n, buf)
            elif st[S_FUTURES] == 1 and F[F_HAS_PU] == 0:
                st[C_MALFORMED] += 1  # a futures diff without pu cannot be chained
                _event(st, ev, line, EV_MALFORMED, 1, 0)
            else:
                _on_diff(bk, hs, meta, st, pmeta, plv, ev, line, F[F_U], F[F_LU], F[F_PU], lv, 0, n)
                _check_ticker(bk, hs, meta, st, ev, buf)
            if st[S_PHASE] == PH_SYNCED:
                _read_best(bk, hs, meta, st, ev, line)
        elif kind == K_TICKER:
            st[C_TICKERS] += 1
            if F[F_NOFF] > 0:
                st[C_OFFGRID] += F[F_NOFF]
                _event(st, ev, line, EV_OFFGRID, F[F_TBP], F[F_TBQ])
            if F[F_ERR] == ERR_OFFGRID:
                st[C_UNREPR] += 1
                _event(st, ev, line, EV_UNREPR, kind, 0)
            else:
                st[T_HAVE] = 1
                st[T_U] = F[F_LU]
                st[T_BP] = F[F_TBP]
                st[T_BQ] = F[F_TBQ]
                st[T_AP] = F[F_TAP]
                st[T_AQ] = F[F_TAQ]
                st[T_LINE] = line
                _check_ticker(bk, hs, meta, st, ev, buf)
        else:
            st[C_UNKNOWN] += 1
            _event(st, ev, line, EV_UNKNOWN, 0, 0)
        st[S_POS] = le + 1
        st[S_LINE] = line
    if st[T_HAVE] == 2:
        _read_lazy_ticker(buf, st)  # the next call has another buffer: keep values, not an offset
    return R_DONE
