"""``shardex bench risk`` runs and reports its fields (tiny sizes)."""

from __future__ import annotations

from shardex.risk.bench import bench_risk


def test_bench_risk_reports_both_paths(tmp_path):
    r = bench_risk(commands=3_000, batch=512, repeat=1, workload=tmp_path / "absent.csv", instruments=2)
    assert "flow(" in r["workload"]
    assert r["commands"] == 3_000 and r["instruments"] == 2
    assert r["commands_per_second"] > 0 and r["matching_only_commands_per_second"] > 0
    assert r["trades"] > 0
