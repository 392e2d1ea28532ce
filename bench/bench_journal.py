"""Journal micro benchmark: durable append and read-back of command batches.

Appends N commands (default 1,000,000) in batches of 4096 with one fsync per
batch (the ``batch`` policy), then opens the journal afresh and reads every
command back with CRC32C checks (the recovery path).  Each figure is the
median of ``--runs`` runs.  The peer in the same run is SQLite (stdlib
``sqlite3``, WAL mode, ``synchronous=FULL``): one BLOB row per batch and one
committed transaction per batch, i.e. the same durability per batch.  A
third row, "raw", writes the same bytes with plain ``write`` + ``fdatasync``
and reads them with ``np.fromfile``: the floor the disk sets, so the
journal's own overhead (framing, CRC32C, checks) is the difference.

Reading is measured with the file in the page cache (the run just wrote it);
that is the usual case for a restart after a process crash, not after a
power loss.

Usage::

    python bench/bench_journal.py [--commands 1000000] [--batch 4096] [--runs 5] [--dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from shardex.journal import Journal
from shardex.schema import COMMAND_DTYPE


def make_commands(n: int) -> np.ndarray:
    """Return n plausible commands with seq 1..n (content matters little to the journal)."""
    rng = np.random.default_rng(7)
    c = np.zeros(n, COMMAND_DTYPE)
    c["seq"] = np.arange(1, n + 1)
    c["ts"] = 1_700_000_000_000_000_000 + c["seq"] * 1000
    c["order_id"] = c["seq"]
    c["account"] = rng.integers(0, 10_000, n)
    c["price"] = rng.integers(9_000, 11_000, n)
    c["qty"] = rng.integers(1, 100, n)
    c["instrument"] = rng.integers(0, 64, n)
    c["kind"] = 1
    c["side"] = rng.integers(0, 2, n)
    return c


def run_journal(commands: np.ndarray, batch: int, directory: Path) -> tuple[float, float]:
    """Return (append seconds, open + read seconds) for one run in a fresh directory."""
    shutil.rmtree(directory, ignore_errors=True)
    t0 = time.perf_counter()
    with Journal(directory, fsync_policy="batch") as j:
        for i in range(0, len(commands), batch):
            j.append(commands[i : i + batch])
    t1 = time.perf_counter()
    total = 0
    t2 = time.perf_counter()
    with Journal(directory) as j:
        for b in j.read():
            total += len(b)
    t3 = time.perf_counter()
    assert total == len(commands)
    return t1 - t0, t3 - t2


def run_sqlite(commands: np.ndarray, batch: int, directory: Path) -> tuple[float, float]:
    """The peer: SQLite WAL, synchronous=FULL, one committed BLOB row per batch."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    db = directory / "log.sqlite"
    t0 = time.perf_counter()
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE log (first_seq INTEGER PRIMARY KEY, count INTEGER, payload BLOB)")
    for i in range(0, len(commands), batch):
        b = commands[i : i + batch]
        con.execute("BEGIN")
        con.execute("INSERT INTO log VALUES (?, ?, ?)", (int(b["seq"][0]), len(b), b.tobytes()))
        con.execute("COMMIT")
    con.close()
    t1 = time.perf_counter()
    total = 0
    t2 = time.perf_counter()
    con = sqlite3.connect(db)
    for _first, _count, payload in con.execute("SELECT first_seq, count, payload FROM log ORDER BY first_seq"):
        total += len(np.frombuffer(payload, COMMAND_DTYPE))
    con.close()
    t3 = time.perf_counter()
    assert total == len(commands)
    return t1 - t0, t3 - t2


def run_floor(commands: np.ndarray, batch: int, directory: Path) -> tuple[float, float]:
    """The floor: the same bytes written with os.write + fdatasync per batch, no framing or CRC."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    path = directory / "raw"
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for i in range(0, len(commands), batch):
        os.write(fd, commands[i : i + batch].tobytes())
        os.fdatasync(fd)
    os.close(fd)
    t1 = time.perf_counter()
    t2 = time.perf_counter()
    raw = np.fromfile(path, dtype=COMMAND_DTYPE)
    t3 = time.perf_counter()
    assert len(raw) == len(commands)
    return t1 - t0, t3 - t2


def machine() -> str:
    """A one-line description of where the figures come from."""
    return f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    commands = make_commands(args.commands)
    base = Path(tempfile.mkdtemp(prefix="bench_journal_", dir=args.dir))
    results = {}
    try:
        runners = (("shardex.Journal", run_journal), ("sqlite3 WAL (peer)", run_sqlite), ("raw write+fdatasync", run_floor))
        for name, fn in runners:
            appends, reads = [], []
            for r in range(args.runs):
                a, b = fn(commands, args.batch, base / f"{name.split()[0]}-{r}")
                appends.append(a)
                reads.append(b)
            results[name] = {
                "append_commands_per_second": args.commands / statistics.median(appends),
                "read_commands_per_second": args.commands / statistics.median(reads),
                "append_seconds": statistics.median(appends),
                "read_seconds": statistics.median(reads),
            }
    finally:
        shutil.rmtree(base, ignore_errors=True)

    doc = {
        "commands": args.commands,
        "batch": args.batch,
        "fsync_policy": "batch",
        "runs": args.runs,
        "machine": machine(),
        "date": dt.date.today().isoformat(),
        "results": results,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(f"{doc['machine']}, {doc['date']}")
    print(f"{args.commands:,} commands, batches of {args.batch}, fsync per batch, median of {args.runs} runs")
    for name, r in results.items():
        print(
            f"  {name:<20} append {r['append_commands_per_second'] / 1e6:7.2f} M commands/s ({r['append_seconds'] * 1e3:7.1f} ms)"
            f"   read {r['read_commands_per_second'] / 1e6:7.2f} M commands/s ({r['read_seconds'] * 1e3:7.1f} ms)"
        )


if __name__ == "__main__":
    main()
