"""``shardex bench settlement``'s report (issue: accounts, risk and parallel settlement): keys and equal states.

A tiny sweep: the timings mean nothing here and are not asserted; the
executor must reach the sequential kernel's state in every row, and the
report must carry the keys the issue names.
"""

import json

from typer.testing import CliRunner

from shardex.ledger.bench import format_table, run_sweep


def test_sweep_rows_carry_the_issue_keys_and_equal_states():
    report = run_sweep(accounts=(10, 200), workloads=("transfer", "trade"), threads=(1, 2), repeats=1, n_txns=400)
    runs = report["runs"]
    assert [(r["workload"], r["accounts"], r["threads"]) for r in runs] == [
        (w, a, t) for w in ("transfer", "trade") for a in (10, 200) for t in (1, 2)
    ]
    for r in runs:
        assert {"workload", "accounts", "threads", "sequential_seconds", "parallel_seconds", "speedup",
                "state_hash_equal"} <= set(r)
        assert r["state_hash_equal"] is True
        assert r["speedup"] > 0
        if r["threads"] == 1:  # nothing crosses cores: no round trip measured
            assert r["line_round_trip_ns"] is None
    table = format_table(report)
    assert "trip ns" in table and table.count("\n") == len(runs) + 2


def test_settlement_cli_json():
    from shardex.cli import app

    res = CliRunner().invoke(app, ["bench", "settlement", "--json", "--repeats", "1", "--txns", "200"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["benchmark"] == "settlement" and out["runs"]
    assert all(r["state_hash_equal"] for r in out["runs"])
