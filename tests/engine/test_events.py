"""Events as tables (pandas, Arrow) and one-line descriptions."""

from __future__ import annotations

import numpy as np

from shardex import to_arrow, to_frame
from shardex.engine.events import describe
from shardex.schema import EVENT_DTYPE

from .flows import exchange, random_flow


def sample_events():
    ex = exchange(2, 1)
    return ex.process(random_flow(11, 200, ninst=2))


def test_to_frame_keeps_every_field_and_names_the_enums():
    ev = sample_events()
    df = to_frame(ev)
    assert list(df.columns) == list(EVENT_DTYPE.names) and len(df) == len(ev)
    assert set(df["kind"]) <= {"ACCEPTED", "REJECTED", "TRADE", "CANCELLED", "AMENDED", "TRIGGERED", "REPLENISHED"}
    assert "TRADE" in set(df["kind"]) and set(df["side"]) == {"BUY", "SELL"}
    assert df["price"].tolist() == ev["price"].tolist() and df["trade_id"].tolist() == ev["trade_id"].tolist()
    assert (df["reason"][df["kind"] == "TRADE"] == "OK").all()


def test_to_arrow_round_trips_the_integer_columns():
    ev = sample_events()
    table = to_arrow(ev)
    assert table.num_rows == len(ev) and table.column_names == list(EVENT_DTYPE.names)
    for name in ("seq", "order_id", "account", "price", "qty", "leaves", "maker_order_id", "trade_id", "instrument"):
        assert np.array_equal(table.column(name).to_numpy(), ev[name]), name
    kinds = table.column("kind").combine_chunks()
    assert str(kinds.type).startswith("dictionary")
    assert kinds.dictionary_decode().to_pylist() == to_frame(ev)["kind"].tolist()


def test_empty_events_convert():
    empty = np.zeros(0, dtype=EVENT_DTYPE)
    assert len(to_frame(empty)) == 0 and to_arrow(empty).num_rows == 0


def test_describe_names_kind_side_and_reason():
    ev = sample_events()
    lines = [describe(e) for e in ev]
    assert any(" TRADE " in line and " vs order=" in line for line in lines)
    assert any("reason=" in line for line in lines)
