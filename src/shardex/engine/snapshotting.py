"""Engine snapshots: every shard's book arrays, the sequencer and the listing, in and out.

A snapshot holds each shard's ``BookState`` arrays as they are (``s<k>.<name>``
plus ``s<k>.inst_of_book``) and, in its JSON metadata, the shard count, the
instruments in listing order and the sequencer's position.  Copying the
arrays as they are keeps taking a snapshot cheap (a memcpy per array).

Recovery into the same layout (same shard count, same listing) loads the
arrays back bit for bit.  Recovery into another shard count *re-deals*: every
live order, price level and ladder of a book moves to the book's new shard,
with pool rows renumbered and the order index rebuilt.  Pool row numbers
never show in any event or in the state hash (the kernel's free-list order
is invisible by design), so a re-dealt engine behaves exactly like one that
ran with the new shard count from the start; the restored state hash is
checked against the snapshot's either way.
"""

from __future__ import annotations

import copy
import hashlib
from decimal import Decimal
from typing import Any

import numpy as np

from shardex.book.index import ROW_MASK, index_from_layout_1, index_of
from shardex.book.layout import (
    B_STOP_HEAD, B_STOP_TAIL, BOOK_COLS, C_BOOK, H_KEY, L_DEAD, L_HEAD, L_TAIL, M_FREE_LEVEL,
    M_DEAD_ORDERS, M_FREE_ORDER, M_FRESH_LEVEL, M_FRESH_ORDER, M_INDEX_TOMB, M_INDEX_USED, M_ORDERS_USED, NIL, O_ACCOUNT,
    O_LEVEL, O_NEXT, O_OID, O_PREV,
    BookState,
)
from shardex.book.shard import MatchingShard
from shardex.errors import ShardexError
from shardex.instruments import Instrument

__all__ = ["SnapshotLayoutError", "SNAPSHOT_FORMAT", "capture", "restore", "instrument_to_json",
           "instrument_from_json", "redeal", "detached_hash"]

#: Version of the engine's snapshot content (the file format is the journal's).
SNAPSHOT_FORMAT = 3  # 3: L_DEAD in live levels; 2: 16-byte index cells; 1 and 2 are read and converted

#: The BookState arrays this module knows how to re-deal; a layout change in
#: shardex.book must be mirrored here (``redeal`` refuses unknown arrays).
_KNOWN_SLOTS = ("orders", "ocold", "levels", "lad_key", "lad_lv", "lad_n", "books", "rules", "index", "meta", "scratch")
_KNOWN_META = (M_FREE_ORDER, M_FREE_LEVEL, M_ORDERS_USED, M_INDEX_USED, M_INDEX_TOMB, M_FRESH_ORDER, M_FRESH_LEVEL,
               M_DEAD_ORDERS)
#: The state arrays of a BookState (its ``ARRAYS`` where the class names them;
#: its slots may also hold caches that are not state).
_ARRAY_NAMES = BookState.ARRAYS


class SnapshotLayoutError(ShardexError, ValueError):
    """A snapshot's content does not fit this engine (format, instruments, or array layout)."""


# ---------------------------------------------------------------------------
# instruments as JSON
# ---------------------------------------------------------------------------
def instrument_to_json(ins: Instrument) -> dict[str, Any]:
    """An instrument as a JSON-safe dict (decimals as strings, enums as ints)."""
    out: dict[str, Any] = {}
    for name in ("id", "symbol", "tick_size", "lot_size", "min_qty", "max_qty", "min_price", "max_price", "matching",
                 "kind", "base", "quote", "contract_size", "expiry_ns",
                 "strike", "option_type", "underlying", "inverse"):
        value = getattr(ins, name)
        if isinstance(value, Decimal):
            value = str(value)
        elif value is not None and not isinstance(value, str):
            value = int(value)
        out[name] = value
    return out


def instrument_from_json(doc: dict[str, Any]) -> Instrument:
    """The inverse of ``instrument_to_json``."""
    try:
        return Instrument(**doc)
    except TypeError as exc:
        raise SnapshotLayoutError(f"snapshot lists an instrument this shardex cannot read: {doc!r} ({exc})") from exc


