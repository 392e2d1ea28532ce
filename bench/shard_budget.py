"""Where a two-shard batch spends its time, and the speedup over one shard that this leaves possible.

``shardex bench shards`` reports how much faster two shards run than one.
This script says why not faster, from three measurements taken in
interleaved rounds on the same stream (1M commands over 64 instruments,
4,096 per batch, pools sized and pretouched as ``bench shards`` does):

* ``one shard``: ``Exchange.process`` on one shard, batch after batch;
* ``halves on one thread``: a two-shard engine's shards run one after the
  other on the calling thread, each over its dealt list of every batch
  (the batch dealt first, untimed, which brings it into the core's caches
  as the engine's deal does; no merge): the matching work two shards do, and so what
  splitting the books costs on its own; then, timed apart, the merge of
  each batch's two event streams on one thread, as the engine merges them
  (``merge.merge_chunks`` on the shards' published chunk marks, on seq for
  a stamped batch; ``--walk``: by walking the commands, as for a replayed
  one);
* ``two shards``: ``Exchange.process`` on two shards, with a timer around
  the parts of each batch: the caller's serial part before the shards start
  (the deal, ``merge.deal``, and the Python around it), each thread's call
  (its shard's kernel and its share of the merge), and the serial part
  after.

From these it prints the ceiling that the engine's design leaves on this
machine at that moment, were the two threads to run beside each other as
fast as one runs alone::

    one shard / (halves / 2 + serial parts before and after + merge / 2)

and the speedup measured.  Where the speedup falls below the ceiling, the
threads slowed each other down (shared lines, the machine).  The numbers
move with the machine (medians of ``--rounds`` rounds are printed, and each
round's); compare the ceiling with the speedup of the same rounds.

    python bench/shard_budget.py [--rounds 7] [--json bench/out/shard_budget.json]

The timers wrap ``Exchange`` methods from outside (the package is not
changed) and cost ~0.2 us per batch.  Never part of CI.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from bench_matching import machine, sign_and_save
from shardex.engine.benchmarks import _fixed_clock, _warm, reference_run
from shardex.engine.exchange import MERGE_CHUNK, Exchange
from shardex.engine.loadgen import batches, instruments, order_flow
from shardex.engine.merge import MC_BY_SEQ, deal, merge_chunks
from shardex.lowlevel import prefault
from shardex.schema import EVENT_DTYPE

N_INSTRUMENTS = 64
COMMANDS = 1_000_000
BATCH = 4096


class Timed:
    """Timers around one two-shard engine's batch, deal and per-thread calls (``Exchange`` methods wrapped)."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        ns, log = time.perf_counter_ns, self.log
        run, deal_, group = Exchange._run_sharded, Exchange._deal, Exchange._group_then_merge

        def run_sharded(ex, *a):
            t0 = ns()
            r = run(ex, *a)
            log.append(("batch", t0, ns()))
            return r

        def dealt(ex, *a):
            t0 = ns()
            r = deal_(ex, *a)
            log.append(("deal", t0, ns()))
            return r

        def grouped(ex, g, *a, **k):
            t0 = ns()
            r = group(ex, g, *a, **k)
            log.append((g[0], t0, ns()))
            return r

        self._patches = {"_run_sharded": run_sharded, "_deal": dealt, "_group_then_merge": grouped}
        self._saved = {k: getattr(Exchange, k) for k in self._patches}

    def __enter__(self) -> "Timed":
        for k, f in self._patches.items():
            setattr(Exchange, k, f)
        return self

    def __exit__(self, *exc) -> None:
        for k, f in self._saved.items():
            setattr(Exchange, k, f)

    def per_batch(self) -> dict[str, float]:
        """Medians over the batches, in microseconds."""
        rows = {k: [e for e in self.log if e[0] == k] for k in ("batch", "deal", 0, 1)}
        b, d, g0, g1 = rows["batch"], rows["deal"], rows[0], rows[1]
        med = lambda xs: statistics.median(xs) / 1e3  # noqa: E731
        return {
            "wall": med([e[2] - e[1] for e in b]),
            "before": med([g[1] - e[1] for e, g in zip(b, g0)]),
            "deal": med([e[2] - e[1] for e in d]),
            "caller_call": med([g[2] - g[1] for g in g0]),
            "crew_call": med([g[2] - g[1] for g in g1]),
            "after": med([e[2] - max(x[2], y[2]) for e, x, y in zip(b, g0, g1)]),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds; medians are reported")
    ap.add_argument("--walk", action="store_true", help="time the merge that walks the commands (a replayed batch)")
    ap.add_argument("--json", type=Path, default=None, help="write the report to this file")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    cmds = order_flow(COMMANDS, n_instruments=N_INSTRUMENTS, seed=42)
    _warm(N_INSTRUMENTS)
    capacity = {s: reference_run(cmds, N_INSTRUMENTS, s, BATCH)[2] for s in (1, 2)}
    probe = Exchange(instruments(N_INSTRUMENTS), shards=2, clock=_fixed_clock)
    stamped = cmds.copy()
    probe.sequencer.stamp(stamped)
    shard_of = probe._shard_of.copy()
    probe.close()
    stamped_batches = batches(stamped, BATCH)

    def engine(shards: int) -> Exchange:
        prefault(256)
        return Exchange(instruments(N_INSTRUMENTS), shards=shards, clock=_fixed_clock,
                        order_capacity=capacity[shards], pretouch=True)

    def halves_then_merge() -> tuple[float, float]:
        """Seconds of both shards' matching on this thread, and of merging their events, over every batch."""
        ex = engine(2)
        s0, s1 = ex.shards
        match = merge = 0.0
        todo, counts = np.empty((2, BATCH), np.int64), np.zeros(2, np.int64)
        ctl = ex._merge_ctl
        try:
            for b in stamped_batches:
                # untimed: each shard's list, and the batch in this core's caches as the engine's deal leaves it
                deal(b, shard_of, todo, counts, 0, 0)
                ex._event_regions(len(b))  # the engine's layout: regions of one buffer, marks rows, merge slots
                marks, width = ex._chunk_marks(-(-len(b) // MERGE_CHUNK))
                t0 = time.perf_counter()
                n0 = s0.process_into(b, None, marks[:width], MERGE_CHUNK, todo[0, :counts[0]])
                n1 = s1.process_into(b, None, marks[width:2 * width], MERGE_CHUNK, todo[1, :counts[1]])
                t1 = time.perf_counter()
                out = np.empty(n0 + n1, dtype=EVENT_DTYPE)
                ctl[:] = 0
                ctl[MC_BY_SEQ] = not args.walk
                merge_chunks(b, shard_of, ex._ev_all, ex._ev_starts, marks, width, MERGE_CHUNK, ctl, out)
                match, merge = match + t1 - t0, merge + time.perf_counter() - t1
        finally:
            ex.close()
        return match, merge

    halves_then_merge()  # compile and warm what the rounds time
    rounds = []
    for r in range(args.rounds):
        ex = engine(1)
        parts = batches(cmds, BATCH)
        t0 = time.perf_counter()
        for b in parts:
            ex.process(b)
        one = time.perf_counter() - t0
        ex.close()

        halves, merge = halves_then_merge()

        ex = engine(2)
        parts = batches(cmds, BATCH)
        with Timed() as timed:
            t0 = time.perf_counter()
            for b in parts:
                ex.process(b)
            two = time.perf_counter() - t0
        ex.close()
        pb = timed.per_batch()
        n_batches = len(parts)
        serial = (pb["before"] + pb["after"]) * n_batches / 1e6
        ceiling = one / (halves / 2 + serial + merge / 2)
        rounds.append({"one_shard_s": one, "halves_one_thread_s": halves, "merge_one_thread_s": merge,
                       "serial_s": serial, "two_shards_s": two, "speedup": one / two, "design_ceiling": ceiling,
                       "split_cost": halves / one - 1, "per_batch_us": pb})
        print(f"round {r + 1}/{args.rounds}: one shard {one * 1e3:.0f} ms; halves {halves * 1e3:.0f} ms, merge "
              f"{merge * 1e3:.1f} ms, serial {serial * 1e3:.1f} ms (deal {pb['deal']:.0f} us a batch); two shards "
              f"{two * 1e3:.0f} ms: {one / two:.2f}x, design ceiling {ceiling:.2f}x", flush=True)

    med = lambda k: statistics.median(x[k] for x in rounds)  # noqa: E731
    report = {"benchmark": "shard_budget", "machine": machine(), "commands": COMMANDS, "batch": BATCH,
              "instruments": N_INSTRUMENTS, "rounds": rounds,
              "median": {k: med(k) for k in ("speedup", "design_ceiling", "split_cost", "merge_one_thread_s",
                                             "serial_s")}}
    m = report["median"]
    print(f"\nmedians over {args.rounds} rounds: two shards {m['speedup']:.2f}x of one, design ceiling "
          f"{m['design_ceiling']:.2f}x; splitting the books costs {m['split_cost']:.1%} of one shard's time, "
          f"the merge {m['merge_one_thread_s'] * 1e3:.1f} ms on one thread, the serial parts "
          f"{m['serial_s'] * 1e3:.1f} ms")
    sign_and_save(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
