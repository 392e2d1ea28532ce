"""The cross-core round-trip probe: a figure when two cores can take turns, none when they cannot."""

import pytest

import shardex.machine as machine
from shardex.sync import usable_cores


@pytest.mark.skipif(usable_cores() < 2, reason="needs two cores to take turns on")
def test_round_trip_is_a_positive_time_on_two_cores():
    rt = machine.line_round_trip_ns(rounds=2000)
    # A line cannot cross two cores and back in under a nanosecond, and the probe
    # is bounded (about a second of polling per side): on a loaded CI box it is
    # slow, never hung.
    assert rt is not None and rt > 1.0


def test_round_trip_is_none_on_one_core(monkeypatch):
    monkeypatch.setattr(machine, "usable_cores", lambda: 1)
    assert machine.line_round_trip_ns(rounds=10) is None


def test_rounds_must_be_positive():
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        machine.line_round_trip_ns(rounds=0)


def test_placement_splits_at_the_close_threshold():
    assert machine.placement(None) is None
    assert machine.placement(machine.CLOSE_NS - 1) == "close"
    assert machine.placement(machine.CLOSE_NS) == "far"
    assert machine.placement(450.0) == "far"