# ---------------------------------------------------------------------------
# capture and restore
# ---------------------------------------------------------------------------
def capture(shards: list[MatchingShard], listing: list[Instrument], next_seq: int, last_ts: int) -> tuple[dict, dict]:
    """Copy the engine's state: ``(arrays, meta)`` ready for ``SnapshotStore.write``.

    Must run between batches (no shard thread may be inside a kernel).

    Runtime complexity: O(bytes of state) (one copy of each array).
    """
    arrays: dict[str, np.ndarray] = {}
    for k, shard in enumerate(shards):
        for name, arr in shard.state.copy_arrays().items():
            arrays[f"s{k}.{name}"] = arr
        arrays[f"s{k}.inst_of_book"] = shard.inst_of_book.copy()
    meta = {
        "engine_format": SNAPSHOT_FORMAT,
        "shards": len(shards),
        "instruments": [instrument_to_json(i) for i in listing],
        "sequencer": {"next_seq": int(next_seq), "last_ts": int(last_ts)},
    }
    return arrays, meta


def detached_hash(shards: list[MatchingShard], arrays: dict[str, np.ndarray], listing: list[Instrument]) -> str:
    """The state hash of captured ``arrays``, computed without touching the live shards.

    Lets a background thread hash a snapshot while the live engine goes on.
    """
    clones = []
    for k, shard in enumerate(shards):
        clone = copy.copy(shard)  # shares the (immutable between listings) book maps
        clone.state = BookState.from_arrays({n: arrays[f"s{k}.{n}"] for n in _ARRAY_NAMES})
        clones.append(clone)
    h = hashlib.sha256()
    for ins in sorted(listing, key=lambda i: i.id):
        for clone in clones:
            if clone.book(ins.id) >= 0:
                clone.hash_book(h, ins.id)
                break
    return h.hexdigest()


def snapshot_listing(meta: dict) -> list[Instrument]:
    """The instruments a snapshot lists, in listing order."""
    _check_format(meta)
    return [instrument_from_json(d) for d in meta["instruments"]]


def _check_format(meta: dict) -> None:
    fmt = meta.get("engine_format")
    if fmt not in (1, 2, SNAPSHOT_FORMAT):
        raise SnapshotLayoutError(f"snapshot engine format {fmt!r}; this shardex reads formats 1 to {SNAPSHOT_FORMAT}")


def restore(shards: list[MatchingShard], arrays: dict[str, np.ndarray], meta: dict) -> bool:
    """Load a snapshot into freshly listed ``shards``; return True if it had to re-deal.

    ``shards`` must hold the snapshot's instruments, listed in the snapshot's
    order (any shard count).  With the snapshot's own layout the arrays are
    loaded as they are; otherwise every book is re-dealt (``redeal``).
    """
    _check_format(meta)
    n_src = int(meta["shards"])
    sources = []
    for k in range(n_src):
        try:
            state = {n: np.array(arrays[f"s{k}.{n}"]) for n in _slot_names(arrays, k)}
            inst_of_book = np.array(arrays[f"s{k}.inst_of_book"], dtype=np.int64)
        except KeyError as exc:
            raise SnapshotLayoutError(f"snapshot lacks array {exc} of shard {k} of {n_src}") from None
        if meta["engine_format"] == 1 and "index" in state:
            if state["index"].ndim != 2 or state["index"].shape[1] != 3:
                raise SnapshotLayoutError(f"shard {k}: format 1 index of shape {state['index'].shape}, expected 3 columns")
            state["index"] = index_from_layout_1(state["index"])
        if meta["engine_format"] < 3 and {"levels", "lad_lv", "lad_n"} <= set(state):
            _clear_dead_counts(state)
        sources.append((state, inst_of_book))
    same = n_src == len(shards) and all(np.array_equal(src[1], sh.inst_of_book) for src, sh in zip(sources, shards))
    if same:
        for (state, _inst), shard in zip(sources, shards):
            missing = set(_ARRAY_NAMES) - set(state)
            if missing:
                raise SnapshotLayoutError(f"snapshot lacks book arrays {sorted(missing)}")
            shard.state = BookState.from_arrays(state)
        return False
    targets = redeal(sources, [sh.inst_of_book for sh in shards])
    for state, shard in zip(targets, shards):
        shard.state = BookState.from_arrays(state)
    return True


