"""Tally what ``matching-engine`` does with its own ``order_flow`` workload.

Run with the peer's venv::

    bench/.venvs/matching-engine/bin/python bench/order_flow_semantics.py \
        [bench/out/order_flow_seed42_1000000.csv]

Replays the workload CSV through ``matching_engine.engine.MatchingEngine``
(its default STP, ``cancel_taker``) and classifies every command's outcome:
what each cancel found, how each market order ended, every self-trade
prevention cancel (was the taker partly filled first? a limit or a market?),
and how many limit orders took liquidity.  Then replays with STP ``none`` to
show what self-trade prevention changes.  Prints one JSON object; the figures
are quoted in docs/bench-matching.md.  Nothing here is timed.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
import _workload as wl  # noqa: E402

from matching_engine.domain import (  # noqa: E402
    CancelOrder,
    NewOrder,
    OrderType,
    SelfTradePrevention,
    SequencedCommand,
    Side,
    TimeInForce,
)
from matching_engine.engine import MatchingEngine  # noqa: E402
from matching_engine.events import OrderCancelled, OrderRejected, Trade  # noqa: E402

_SIDE = {wl.BUY: Side.BUY, wl.SELL: Side.SELL}
_TYPE = {wl.LIMIT: OrderType.LIMIT, wl.MARKET: OrderType.MARKET}
_TIF = {wl.GTC: TimeInForce.GTC, wl.IOC: TimeInForce.IOC, wl.FOK: TimeInForce.FOK}


def replay(w: wl.Workload, stp: SelfTradePrevention) -> dict:
    eng = MatchingEngine()
    c: collections.Counter[str] = collections.Counter()
    fate: dict[int, str] = {}  # limit order id -> why it left the book
    trades = traded = 0
    own_trades = 0
    for seq, (op, oid, acct, side, ty, tif, price, qty) in enumerate(w.rows(), start=1):
        if op == wl.CANCEL:
            known = oid in eng.book.orders
            evs = eng.process(SequencedCommand(seq, 0, CancelOrder(oid, acct)))
            if known:
                c["cancel: removed a resting order"] += 1
                fate[oid] = "cancelled"
            else:
                c[f"cancel: rejected, target {fate.get(oid, 'never existed')}"] += 1
            continue
        o = NewOrder(oid, acct, _SIDE[side], price, qty, _TYPE[ty], _TIF[tif], stp=stp)
        evs = eng.process(SequencedCommand(seq, 0, o))
        kind = "market" if ty == wl.MARKET else "limit"
        filled = 0
        stp_cancel = unfilled = False
        for e in evs:
            if type(e) is Trade:
                trades += 1
                traded += e.qty
                filled += e.qty
                own_trades += e.maker_account == e.taker_account
                if e.maker_remaining == 0:
                    fate[e.maker_order_id] = "filled"
            elif type(e) is OrderCancelled and e.order_id == oid:
                stp_cancel |= e.reason.value == "self_trade"
                unfilled |= e.reason.value == "unfilled"
            elif type(e) is OrderRejected:
                c[f"{kind}: rejected {e.reason.value}"] += 1
        part = "unfilled" if filled == 0 else ("fully filled" if filled == qty else "partly filled")
        if stp_cancel:
            c[f"{kind}: STP cancelled the taker, {part} before"] += 1
            c["STP: lots cancelled"] += qty - filled
            if kind == "limit":
                fate[oid] = "STP-cancelled on entry (never rested)"
        elif kind == "market":
            c[f"market: {part}" + (" (remainder cancelled 'unfilled')" if unfilled else "")] += 1
        else:
            if filled == qty:
                c["limit: fully filled on entry"] += 1
                fate[oid] = "filled"
            elif filled:
                c["limit: partly filled on entry, rest rests"] += 1
            else:
                c["limit: rested without trading"] += 1
    return {
        "stp": stp.value,
        "trades": trades,
        "traded_qty": traded,
        "self_trades": own_trades,
        "resting_orders_at_end": len(eng.book),
        "best_bid_ask": [eng.book.best_bid(), eng.book.best_ask()],
        "state_hash": eng.state_hash(),
        "outcomes": dict(sorted(c.items())),
    }


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "out" / "order_flow_seed42_1000000.csv"
    w = wl.load(path)
    accounts = set(w.account)
    prices = [p for p, ty, op in zip(w.price, w.type, w.op) if op == wl.NEW and ty == wl.LIMIT]
    out = {
        "workload": str(path),
        "commands": len(w),
        "counts": w.counts(),
        "accounts": [min(accounts), max(accounts), len(accounts)],
        "limit_price_range": [min(prices), max(prices)],
        "qty_range": [min(q for q, op in zip(w.qty, w.op) if op == wl.NEW), max(w.qty)],
        "cancel_targets_distinct": len({o for o, op in zip(w.order_id, w.op) if op == wl.CANCEL}),
        "cancel_target_is_market_order": sum(
            1 for o, op in zip(w.order_id, w.op) if op == wl.CANCEL and w.type[o - 1] == wl.MARKET
        ),
        "cancel_account_is_owner": all(
            w.account[o - 1] == a for o, a, op in zip(w.order_id, w.account, w.op) if op == wl.CANCEL
        ),
        "new_order_id_is_row_number": all(o == i for i, (o, op) in enumerate(zip(w.order_id, w.op), 1) if op == wl.NEW),
        "default_stp": replay(w, SelfTradePrevention.CANCEL_TAKER),
        "no_stp": replay(w, SelfTradePrevention.NONE),
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
