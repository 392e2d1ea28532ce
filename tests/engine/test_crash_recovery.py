"""Issue 4, item 6: SIGKILL a writer under load several times; nothing acknowledged is lost."""

from __future__ import annotations

from shardex.engine.crash_soak import soak


def test_sigkill_under_load_loses_no_acknowledged_command(tmp_path):
    report = soak(4, directory=tmp_path / "engine", kill_after_s=(0.05, 0.8))
    detail = f"seed {report.seed}: {report.kills}"
    assert report.acknowledged > 0, detail
    assert report.lost == 0, detail
    assert report.recovered == report.acknowledged, detail
    assert report.hash_mismatches == 0, detail
    # every other writer acknowledged lists through process_many: those were killed under load too
    assert any(k["process_many"] and k["last_acknowledged"] >= k["start_seq"] for k in report.kills), detail
