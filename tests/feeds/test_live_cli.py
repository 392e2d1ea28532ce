"""``shardex feeds serve-capture`` and ``shardex feeds live`` as two processes on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shardex.feeds.replay import replay_files

_CLI = [sys.executable, "-c", "import sys; from shardex.cli import main; sys.argv[0] = 'shardex'; main()"]


def test_serve_capture_and_live_cli_end_with_the_offline_book(hft: Path):
    f = hft / "usdm/btcusdt_20240718.gz"
    srv = subprocess.Popen(
        _CLI + ["feeds", "serve-capture", str(f), "--speed", "max", "--port", "0", "--idle-timeout", "20", "--drop-every", "1000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = ""
        for _ in range(10):  # the banner is four lines
            line = srv.stdout.readline()
            if "websocket:" in line:
                url = line.split()[1].split("?")[0]
                break
        assert url.startswith("ws://127.0.0.1:")
        out = subprocess.run(
            _CLI + ["feeds", "live", "--url", url, "--venue", "binance-usdm", "--symbol", "BTCUSDT", "--duration", "40", "--json"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        rep = json.loads(out.stdout)
        tail, _ = srv.communicate(timeout=20)
    finally:
        if srv.poll() is None:
            srv.kill()
    (_, b), = replay_files([f]).report()["books"].items()
    book = rep["books"]["binance-usdm:BTCUSDT"]
    assert rep["end"] == "server closed: end of capture"
    # across processes at max speed the server runs ahead by what the socket buffers hold, so a
    # snapshot fetched after a gap can be newer than later lost diffs: at least one gap, each healed
    assert 1 <= book["gaps"] == book["resyncs"] <= 3
    assert book["top10_sha256"] == b["top10_sha256"]
    assert "done: end of capture" in tail and json.loads(tail.strip().splitlines()[-1])["dropped_diffs"] == 3


def test_live_cli_refuses_a_bad_venue():
    out = subprocess.run(
        _CLI + ["feeds", "live", "--url", "ws://127.0.0.1:9/stream", "--venue", "binance-options", "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2 and "venue must be one of" in out.stderr


def test_serve_capture_deribit_banner_and_live_deribit_cli(cf: Path):
    f = cf / "DERIBIT.ws.1.0"
    srv = subprocess.Popen(
        _CLI + ["feeds", "serve-capture", str(f), "--speed", "max", "--port", "0", "--idle-timeout", "20"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = ""
        for _ in range(10):  # the banner is four lines
            line = srv.stdout.readline()
            if "websocket:" in line:
                url = line.split()[1]
                break
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/ws/api/v2"), url
        inst = "BTC-24SEP21-8000-P"
        out = subprocess.run(
            _CLI + ["feeds", "live", "--url", url, "--venue", "deribit", "--symbol", inst, "--duration", "40", "--json"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        rep = json.loads(out.stdout)
        srv.communicate(timeout=20)
    finally:
        if srv.poll() is None:
            srv.kill()
    book = rep["books"][f"deribit:{inst}"]
    assert rep["end"] == "server closed: end of capture" and rep["gaps_detected"] == 0
    assert book["synced"] and book["top10_sha256"] == replay_files([f]).report()["books"][f"deribit:{inst}"]["top10_sha256"]
