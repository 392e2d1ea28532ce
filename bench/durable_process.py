"""A durable engine's ``process``: matching while the journal fsyncs, against journal-then-match.

``Exchange.open(...).process(batch)`` acknowledges a batch only once the
journal holds it on disk.  Under ``fsync_policy="batch"``, from
``JOURNAL_ALONGSIDE_FROM`` commands up (each durable engine has its own),
it writes the batch to the journal, then matches it while the journal
thread fsyncs it, and hands the events out after both; below, it journals
(write and fsync) and then matches.  This script runs, in interleaved rounds on the same stream (64 instruments, a
fresh journal directory per run):

* ``alongside``: ``process`` as shipped;
* ``journal, then match``: ``process`` with ``JOURNAL_ALONGSIDE_FROM`` set
  above every batch, as every batch ran before;
* ``pipeline``: the staged pipeline (``ex.pipeline(depth=4)``), which
  overlaps the journal of one batch with the matching of another;
* ``process_many``: ``process_many`` on ``--many`` batches at a time (16):
  each list is written, fsynced once (a group commit of the whole list, so
  a batch is acknowledged with its list), and streamed through the shards
  while that fsync runs.

``--engine exchange`` (default) runs ``Exchange.open`` with 2 shards;
``--engine risk`` runs ``open_risk`` (perpetuals, every account funded
before the clock starts), which takes the same path and has no pipeline.
It prints commands per second for each, and the paired ratio of the
sequential time over the shipped one (above 1: the shipped path is
faster), per batch size.  The state hashes of every run are checked equal.

    python bench/durable_process.py [--rounds 5] [--sizes 256,1024,4096] [--engine exchange|risk]
                                    [--commands 500000] [--alongside-from N] [--many 16] [--dir DIR]
                                    [--json bench/out/durable_process.json]

Never part of CI.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench_matching import machine, positive_ints, sign_and_save
import shardex.engine.durable as durable
import shardex.risk.durable as risk_durable
from shardex.engine.benchmarks import _warm, durable_run
from shardex.engine.loadgen import batches, order_flow

N_INSTRUMENTS = 64
SHARDS = 2
MODES = ("alongside", "journal, then match", "pipeline", "process_many")


def _run(cmds, size: int, mode: str, directory: str | None, alongside_from: int | None,
         engine: str, many: int = 16) -> tuple[float, str]:
    """Seconds to take every batch through a fresh durable engine in ``mode``, and its state hash."""
    module = risk_durable if engine == "risk" else durable
    shipped = module.JOURNAL_ALONGSIDE_FROM
    try:
        if mode == "journal, then match":
            module.JOURNAL_ALONGSIDE_FROM = len(cmds) + 1
        elif alongside_from is not None:
            module.JOURNAL_ALONGSIDE_FROM = alongside_from
        if engine == "risk":
            return _run_risk(cmds, size, directory)
        return durable_run(cmds, size, staged=mode == "pipeline", n_instruments=N_INSTRUMENTS, shards=SHARDS,
                           directory=directory, many=many if mode == "process_many" else 0)
    finally:
        module.JOURNAL_ALONGSIDE_FROM = shipped


def _run_risk(cmds, size: int, directory: str | None) -> tuple[float, str]:
    """``_run`` for a durable ``RiskExchange`` (``open_risk``): perpetuals, every account funded first (untimed)."""
    from shardex.risk.bench import bench_venue

    n_acc = int(cmds["account"].max()) + 1
    perps, options, funding = bench_venue(N_INSTRUMENTS, n_acc)
    root = Path(tempfile.mkdtemp(prefix="shardex-bench-durable-risk-", dir=directory))
    try:
        with risk_durable.open_risk(root / "engine", perps, n_acc, clock=lambda: 1, snapshot_every=0,
                                    snapshot_on_close=False, **options) as rx:
            rx.process(funding.copy())
            t0 = time.perf_counter()
            for b in batches(cmds, size):
                rx.process(b)
            return time.perf_counter() - t0, rx.state_hash()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    ap.add_argument("--sizes", type=positive_ints, default="256,1024,4096", help="batch sizes, comma-separated")
    ap.add_argument("--commands", type=int, default=500_000, help="commands per run")
    ap.add_argument("--alongside-from", type=int, default=None,
                    help="the alongside mode's threshold (default: the engine's shipped one), to find where it pays")
    ap.add_argument("--engine", choices=("exchange", "risk"), default="exchange",
                    help="the matching engine (Exchange.open), or the risk engine around it (open_risk; no pipeline)")
    ap.add_argument("--many", type=int, default=16, help="batches per process_many call (its mode)")
    ap.add_argument("--dir", default=None, help="where the journals go (default: the system's temporary directory)")
    ap.add_argument("--json", type=Path, default=None, help="write the report to this file")
    args = ap.parse_args(argv)
    sizes = args.sizes
    if args.rounds < 1 or args.commands < 1 or args.many < 1:
        ap.error("--rounds, --commands and --many must be at least 1")

    cmds = order_flow(args.commands, n_instruments=N_INSTRUMENTS, seed=42)
    _warm(N_INSTRUMENTS)
    modes = MODES if args.engine == "exchange" else MODES[:2]  # the risk engine has no pipeline or process_many
    shipped_from = (risk_durable if args.engine == "risk" else durable).JOURNAL_ALONGSIDE_FROM
    rows = []
    for size in sizes:
        seconds = {m: [] for m in modes}
        hashes = set()
        _run(cmds, size, "alongside", args.dir, args.alongside_from, args.engine)  # warm the page cache and threads
        for _ in range(args.rounds):
            for m in modes:
                dt, h = _run(cmds, size, m, args.dir, args.alongside_from, args.engine, args.many)
                seconds[m].append(dt)
                hashes.add(h)
        if len(hashes) != 1:
            raise SystemExit(f"batch {size}: the modes' state hashes differ: {sorted(hashes)}")
        rate = {m: round(len(cmds) / statistics.median(v)) for m, v in seconds.items()}
        paired = statistics.median(a / b for a, b in zip(seconds["journal, then match"], seconds["alongside"]))
        rows.append({"batch": size, "commands": len(cmds), "commands_per_second": rate,
                     "sequential_over_alongside": paired, "seconds": seconds, "state_hashes_agree": True,
                     "alongside_from": args.alongside_from or shipped_from})
        staged = (f", pipeline {rate['pipeline'] / 1e6:5.2f} M/s, process_many ({args.many} batches) "
                  f"{rate['process_many'] / 1e6:5.2f} M/s" if "pipeline" in rate else "")
        print(f"batch {size:5d}: alongside {rate['alongside'] / 1e6:5.2f} M/s, journal then match "
              f"{rate['journal, then match'] / 1e6:5.2f} M/s (paired {paired:.2f}x){staged}", flush=True)

    report = {"benchmark": "durable_process", "engine": args.engine, "machine": machine(), "instruments": N_INSTRUMENTS,
              "shards": SHARDS, "fsync_policy": "batch", "rounds": args.rounds, "many": args.many, "runs": rows}
    sign_and_save(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
