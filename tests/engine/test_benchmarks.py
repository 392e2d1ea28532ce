"""The benchmark commands' interfaces (issue: pipeline and durability): keys, identical output, small runs.

Timings are not asserted: these runs are far too small to mean anything,
and CI machines are shared.  What must hold whatever the machine does is
that every shard count computes the same thing and that the reports carry
the keys their readers (README, notes, scripts) rely on.
"""

import json

from typer.testing import CliRunner

from shardex.cli import app
from shardex.engine.benchmarks import _by_placement, bench_pipeline, bench_recovery, bench_shards


def test_bench_shards_reports_every_count_with_one_output():
    r = bench_shards(n_instruments=8, shard_counts=(1, 2, 3), commands=12_000, batch=1024, repeat=1, prefault_mb=0)
    assert r["identical_output"] is True
    assert [x["shards"] for x in r["runs"]] == [1, 2, 3]
    assert len({x["state_hash"] for x in r["runs"]}) == 1
    for x in r["runs"]:
        assert x["commands"] == 12_000 and x["commands_per_second"] > 0
        assert x["ceiling"] > 0 and x["share_of_ceiling"] > 0
    assert r["runs"][0]["speedup"] == 1.0
    trips = r["line_round_trip_ns"]  # one probe before each round and one after the last (none on one core)
    assert len(trips) in (0, 2) and all(t > 0 for t in trips)
    for x in r["runs"]:  # the one round sits in one placement group, or none where nothing was probed
        assert sum(g["rounds"] for g in x["by_placement"].values()) == len(trips[:1])


def test_rounds_are_grouped_by_the_probe_taken_before_them():
    trips = [60.0, 450.0, 70.0, None, 80.0]  # the last probe follows the last round
    base = [1.0, 1.0, 1.0, 1.0]
    two = [0.5, 1.25, 0.8, 0.1]
    ceil_base, ceil_two = [1.0] * 4, [0.6, 0.5, 0.7, 0.1]
    got = _by_placement(trips, base, two, ceil_base, ceil_two)
    assert got == {"close": {"rounds": 2, "speedup": 1.625, "ceiling": 1.548},  # rounds 0 and 2 (1/0.5, 1/0.8)
                   "far": {"rounds": 1, "speedup": 0.8, "ceiling": 2.0}}


def test_bench_shards_cli_json():
    res = CliRunner().invoke(app, ["bench", "shards", "--instruments", "4", "--shards", "1,2", "--commands", "6000",
                                   "--batch", "512", "--repeat", "1", "--prefault-mb", "0", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["identical_output"] is True
    assert {"shards", "commands", "commands_per_second", "state_hash"} <= set(out["runs"][0])


def test_bench_shards_cli_rejects_a_bad_list():
    res = CliRunner().invoke(app, ["bench", "shards", "--shards", "1,two"])
    assert res.exit_code != 0
    assert "comma-separated integers" in res.output


def test_bench_pipeline_agrees_with_the_serial_engine(tmp_path):
    r = bench_pipeline(n_instruments=4, shards=2, commands=8_000, batch=1024, repeat=1, directory=str(tmp_path))
    assert r["state_hashes_agree"] is True
    assert r["commands"] == 8_000 and r["fsync_policy"] == "batch" and r["batch"] == 1024
    assert r["commands_per_second"] > 0
    assert list(tmp_path.iterdir()) == []  # its engines' directories are removed


def test_bench_recovery_rebuilds_the_live_state(tmp_path):
    r = bench_recovery(commands=8_000, n_instruments=4, shards=2, batch=1024, repeat=1, directory=str(tmp_path))
    assert r["state_hash_matches"] is True
    assert r["commands"] == 8_000 and r["commands_per_second"] > 0
