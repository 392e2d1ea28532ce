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
