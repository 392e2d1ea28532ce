"""A durable engine's ``process``: matching while the journal fsyncs, against journal-then-match.

``Exchange.open(...).process(batch)`` acknowledges a batch only once the
journal holds it on disk.  From ``durable.JOURNAL_ALONGSIDE_FROM`` commands
up, it matches the batch while the journal thread writes and fsyncs it,
and hands the events out after both; below, it journals and then matches.
This script runs, in interleaved rounds on the same stream (64 instruments,
2 shards, ``fsync_policy="batch"``, a fresh journal directory per run):

* ``alongside``: ``process`` as shipped;
* ``journal, then match``: ``process`` with ``JOURNAL_ALONGSIDE_FROM`` set
  above every batch, as every batch ran before;
* ``pipeline``: the staged pipeline (``ex.pipeline(depth=4)``), which
  overlaps the journal of one batch with the matching of another.

It prints commands per second for each, and the paired ratio of the
sequential time over the shipped one (above 1: the shipped path is
faster), per batch size.  The state hashes of every run are checked equal.

    python bench/durable_process.py [--rounds 5] [--sizes 256,1024,4096]
                                    [--commands 500000] [--alongside-from N] [--dir DIR]
                                    [--json bench/out/durable_process.json]

Never part of CI.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench_matching import machine, positive_ints, sign_and_save
import shardex.engine.durable as durable
from shardex.engine.benchmarks import _warm, durable_run
from shardex.engine.loadgen import order_flow

N_INSTRUMENTS = 64
SHARDS = 2
MODES = ("alongside", "journal, then match", "pipeline")


def _run(cmds, size: int, mode: str, directory: str | None, alongside_from: int) -> tuple[float, str]:
    """Seconds to take every batch through a fresh durable engine in ``mode``, and its state hash."""
    shipped = durable.JOURNAL_ALONGSIDE_FROM
    try:
        durable.JOURNAL_ALONGSIDE_FROM = len(cmds) + 1 if mode == "journal, then match" else alongside_from
        return durable_run(cmds, size, staged=mode == "pipeline", n_instruments=N_INSTRUMENTS, shards=SHARDS,
                           directory=directory)
    finally:
        durable.JOURNAL_ALONGSIDE_FROM = shipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    ap.add_argument("--sizes", type=positive_ints, default="256,1024,4096", help="batch sizes, comma-separated")
    ap.add_argument("--commands", type=int, default=500_000, help="commands per run")
    ap.add_argument("--alongside-from", type=int, default=durable.JOURNAL_ALONGSIDE_FROM,
                    help="the alongside mode's threshold (default: the shipped one), to find where it pays")
    ap.add_argument("--dir", default=None, help="where the journals go (default: the system's temporary directory)")
    ap.add_argument("--json", type=Path, default=None, help="write the report to this file")
    args = ap.parse_args(argv)
    sizes = args.sizes
    if args.rounds < 1 or args.commands < 1:
        ap.error("--rounds and --commands must be at least 1")

    cmds = order_flow(args.commands, n_instruments=N_INSTRUMENTS, seed=42)
    _warm(N_INSTRUMENTS)
    rows = []
    for size in sizes:
        seconds = {m: [] for m in MODES}
        hashes = set()
        _run(cmds, size, "alongside", args.dir, args.alongside_from)  # warm the page cache and the threads' first batches
        for _ in range(args.rounds):
            for m in MODES:
                dt, h = _run(cmds, size, m, args.dir, args.alongside_from)
                seconds[m].append(dt)
                hashes.add(h)
        if len(hashes) != 1:
            raise SystemExit(f"batch {size}: the modes' state hashes differ: {sorted(hashes)}")
        rate = {m: round(len(cmds) / statistics.median(v)) for m, v in seconds.items()}
        paired = statistics.median(a / b for a, b in zip(seconds["journal, then match"], seconds["alongside"]))
        rows.append({"batch": size, "commands": len(cmds), "commands_per_second": rate,
                     "sequential_over_alongside": paired, "seconds": seconds, "state_hashes_agree": True,
                     "alongside_from": args.alongside_from})
        print(f"batch {size:5d}: alongside {rate['alongside'] / 1e6:5.2f} M/s, journal then match "
              f"{rate['journal, then match'] / 1e6:5.2f} M/s (paired {paired:.2f}x), pipeline "
              f"{rate['pipeline'] / 1e6:5.2f} M/s", flush=True)

    report = {"benchmark": "durable_process", "machine": machine(), "instruments": N_INSTRUMENTS,
              "shards": SHARDS, "fsync_policy": "batch", "rounds": args.rounds, "runs": rows}
    sign_and_save(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