def _slot_names(arrays: dict[str, np.ndarray], k: int) -> list[str]:
    prefix = f"s{k}."
    return [name[len(prefix):] for name in arrays if name.startswith(prefix) and name != f"{prefix}inst_of_book"]


# ---------------------------------------------------------------------------
# re-dealing books across a different number of shards
# ---------------------------------------------------------------------------
def _ladder_levels(state: dict[str, np.ndarray]) -> np.ndarray:
    """The level rows every ladder lists, ladder by ladder (each ladder's ``lad_lv[row, :lad_n[row]]``)."""
    lad_n, lad_lv = state["lad_n"], state["lad_lv"]
    return lad_lv[np.arange(lad_lv.shape[1])[None, :] < lad_n[:, None]]


def _clear_dead_counts(state: dict[str, np.ndarray]) -> None:
    """Format 1 and 2 levels left a stale free-list link in the column live levels now count dead rows in."""
    state["levels"][_ladder_levels(state), L_DEAD] = 0


def _check_layout(state: dict[str, np.ndarray], k: int) -> None:
    unknown = set(state) - set(_KNOWN_SLOTS)
    if unknown or set(_ARRAY_NAMES) != set(_KNOWN_SLOTS):
        raise SnapshotLayoutError(
            f"shard {k}: book arrays {sorted(unknown or set(_ARRAY_NAMES) ^ set(_KNOWN_SLOTS))} are unknown to "
            "shardex.engine.snapshotting.redeal; recover with the snapshot's shard count or teach redeal the new layout"
        )
    shapes = {"orders": 8, "ocold": 8, "levels": 6, "books": BOOK_COLS, "rules": 6, "index": 2}
    for name, cols in shapes.items():
        if state[name].ndim != 2 or state[name].shape[1] != cols:
            raise SnapshotLayoutError(f"shard {k}: array {name} has shape {state[name].shape}, redeal expects {cols} columns")
    extra = np.delete(state["meta"], list(_KNOWN_META))
    if np.any(extra != 0):
        raise SnapshotLayoutError(f"shard {k}: meta holds counters redeal does not know ({state['meta'].tolist()})")
    if state["meta"][M_DEAD_ORDERS] != 0:  # snapshots are captured purged (BookState.copy_arrays)
        raise SnapshotLayoutError(f"shard {k}: {int(state['meta'][M_DEAD_ORDERS])} cancelled rows still linked; "
                                  "redeal needs a purged state")


