from decimal import Decimal

import pytest

from shardex import Instrument, OffGridError
from shardex.errors import InvalidInstrumentError


def test_round_trip_on_grid():
    ins = Instrument(1, "ETH-PERP", tick_size="0.01", lot_size="0.001")
    assert ins.price_to_ticks("3012.57") == 301257
    assert ins.ticks_to_price(301257) == Decimal("3012.57")
    assert ins.qty_to_lots(0.5) == 500
    assert ins.lots_to_qty(500) == Decimal("0.5")


@pytest.mark.parametrize("price", ["3012.575", "0.001", 1.005])
def test_off_grid_price_is_refused_not_rounded(price):
    ins = Instrument(1, "ETH-PERP", tick_size="0.01", lot_size="0.001")
    with pytest.raises(OffGridError, match="tick size 0.01"):
        ins.price_to_ticks(price)


@pytest.mark.parametrize("bad", ["abc", "nan", "inf"])
def test_not_a_number(bad):
    ins = Instrument(1, "X")
    with pytest.raises(ValueError):
        ins.price_to_ticks(bad)


def test_invalid_specs():
    with pytest.raises(InvalidInstrumentError):
        Instrument(1, "X", tick_size="0")
    with pytest.raises(InvalidInstrumentError):
        Instrument(-1, "X")
    with pytest.raises(InvalidInstrumentError):
        Instrument(1, "X", min_qty=5, max_qty=2)


def test_whole_prices_print_without_exponent():
    ins = Instrument(1, "X", tick_size="0.5")
    assert str(ins.ticks_to_price(210000)) == "105000"
    assert str(ins.lots_to_qty(3)) == "3"


# -- options -------------------------------------------------------------------------------------
def test_option_fields_are_validated():
    from shardex import InstrumentKind, OptionType

    c = Instrument(3, "BTC-C", kind=InstrumentKind.OPTION, strike="70000", option_type="C", underlying=0,
                   inverse=True, base="BTC")
    assert (c.strike, c.option_type, c.underlying, c.inverse, c.is_option) == (Decimal(70000), OptionType.CALL, 0,
                                                                               True, True)
    assert Instrument(3, "P", kind=InstrumentKind.OPTION, strike=5, option_type=1).option_type == OptionType.PUT
    # an option listed for matching only (no strike) is still an instrument, but not a full option
    assert not Instrument(3, "BTC-C", kind=InstrumentKind.OPTION).is_option
    bad = [
        (dict(kind=InstrumentKind.OPTION, strike="70000"), "together"),
        (dict(kind=InstrumentKind.OPTION, option_type="call"), "together"),
        (dict(kind=InstrumentKind.OPTION, strike="0", option_type="call"), "positive"),
        (dict(kind=InstrumentKind.OPTION, strike="1", option_type="straddle"), "'call' or 'put'"),
        (dict(kind=InstrumentKind.OPTION, strike="1", option_type=7), "CALL or PUT"),
        (dict(kind=InstrumentKind.OPTION, underlying=3), "another instrument"),
        (dict(kind=InstrumentKind.OPTION, underlying=-1), "another instrument"),
        (dict(kind=InstrumentKind.PERPETUAL, strike="1"), "only apply to options"),
        (dict(kind=InstrumentKind.FUTURE, underlying=0), "only apply to options"),
        (dict(kind=InstrumentKind.SPOT, inverse=True), "cannot be inverse"),
        (dict(kind=InstrumentKind.FUTURE, expiry_ns=-1), "expiry_ns"),
    ]
    for kw, msg in bad:
        with pytest.raises(InvalidInstrumentError, match=msg):
            Instrument(3, "X", **kw)


def test_option_instrument_survives_the_snapshot_json():
    from shardex.engine.snapshotting import instrument_from_json, instrument_to_json
    from shardex.options import OptionSpec, Settlement

    ins = OptionSpec.from_symbol("BTC-26JUN20-8000-P", Settlement.LINEAR).to_instrument(4, "0.1", "0.01", underlying=0)
    back = instrument_from_json(instrument_to_json(ins))
    assert back == ins and back.strike == Decimal(8000) and back.option_type.name == "PUT" and not back.inverse
    assert OptionSpec.from_symbol("BTC-26JUN20-8000-C").to_instrument(5).inverse
