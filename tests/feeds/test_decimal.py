"""Decimal strings <-> integers, exactly."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardex.errors import MalformedInputError, OffGridError
from shardex.feeds._decimal import Grid, canonical_decimal, parse_units, top10_sha256, units_to_str


@pytest.mark.parametrize(
    ("text", "want"),
    [("61800.20", "61800.2"), ("1000.00", "1000"), (4714.0, "4714"), ("0.00000000", "0"), (0.0005, "0.0005"), (1e-05, "0.00001"), ("007.50", "7.5")],
)
def test_canonical_decimal(text, want):
    assert canonical_decimal(text) == want


def test_parse_units_rejects_finer_and_garbage():
    assert parse_units("61800.20", 2) == 6180020
    with pytest.raises(OffGridError):
        parse_units("1.005", 2)
    for bad in ("", "abc", "1.2.3", "--1"):
        with pytest.raises(MalformedInputError):
            parse_units(bad, 8)


def test_grid_ticks_and_strings():
    g = Grid.from_steps("0.10", "0.001")
    assert g.ticks("61800.20") == 618002 and g.px_str(618002) == "61800.2"
    assert g.lots("0.014") == 14 and g.qty_str(14) == "0.014"
    with pytest.raises(OffGridError):
        g.ticks("61800.25")


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=0, max_value=12))
def test_units_round_trip(units, dec):
    s = units_to_str(units, dec)
    assert "e" not in s and not s.endswith(".") and (not ("." in s) or not s.endswith("0"))
    assert parse_units(s, dec) == units


def test_top10_sha256_is_the_issue_definition():
    bids = [("61800.2", "2.909")]
    asks = [("61800.3", "1")]
    doc = json.dumps({"asks": [["61800.3", "1"]], "bids": [["61800.2", "2.909"]]}, separators=(",", ":"), sort_keys=True)
    assert top10_sha256(bids, asks) == hashlib.sha256(doc.encode()).hexdigest()