def _remap(values: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """``mapping[values]`` with NIL kept as NIL."""
    out = np.full(values.shape, NIL, dtype=np.int64)
    live = values != NIL
    out[live] = mapping[values[live]]
    return out


def redeal(sources: list[tuple[dict[str, np.ndarray], np.ndarray]], targets: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Rebuild shard states for a new dealing of the same books.

    ``sources``: ``(arrays, inst_of_book)`` of each snapshot shard.
    ``targets``: each new shard's ``inst_of_book`` (instrument id per book row);
    together they must list exactly the sources' instruments.  Returns one
    dict of ``BookState`` arrays per target, with live orders and levels
    packed at the start of compact pools and fresh free lists behind them.

    Runtime complexity: O(pool rows + ladder cells + index cells), vectorized.
    """
    where: dict[int, tuple[int, int]] = {}  # instrument -> (source, book row)
    for k, (state, inst_of_book) in enumerate(sources):
        _check_layout(state, k)
        for b, ins in enumerate(inst_of_book.tolist()):
            where[ins] = (k, b)
    wanted = sorted(int(i) for t in targets for i in t)
    if wanted != sorted(where):
        raise SnapshotLayoutError(f"snapshot lists instruments {sorted(where)}, the engine {wanted}")

    # Live rows of every source, grouped by book: orders via the index (every
    # live order, resting or stop, has exactly one entry), levels via ladders.
    live_orders, live_levels = [], []
    for state, inst_of_book in sources:
        keys = state["index"][:, H_KEY]
        rows = np.sort(keys[keys >= 0] & ROW_MASK)
        obook = state["ocold"][rows, C_BOOK]
        lad_n = state["lad_n"]
        lvs = _ladder_levels(state)
        lbook = np.repeat(np.arange(len(lad_n)) // 2, lad_n)
        live_orders.append({b: rows[obook == b] for b in range(len(inst_of_book))})
        live_levels.append({b: lvs[lbook == b] for b in range(len(inst_of_book))})

    width = max(64, max(s["lad_key"].shape[1] for s, _ in sources))
    out = []
    for t_books in targets:
        plan = [where[int(i)] for i in t_books]
        n_orders = sum(len(live_orders[k][b]) for k, b in plan)
        n_levels = sum(len(live_levels[k][b]) for k, b in plan)
        cap = max(1024, 2 * n_orders + 16)
        nb = len(plan)
        orders = np.zeros((cap, 8), dtype=np.int64)
        ocold = np.zeros((cap, 8), dtype=np.int64)
        levels = np.zeros((cap, 6), dtype=np.int64)
        lad_key = np.zeros((2 * nb, width), dtype=np.int64)
        lad_lv = np.zeros((2 * nb, width), dtype=np.int64)
        lad_n = np.zeros(2 * nb, dtype=np.int64)
        books = np.zeros((nb, BOOK_COLS), dtype=np.int64)
        rules = np.zeros((nb, 6), dtype=np.int64)
        o_next, l_next = 0, 0
        for j, (k, b) in enumerate(plan):
            src = sources[k][0]
            orows, lrows = live_orders[k][b], live_levels[k][b]
            omap = np.full(len(src["orders"]), NIL, dtype=np.int64)
            lmap = np.full(len(src["levels"]), NIL, dtype=np.int64)
            omap[orows] = np.arange(o_next, o_next + len(orows))
            lmap[lrows] = np.arange(l_next, l_next + len(lrows))
            o_sl = slice(o_next, o_next + len(orows))
            l_sl = slice(l_next, l_next + len(lrows))
            orders[o_sl] = src["orders"][orows]
            for col in (O_NEXT, O_PREV):
                orders[o_sl, col] = _remap(src["orders"][orows, col], omap)
            orders[o_sl, O_LEVEL] = _remap(src["orders"][orows, O_LEVEL], lmap)
            ocold[o_sl] = src["ocold"][orows]
            ocold[o_sl, C_BOOK] = j
            levels[l_sl] = src["levels"][lrows]
            for col in (L_HEAD, L_TAIL):
                levels[l_sl, col] = _remap(src["levels"][lrows, col], omap)
            levels[l_sl, L_DEAD] = 0  # captured purged: no dead rows
            for side in (0, 1):
                r_src, r_dst = 2 * b + side, 2 * j + side
                n = int(src["lad_n"][r_src])
                lad_n[r_dst] = n
                lad_key[r_dst, :n] = src["lad_key"][r_src, :n]
                lad_lv[r_dst, :n] = lmap[src["lad_lv"][r_src, :n]]
            books[j] = src["books"][b]
            for col in (B_STOP_HEAD, B_STOP_TAIL):
                books[j, col] = _remap(src["books"][b:b + 1, col], omap)[0]
            rules[j] = src["rules"][b]
            o_next += len(orows)
            l_next += len(lrows)
        assert o_next == n_orders and l_next == n_levels
        # Live rows are packed at the front: no free rows, and the pools'
        # never-used tails start right behind them.
        meta = np.zeros(16, dtype=np.int64)
        meta[M_FREE_ORDER] = NIL
        meta[M_FREE_LEVEL] = NIL
        meta[M_FRESH_ORDER] = n_orders
        meta[M_FRESH_LEVEL] = n_levels
        meta[M_ORDERS_USED] = n_orders
        meta[M_INDEX_USED] = n_orders
        hcap = 16
        while hcap < 4 * (n_orders + 1) or hcap < 4 * cap:
            hcap *= 2
        index = index_of(orders[:n_orders, O_ACCOUNT], orders[:n_orders, O_OID], np.arange(n_orders), hcap)
        out.append({"orders": orders, "ocold": ocold, "levels": levels, "lad_key": lad_key, "lad_lv": lad_lv,
                    "lad_n": lad_n, "books": books, "rules": rules, "index": index, "meta": meta,
                    "scratch": np.zeros(cap, dtype=np.int64)})
    return out
