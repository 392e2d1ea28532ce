"""Option instruments and chains."""

from __future__ import annotations

import pytest

from shardex.errors import InvalidInstrumentError
from shardex.instruments import InstrumentKind
from shardex.options.chain import OptionChain, OptionSpec, Settlement, parse_symbol


def test_symbol_round_trip_and_expiry_at_0800_utc():
    spec = OptionSpec.from_symbol("BTC-5JUN20-9250-P")
    assert spec.symbol == "BTC-5JUN20-9250-P" and not spec.is_call
    assert spec.expiry_ms == 1591344000000  # 2020-06-05 08:00 UTC
    assert parse_symbol("ETH-30JUL21-2800-C") == ("ETH", 1627632000000, 2800.0, True)
    with pytest.raises(InvalidInstrumentError):
        parse_symbol("BTC-PERPETUAL")


def test_linear_and_inverse_payoffs():
    inv = OptionSpec("BTC", 0, 8000.0, True, Settlement.INVERSE)
    lin = OptionSpec("BTC", 0, 8000.0, True, Settlement.LINEAR, contract_size=0.01)
    assert inv.payoff(10000.0) == pytest.approx(0.2)  # coins
    assert lin.payoff(10000.0) == pytest.approx(20.0)  # USDT per 0.01 BTC contract
    assert OptionSpec("BTC", 0, 8000.0, False).payoff(10000.0) == 0.0


def test_listing_expiry_and_instrument():
    e1, e2 = OptionSpec.from_symbol("BTC-26JUN20-1-C").expiry_ms, OptionSpec.from_symbol("BTC-25SEP20-1-C").expiry_ms
    chain = OptionChain.list_options("BTC", [e2, e1], [9000, 8000])
    assert len(chain) == 8
    assert chain.expiries().tolist() == [e1, e2]
    assert chain.strikes(e1).tolist() == [8000.0, 9000.0]
    assert chain.symbols[:2] == ["BTC-26JUN20-8000-P", "BTC-26JUN20-8000-C"]
    live, dead = chain.expire(e1)
    assert len(live) == 4 and len(dead) == 4 and set(dead.expiry_ms) == {e1}
    inst = chain.spec(0).to_instrument(7)
    assert inst.kind == InstrumentKind.OPTION and inst.expiry_ns == e1 * 1_000_000 and inst.extra["strike"] == 8000.0
    assert chain.spec(0).time_to_expiry(e1 - 86_400_000 * 365) == pytest.approx(1.0)


def test_bad_specs():
    with pytest.raises(InvalidInstrumentError):
        OptionSpec("BTC", 0, -1.0, True)
    with pytest.raises(InvalidInstrumentError):
        OptionChain(["BTC"], [0], [0.0], [True])
