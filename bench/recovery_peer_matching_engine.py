"""Recovery of the ``matching-engine`` package (PyPI 0.1.1): replay N commands from its own journal.

Run with its venv: ``bench/.venvs/matching-engine/bin/python bench/recovery_peer_matching_engine.py N``.
Untimed: the package's own workload generator (``order_flow(seed=42, count=N)``)
is stamped seq 1..N and appended to the package's ``Journal`` (fsync off,
one sync at the end).  Timed: ``Journal(root).recover()``, its whole
recovery path (segment scan, decode, ``MatchingEngine.process`` per record),
median of ``--repeat``.  Prints one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import statistics
import tempfile
import time
from pathlib import Path

from matching_engine.domain import SequencedCommand
from matching_engine.journal import Journal
from matching_engine.workload import order_flow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("commands", type=int)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="me-recovery-") as tmp:
        root = Path(tmp)
        j = Journal(root, fsync=False)
        j.open(1)
        for seq, cmd in enumerate(order_flow(seed=42, count=args.commands), start=1):
            j.append(SequencedCommand(seq, 0, cmd))
        j.sync()
        seconds = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            engine, report = Journal(root, fsync=False).recover()
            seconds.append(time.perf_counter() - t0)
        assert report.replayed == args.commands, report
    med = statistics.median(seconds)
    print(json.dumps({"peer": "matching-engine", "version": importlib.metadata.version("matching-engine"),
                      "commands": args.commands, "seconds": round(med, 4), "commands_per_second": round(args.commands / med),
                      "all_seconds": [round(s, 4) for s in seconds]}))


if __name__ == "__main__":
    main()
