"""The adapter against tracebook's reference, in process: translations, the protocol, generated traces."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from tracebook.conformance.campaign import _trace_seed, generate_campaign_trace, get_campaign_profile
from tracebook.conformance.compare import run_conformance
from tracebook.conformance.model import ConformanceConfig
from tracebook.core.order import SelfTradePolicy
from tracebook.events import MarketEvent

from shardex.conformance import reasons
from shardex.conformance.adapter import AdapterConfig, ConformanceAdapter
from shardex.conformance.protocol import PROTOCOL_NAME, serve
from shardex.conformance.trace import TraceEvent
from tests.conformance.bridge import InProcessCandidate


def _conforms(events, **config):
    report = run_conformance([MarketEvent.from_mapping(e) for e in events], InProcessCandidate,
                             config=ConformanceConfig(**config))
    assert report.conformant, report.divergence and report.divergence.to_dict()


def _new(oid, side, price, qty, owner=1, otype="LIMIT", symbol="T"):
    return {"op": "new", "symbol": symbol, "order_id": oid, "side": side, "order_type": otype, "price": price,
            "quantity": qty, "owner": owner}


def test_replace_always_loses_priority_even_when_smaller():
    # shardex's amend would keep priority for a same-price decrease; tracebook's replace never does.
    _conforms([_new(1, "SELL", 100, 5), _new(2, "SELL", 100, 5, owner=2),
               {"op": "replace", "symbol": "T", "order_id": 1, "quantity": 4},
               _new(3, "BUY", 100, 1, owner=3)])


def test_replace_that_crosses_trades_under_its_source_id():
    _conforms([_new(1, "SELL", 101, 2), _new(2, "BUY", 99, 3, owner=2),
               {"op": "replace", "symbol": "T", "order_id": 2, "price": 101.0},
               {"op": "replace", "symbol": "T", "order_id": 2, "quantity": 9}])


def test_reduce_keeps_priority_and_full_reduce_removes():
    _conforms([_new(1, "BUY", 100, 5), _new(2, "BUY", 100, 5, owner=2),
               {"op": "reduce", "symbol": "T", "order_id": 1, "quantity": 2},
               _new(3, "SELL", 100, 1, owner=3),
               {"op": "reduce", "symbol": "T", "order_id": 2, "quantity": 5},
               {"op": "reduce", "symbol": "T", "order_id": 1, "quantity": 9},
               {"op": "reduce", "symbol": "T", "order_id": 2, "quantity": 1}])


def test_rejects_carry_tracebook_codes():
    _conforms([_new(1, "BUY", 100, 1), _new(1, "SELL", 101, 1),          # duplicate active id
               _new(2, "BUY", 0.004, 1), _new(3, "BUY", -1, 1),           # snaps to 0; negative price
               _new(4, "BUY", 100, 0), _new(5, "BUY", 100, 1, otype="MARKET"),
               {"op": "cancel", "symbol": "T", "order_id": 99},
               {"op": "cancel", "symbol": "NEVER", "order_id": 1},
               {"op": "replace", "symbol": "T", "order_id": 1, "price": -5},
               {"op": "replace", "symbol": "T", "order_id": 1, "quantity": 0},
               {"op": "replace", "symbol": "T", "order_id": 42, "quantity": 1}])


def test_replace_to_a_zero_tick_requeues_the_original_at_the_back():
    # tracebook cancels, fails to snap, and re-rests the original behind its level.
    _conforms([_new(1, "BUY", 100, 1), _new(2, "BUY", 100, 1, owner=2),
               {"op": "replace", "symbol": "T", "order_id": 1, "price": 0.001},
               _new(3, "SELL", 100, 1, owner=3)])


def test_unfillable_fok_is_applied_and_ids_of_gone_orders_are_reusable():
    _conforms([_new(1, "SELL", 100, 1), _new(2, "BUY", 100, 5, otype="FOK", owner=2),
               _new(2, "BUY", 100, 1, otype="IOC", owner=2), _new(1, "SELL", 100, 1)])


def test_anonymous_owners_never_self_trade():
    _conforms([_new(1, "SELL", 100, 1, owner=-1), _new(2, "BUY", 100, 1, owner=-1)],
              self_trade_policy=SelfTradePolicy.CANCEL_INCOMING)


def test_clear_empties_one_symbol_and_creates_unknown_ones():
    _conforms([_new(1, "BUY", 10, 2, symbol="A"), _new(1, "SELL", 20, 3, owner=2, symbol="B"),
               {"op": "clear", "symbol": "A"}, {"op": "clear", "symbol": "C"}, _new(1, "BUY", 10, 2, symbol="A")])


def test_pro_rata_on_whole_lot_shares_conforms():
    _conforms([_new(1, "SELL", 100, 6), _new(2, "SELL", 100, 3, owner=2), _new(3, "SELL", 100, 1, owner=3),
               _new(4, "BUY", 100, 5, otype="IOC", owner=4)], matching_algorithm="pro_rata")


def test_pro_rata_large_levels_share_exactly():
    # 4e9-lot orders at 12 decimals: the kernel's share is exact past int64 products.
    _conforms([_new(1, "SELL", 100, 4000), _new(2, "SELL", 100, 4000, owner=2),
               _new(3, "BUY", 100, 4000, otype="IOC", owner=3)], matching_algorithm="pro_rata")


def test_pro_rata_shares_are_whole_lots_by_design():
    # tracebook gives 1/3 of a unit as a float; shardex floors to the lot and
    # the last order takes the remainder (docs/conformance.md, "Pro-rata").
    a = ConformanceAdapter(AdapterConfig(matching_algorithm="pro_rata"))
    for e in (_new(1, "SELL", 100, 1), _new(2, "SELL", 100, 2, owner=2), _new(3, "BUY", 100, 1, owner=3)):
        obs = a.apply(TraceEvent.from_mapping(e))
    # tracebook: 0.333333333333 (rounded half-even) and 0.666666666667; shardex floors the first share.
    assert [t["quantity"] for t in obs.trades] == ["0.333333333333", "0.666666666667"]


def test_off_grid_quantity_is_rejected_not_rounded():
    a = ConformanceAdapter(AdapterConfig(quantity_decimal_places=2))
    obs = a.apply(TraceEvent.from_mapping(_new(1, "BUY", 100, 0.125)))
    assert (obs.status, obs.reason) == ("rejected", reasons.INVALID_ORDER)
    assert obs.resting_order_count == 0


@pytest.mark.parametrize("policy", list(SelfTradePolicy))
def test_generated_fifo_traces_conform_under_every_stp_policy(policy):
    profile = replace(get_campaign_profile("fifo-full-v1"), name="fifo-full-stp",
                      config=ConformanceConfig(self_trade_policy=policy))
    for seed in range(2):
        events = generate_campaign_trace(profile, _trace_seed(seed, 1), 100)
        report = run_conformance(events, InProcessCandidate, config=profile.config)
        assert report.conformant, report.divergence and report.divergence.to_dict()


def _session(*messages) -> tuple[int, list[dict]]:
    out = io.StringIO()
    status = serve(io.StringIO("".join(json.dumps(m) + "\n" for m in messages)), out)
    return status, [json.loads(line) for line in out.getvalue().splitlines()]


HELLO = {"type": "hello", "protocol": PROTOCOL_NAME, "protocol_version": 1, "config": {"tick_size": "0.01"}}


def test_protocol_session():
    status, replies = _session(HELLO, {"type": "event", "index": 1, "event": _new(1, "BUY", 100, 1)},
                               {"type": "snapshot", "index": 1}, {"type": "finish", "event_count": 1})
    assert status == 0
    assert [r["type"] for r in replies] == ["ready", "observation", "snapshot", "complete"]
    assert replies[0]["engine"]["name"] == "shardex"
    assert replies[2]["state"]["books"][0]["bids"][0] == {"order_id": 1, "price": "100", "remaining_quantity": "1",
                                                          "owner": 1, "order_type": "LIMIT"}


@pytest.mark.parametrize(("messages", "code"), [
    ([{"type": "event"}], "PROTOCOL_ERROR"),
    ([dict(HELLO, protocol_version=2)], "PROTOCOL_ERROR"),
    ([HELLO, {"type": "event", "index": 2, "event": _new(1, "BUY", 100, 1)}], "PROTOCOL_ERROR"),
    ([HELLO, {"type": "event", "index": 1, "event": {"op": "new", "symbol": "T"}}], "PROTOCOL_ERROR"),
    ([HELLO, {"type": "finish", "event_count": 3}], "PROTOCOL_ERROR"),
    ([HELLO], "PROTOCOL_ERROR"),
])
def test_protocol_errors(messages, code):
    status, replies = _session(*messages)
    assert status == 2
    assert replies[-1]["type"] == "error" and replies[-1]["code"] == code
