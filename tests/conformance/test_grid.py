"""Unit tests of the translation helpers: grids, canonical decimals, event parsing, codes, config."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tracebook.conformance.model import canonical_decimal

from shardex.conformance import reasons
from shardex.conformance.adapter import STP_MODES, AdapterConfig, AdapterConfigError
from shardex.conformance.grid import (
    canonical, exact_decimal, lot_size_for, snap_to_tick, to_units,
)
from shardex.conformance.trace import NO_OWNER, TraceEvent, TraceEventError
from shardex.schema import Reason, SelfTradePrevention


@pytest.mark.parametrize("value", ["100", "100.5", "0.000000000001", "123456789.125", "0.1", "5"])
def test_canonical_matches_tracebook(value):
    # Our exact-decimal output must be byte-identical to tracebook's float path.
    assert canonical(Decimal(value)) == canonical_decimal(float(value), 12)


def test_canonical_zero_and_trailing_zeros():
    assert canonical(Decimal("0.000")) == "0"
    assert canonical(Decimal("1E+2")) == "100"
    assert canonical(Decimal("2.50")) == "2.5"


@pytest.mark.parametrize(("price", "tick"), [(100.004, 10000), (100.006, 10001), (100.005, 10000), (100.015, 10002),
                                             (0.004, 0), (0.006, 1), (99.99, 9999)])
def test_snap_to_tick_rounds_like_tracebook(price, tick):
    assert snap_to_tick(price, 0.01) == tick


def test_exact_decimal_reads_floats_by_repr():
    assert exact_decimal(0.1) == Decimal("0.1")
    assert exact_decimal(3) == Decimal(3)
    assert exact_decimal("2.25") == Decimal("2.25")
    for bad in (True, None, float("nan"), float("inf"), "x", [1]):
        assert exact_decimal(bad) is None


def test_to_units_rejects_off_grid():
    lot = Decimal("0.001")
    assert to_units(0.5, lot) == 500
    assert to_units("0.0015", lot) is None
    assert to_units(float("nan"), lot) is None


def test_lot_size_is_what_tracebook_prints():
    assert lot_size_for(12) == Decimal("1E-12")
    assert lot_size_for(0) == Decimal(1)
    with pytest.raises(ValueError, match="quantity_decimal_places"):
        lot_size_for(19)


def test_trace_event_parses_runner_payload():
    e = TraceEvent.from_mapping({"op": "new", "symbol": "TEST", "order_id": 1, "side": "SELL", "order_type": "FOK",
                                 "price": 100.0, "quantity": 2.0, "owner": 7, "timestamp_ns": 1})
    assert (e.op, e.side, e.order_type, e.owner, e.price, e.quantity) == ("new", "SELL", "FOK", 7, 100.0, 2.0)
    assert TraceEvent.from_mapping({"op": "clear", "symbol": "T"}).owner == NO_OWNER
    assert TraceEvent.from_mapping({"op": "new", "symbol": "T", "side": -1, "order_type": 1}).side == "SELL"


@pytest.mark.parametrize("payload", [{"op": "halt", "symbol": "T"}, {"op": "new", "symbol": ""},
                                     {"op": "new", "symbol": "T", "side": "up"},
                                     {"op": "new", "symbol": "T", "order_type": "STOP"},
                                     {"op": "new", "symbol": "T", "order_id": 1.5}, "not an object"])
def test_trace_event_rejects_malformed(payload):
    with pytest.raises(TraceEventError):
        TraceEvent.from_mapping(payload)


def test_reason_codes_follow_the_operation():
    assert reasons.tracebook_code(Reason.UNKNOWN_ORDER, "cancel") == reasons.ORDER_NOT_ACTIVE
    assert reasons.tracebook_code(Reason.DUPLICATE_ORDER_ID, "new") == reasons.DUPLICATE_ORDER_ID
    assert reasons.tracebook_code(Reason.QTY_NOT_POSITIVE, "new") == reasons.INVALID_ORDER
    assert reasons.tracebook_code(Reason.PRICE_OUT_OF_BAND, "replace") == reasons.INVALID_REPLACEMENT
    assert reasons.tracebook_code(Reason.INVALID_COMMAND, "cancel") == reasons.INVALID_CANCEL


def test_config_from_hello():
    cfg = AdapterConfig.from_mapping({"matching_algorithm": "PRO_RATA", "tick_size": "0.5",
                                      "self_trade_policy": 2, "quantity_decimal_places": 3})
    assert (cfg.pro_rata, cfg.tick_size, cfg.self_trade_policy, cfg.quantity_decimal_places) == (
        True, Decimal("0.5"), "CANCEL_INCOMING", 3)
    assert AdapterConfig.from_mapping({}) == AdapterConfig()
    assert STP_MODES["CANCEL_RESTING"] == SelfTradePrevention.CANCEL_MAKER
    assert STP_MODES["CANCEL_INCOMING"] == SelfTradePrevention.CANCEL_TAKER


@pytest.mark.parametrize("config", [{"matching_algorithm": "lifo"}, {"tick_size": "0"}, {"tick_size": "abc"},
                                    {"self_trade_policy": "DECREMENT"}, {"quantity_decimal_places": 19},
                                    {"quantity_decimal_places": True}])
def test_config_rejects_what_tracebook_cannot_send(config):
    with pytest.raises(AdapterConfigError):
        AdapterConfig.from_mapping(config)
