"""``shardex conformance-adapter`` through tracebook-conformance's own CLI: bundled suite v2 and a campaign.

Each case and each campaign trace starts a fresh adapter process (~2-5 s on
a busy 2-core machine, most of it importing the ``shardex`` CLI).  A first
session compiles the kernels if numba's on-disk cache is cold, so it runs
alone with a long timeout before the timed runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

CANDIDATE = ["--timeout", "120", "--candidate", "shardex", "conformance-adapter"]
#: Campaign seeds and their size: 3 seeds x 1 trace x 150 events, about 15 s.
CAMPAIGN_SEEDS = (1337, 7, 2024)
CAMPAIGN_EVENTS = 150

pytestmark = pytest.mark.slow


def _tracebook(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    exe = shutil.which("tracebook-conformance")
    cmd = [exe] if exe else [sys.executable, "-m", "tracebook.conformance.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def warm_adapter():
    """One adapter session, long enough to compile the kernels once if the cache is cold."""
    if shutil.which("shardex") is None:
        pytest.skip("the shardex console script is not installed (pip install -e .)")
    hello = {"type": "hello", "protocol": "tracebook.conformance", "protocol_version": 1, "config": {}}
    event = {"type": "event", "index": 1, "event": {"op": "new", "symbol": "W", "order_id": 1, "side": "BUY",
                                                    "order_type": "LIMIT", "price": 1.0, "quantity": 1.0}}
    lines = "".join(json.dumps(m) + "\n" for m in (hello, event, {"type": "finish", "event_count": 1}))
    done = subprocess.run(["shardex", "conformance-adapter"], input=lines, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"type": "complete", "event_count": 1}


def test_bundled_suite_v2_conforms(warm_adapter, tmp_path):
    suite = tmp_path / "suite-v2"
    assert _tracebook("sample", str(suite), "--suite-version", "v2").returncode == 0
    report_path = tmp_path / "suite-report.json"
    done = _tracebook("suite", str(suite), "--output", str(report_path), *CANDIDATE)
    report = json.loads(report_path.read_text())
    failed = {c["name"]: c["report"]["divergence"] for c in report["cases"] if not c["report"]["conformant"]}
    assert not failed, failed
    assert done.returncode == 0, done.stderr
    assert report["case_count"] == report["conformant_cases"] == 9
    names = {c["name"] for c in report["cases"]}
    assert {"stp-cancel-resting", "stp-cancel-resting-deep", "stp-cancel-incoming", "pro-rata-allocation"} <= names


@pytest.mark.parametrize("seed", CAMPAIGN_SEEDS)
def test_campaign_fifo_full_conforms(warm_adapter, tmp_path, seed):
    out = tmp_path / f"campaign-{seed}"
    done = _tracebook("campaign", "--profile", "fifo-full-v1", "--seed", str(seed), "--traces", "1",
                      "--events-per-trace", str(CAMPAIGN_EVENTS), "--output-dir", str(out), *CANDIDATE)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "campaign.json").read_text())
    traces = report["traces"]
    assert len(traces) == 1 and all(t["conformant"] for t in traces), traces
    assert report.get("failure") is None
