"""Two shards against one from single orders up to full batches: where the second core starts to pay.

A venue's batches are as large as its traffic makes them: one order at a
time when the market is quiet, thousands in a burst.  ``shardex bench
shards`` measures the burst (4,096 commands a batch).  This script measures
the whole range on one stream (64 instruments, pools sized and pretouched as
``bench shards`` does), in interleaved rounds:

* ``one shard``: ``Exchange.process`` on one shard;
* ``two shards``: ``Exchange.process`` on two shards as shipped: a batch
  whose commands are all one shard's runs on that shard alone, and a batch
  of fewer than ``exchange.SERIAL_BELOW`` commands runs both shards on the
  calling thread;
* ``two, always crewed``: two shards with ``SERIAL_BELOW`` set to 0, so that
  every batch that spans both shards is handed to the crew thread, as every
  such batch was before the small-batch path.

It prints the time per batch of each, two shards' speedup over one, and the
paired ratio of the crewed time over the shipped one (above 1: the shipped
path is faster).  Every configuration's events are checked equal to one
shard's before the rounds start.

    python bench/small_batches.py [--rounds 5] [--sizes 1,4,16,64,127,128,256,1024,4096]
                                  [--json bench/out/small_batches.json]

Never part of CI.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from pathlib import Path

from bench_matching import machine, positive_ints, sign_and_save
import shardex.engine.exchange as exchange
from shardex.engine.benchmarks import _fixed_clock, _warm, reference_run
from shardex.engine.exchange import Exchange
from shardex.engine.loadgen import batches, instruments, order_flow

N_INSTRUMENTS = 64
SIZES = (1, 4, 16, 64, 127, 128, 256, 1024, 4096)
CONFIGS = (("one shard", 1, None), ("two shards", 2, None), ("two, always crewed", 2, 0))


def _commands_for(size: int) -> int:
    """Enough batches of ``size`` to time (a second or so per run here), and no more."""
    return min(200_000, max(40_000, size * 50))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    ap.add_argument("--sizes", type=positive_ints, default=",".join(map(str, SIZES)),
                    help="batch sizes, comma-separated")
    ap.add_argument("--json", type=Path, default=None, help="write the report to this file")
    args = ap.parse_args(argv)
    sizes = args.sizes
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    _warm(N_INSTRUMENTS)
    shipped = exchange.SERIAL_BELOW
    rows = []
    for size in sizes:
        cmds = order_flow(_commands_for(size), n_instruments=N_INSTRUMENTS, seed=42)
        capacity = {s: reference_run(cmds, N_INSTRUMENTS, s, size)[2] for s in (1, 2)}

        def run(shards: int, serial_below: int | None, digest: bool = False) -> tuple[float, str]:
            exchange.SERIAL_BELOW = shipped if serial_below is None else serial_below
            ex = Exchange(instruments(N_INSTRUMENTS), shards=shards, clock=_fixed_clock,
                          order_capacity=capacity[shards], pretouch=True)
            try:
                parts = batches(cmds, size)
                process, h = ex.process, hashlib.sha256()
                t0 = time.perf_counter()
                if digest:
                    for b in parts:
                        h.update(process(b).tobytes())
                else:
                    for b in parts:
                        process(b)
                return time.perf_counter() - t0, h.hexdigest()
            finally:
                ex.close()
                exchange.SERIAL_BELOW = shipped

        digests = {name: run(shards, sb, digest=True)[1] for name, shards, sb in CONFIGS}  # also warms
        if len(set(digests.values())) != 1:
            raise SystemExit(f"batch {size}: the configurations' events differ: {digests}")
        seconds = {name: [] for name, _, _ in CONFIGS}
        for _ in range(args.rounds):
            for name, shards, sb in CONFIGS:
                seconds[name].append(run(shards, sb)[0])
        n_batches = -(-len(cmds) // size)
        per_batch = {name: statistics.median(v) / n_batches * 1e6 for name, v in seconds.items()}
        row = {"batch": size, "commands": len(cmds), "per_batch_us": per_batch,
               "speedup": statistics.median(a / b for a, b in zip(seconds["one shard"], seconds["two shards"])),
               "crewed_over_shipped": statistics.median(
                   a / b for a, b in zip(seconds["two, always crewed"], seconds["two shards"])),
               "seconds": seconds, "identical_output": True}
        rows.append(row)
        print(f"batch {size:5d}: one shard {per_batch['one shard']:8.1f} us, two shards {per_batch['two shards']:8.1f} us"
              f" ({row['speedup']:.2f}x of one), always crewed {per_batch['two, always crewed']:8.1f} us"
              f" (paired {row['crewed_over_shipped']:.2f} of shipped)", flush=True)

    report = {"benchmark": "small_batches", "machine": machine(), "instruments": N_INSTRUMENTS,
              "serial_below": shipped, "rounds": args.rounds, "runs": rows}
    sign_and_save(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
