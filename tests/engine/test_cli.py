"""The engine's command line: bench matching on a workload file, and the demo."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shardex.cli import app
from shardex.engine.workload import read_workload_csv

runner = CliRunner()

WORKLOAD = """op,order_id,account,side,type,tif,price,qty
new,1,1,sell,limit,gtc,101,5
new,2,2,sell,limit,gtc,102,5
new,3,3,buy,market,ioc,0,7
cancel,2,2,,,,0,0
new,4,1,buy,limit,fok,105,1
new,5,1,sideways,limit,gtc,100,1
new,6,1,buy,limit,gtc,1.5,1
"""


def test_workload_reader_skips_bad_rows_and_names_them(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text(WORKLOAD)
    wl = read_workload_csv(path)
    assert len(wl.commands) == 5
    assert [e.split(": ", 1)[0].rsplit(":", 1)[1] for e in wl.errors] == ["7", "8"]
    assert "side must be one of buy|sell" in wl.errors[0]
    assert "price must be an integer" in wl.errors[1]


def test_bench_matching_json(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text(WORKLOAD)
    res = runner.invoke(app, ["bench", "matching", "--workload", str(path), "--json", "--repeat", "1", "--prefault-mb", "2"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["commands"] == 5 and out["prefault_mb"] == 2
    # the market buy takes 5 @101 and 2 @102; the cancel removes the rest of order 2; the FOK finds nothing
    assert (out["trades"], out["traded_qty"]) == (2, 7)
    assert {"seconds", "commands_per_second", "state_hash"} <= set(out)


def test_bench_matching_per_command_agrees_with_batches(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text(WORKLOAD)
    outs = []
    for extra in ([], ["--per-command"]):
        res = runner.invoke(app, ["bench", "matching", "--workload", str(path), "--json", "--repeat", "1", *extra])
        assert res.exit_code == 0, res.output
        outs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    assert outs[0]["state_hash"] == outs[1]["state_hash"]
    assert outs[0]["trades"] == outs[1]["trades"]


def test_bench_matching_missing_file(tmp_path):
    res = runner.invoke(app, ["bench", "matching", "--workload", str(tmp_path / "nope.csv"), "--json"])
    assert res.exit_code == 2
    assert "no such workload file" in " ".join(res.output.split())


def test_demo_runs_on_a_small_flow():
    res = runner.invoke(app, ["demo", "--commands", "20000", "--instruments", "3", "--shards", "2", "--no-lobster"])
    assert res.exit_code == 0, res.output
    assert "M commands/s" in res.output and "I0002" in res.output
    assert "equal" in res.output and "DIFFERENT" not in res.output


def test_demo_drives_real_marks(monkeypatch, tmp_path):
    # no ../shared/data: the demo falls back to the package's copy of the 99 real mark updates
    monkeypatch.setenv("SHARDEX_DATA", str(tmp_path))
    res = runner.invoke(app, ["demo", "--commands", "2000", "--instruments", "1", "--no-lobster"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "built-in copy" in out and "99 (23:58:21 - 23:59:59 UTC)" in out
    assert "28146.2 - 28157.1" in out
    assert "liquidation at 23:58:59 UTC (update 38, mark 28151.7): D short, carried" in out
    assert "1.2 BTC closed in the book, 0.8 BTC auto-deleveraged" in out
