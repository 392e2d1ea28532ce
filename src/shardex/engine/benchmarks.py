"""``shardex bench shards|pipeline|recovery`` and ``shardex soak crash`` (issue 4's interfaces).

Each benchmark builds its workload with ``shardex.engine.loadgen`` before the
clock starts, warms the kernels, then reports the median of ``--repeat``
timed runs (the machine is shared and noisy: medians and ratios, not single
runs).  ``--json`` prints one JSON object for scripts in ``bench/``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import typer

from shardex.engine.exchange import Exchange
from shardex.engine.loadgen import batches, instruments, order_flow
from shardex.engine.merge import partition
from shardex.lowlevel import prefault
from shardex.machine import line_round_trip_ns, placement

__all__ = ["register", "bench_shards", "bench_pipeline", "bench_recovery", "reference_run", "durable_run"]


def _fixed_clock() -> int:
    return 1_700_000_000_000_000_000


def _warm(n_instruments: int) -> None:
    """Compile or load every kernel before a clock starts."""
    for shards in (1, 2):
        ex = Exchange(instruments(min(n_instruments, 4)), shards=shards, clock=_fixed_clock)
        ex.process(order_flow(2000, n_instruments=min(n_instruments, 4), seed=1))
        ex.process_many(batches(order_flow(2000, n_instruments=min(n_instruments, 4), seed=3), 500))
        cmds = ex.sequencer.stamp(order_flow(2000, n_instruments=min(n_instruments, 4), seed=2))
        ex.shards[0].process_into(cmds)  # the ceiling runs' kernel (bench_shards)
        ex.close()


def _events_digest(ex: Exchange, parts: list[np.ndarray], window: int = 0) -> str:
    import hashlib

    h = hashlib.sha256()
    for events in _feed(ex, parts, window):
        h.update(events.tobytes())
    return h.hexdigest()


def _feed(ex: Exchange, parts: list[np.ndarray], window: int):
    """Run ``parts`` through ``ex``, ``window`` batches per ``process_many`` (0: ``process`` on each); the events."""
    if not window:
        for b in parts:
            yield ex.process(b)
        return
    for i in range(0, len(parts), window):
        yield from ex.process_many(parts[i:i + window])


def reference_run(cmds: np.ndarray, n_instruments: int, shards: int, batch: int,
                  window: int = 0) -> tuple[str, str, int]:
    """One untimed run of a stream: its events' SHA-256, the state hash, and the largest pool a shard reached.

    The pool size is what a venue that sized its pools would start with
    (``Exchange(order_capacity=..., pretouch=True)``), for timed runs that
    measure matching rather than growth.
    """
    ex = Exchange(instruments(n_instruments), shards=shards, clock=_fixed_clock)
    try:
        digest = _events_digest(ex, batches(cmds, batch), window)
        return digest, ex.state_hash(), max(sh.state.capacity for sh in ex.shards)
    finally:
        ex.close()


def _split_streams(cmds: np.ndarray, n_instruments: int, shards: int, batch: int) -> list[list[np.ndarray]]:
    """The stream stamped and cut into batches, each batch split per shard as the engine deals it (untimed)."""
    ex = Exchange(instruments(n_instruments), shards=shards, clock=_fixed_clock)
    streams: list[list[np.ndarray]] = [[] for _ in range(shards)]
    for b in batches(cmds, batch):
        ex.sequencer.stamp(b)
        for s, part in enumerate(partition(b, ex._shard_of, shards)):
            streams[s].append(part)
    ex.close()
    return streams


def _ceiling_seconds(n_instruments: int, streams: list[list[np.ndarray]], **engine) -> float:
    """Seconds for each shard to run its own stream, all at once: no merge, no per-batch hand-off.

    The same threads as ``Exchange.process`` (the caller's and the engine's
    shard threads), each running its shards batch by batch as the engine
    does, on fresh books built with ``engine`` (``Exchange`` options).
    """
    ex = Exchange(instruments(n_instruments), shards=len(streams), clock=_fixed_clock, **engine)

    def run(group: list[int]) -> None:
        for parts in zip(*(streams[s] for s in group)):
            for s, b in zip(group, parts):
                ex.shards[s].process_into(b)

    t0 = time.perf_counter()
    if ex._crew is None:
        run(ex._groups[0])
    else:
        ex._crew.run([(run, (g,)) for g in ex._groups])
    dt = time.perf_counter() - t0
    ex.close()
    return dt


def bench_shards(n_instruments: int = 64, shard_counts: tuple[int, ...] = (1, 2, 4), commands: int = 1_000_000,
                 batch: int = 4096, repeat: int = 3, seed: int = 42, prefault_mb: int = 256,
                 pretouch: bool = True, window: int = 16) -> dict:
    """Matching throughput of ``Exchange.process_many`` per shard count on one stream; output checked identical.

    The stream is fed ``window`` batches per ``process_many`` call, as a
    sequencer hands the engine what has queued up (0: ``process`` batch by
    batch, every batch a barrier for the shards).

    Runs are interleaved (1, 2, 4, 1, 2, 4, ...) so that the machine's noise
    hits every shard count alike.  Each timed run is followed by a ceiling
    run: the same shards, threads and books, each fed only its own commands
    (split beforehand, untimed) with nothing shared between the threads: no
    merge, no hand-off per batch.  ``ceiling`` is the speedup those runs get
    over the first shard count's ceiling runs, what the machine allowed at
    that moment; ``share_of_ceiling`` is the ceiling runs' median time over
    the engine's for the same shard count, the share of it the engine gets
    (the ceiling runs also skip the dealing and the merge, so a shard's
    ceiling stream is all its own).  Before each timed and each ceiling run,
    untimed, ``prefault_mb`` MB are touched and freed (``lowlevel.prefault``),
    so that every run finds its memory resident on a VM whose host takes
    freed memory back.

    With ``pretouch`` (the default) every engine, timed or ceiling, starts
    as a venue that sized its pools would: ``order_capacity`` is the pool
    size that shard count reached in the untimed run, and the pools are
    mapped before the clock starts (``Exchange(pretouch=True)``), so that
    the timed runs measure matching, not the first touch of fresh pages.
    Without it, engines start at the default capacity and grow as they go.

    ``line_round_trip_ns`` lists what one cache line took to go to the other
    core and back (``shardex.machine``) before each round of runs and after
    the last: the price of everything the shards share, which moves with
    where the host has put the two virtual CPUs (empty on one core).  Each
    run's ``by_placement`` gives the median per-round speedup and ceiling
    of the rounds whose probe found the cores ``close`` and of those that
    found them ``far`` (``shardex.machine.placement``).
    """
    cmds = order_flow(commands, n_instruments=n_instruments, seed=seed)
    _warm(n_instruments)
    trips = []
    digests, hashes, seconds = {}, {}, {s: [] for s in shard_counts}
    ceiling = {s: [] for s in shard_counts}
    streams = {s: _split_streams(cmds, n_instruments, s, batch) for s in shard_counts}
    engine = {}  # Exchange options per shard count
    for s in shard_counts:  # untimed: the event stream and the state hash of each configuration
        digests[s], hashes[s], capacity = reference_run(cmds, n_instruments, s, batch, window)
        engine[s] = {"order_capacity": capacity, "pretouch": True} if pretouch else {}
    for _ in range(repeat):
        trips.append(line_round_trip_ns())
        for s in shard_counts:
            parts = batches(cmds, batch)
            prefault(prefault_mb)
            ex = Exchange(instruments(n_instruments), shards=s, clock=_fixed_clock, **engine[s])
            t0 = time.perf_counter()
            if window:  # each call's events let go before the next, as a venue that has published them would
                for i in range(0, len(parts), window):
                    ex.process_many(parts[i:i + window])
            else:
                for b in parts:
                    ex.process(b)
            seconds[s].append(time.perf_counter() - t0)
            ex.close()
            prefault(prefault_mb)
            ceiling[s].append(_ceiling_seconds(n_instruments, streams[s], **engine[s]))
    base = statistics.median(seconds[shard_counts[0]])
    ceiling_base = statistics.median(ceiling[shard_counts[0]])
    runs = []
    for s in shard_counts:
        med = statistics.median(seconds[s])
        cmed = statistics.median(ceiling[s])
        runs.append({"shards": s, "commands": commands, "commands_per_second": round(commands / med),
                     "state_hash": hashes[s], "events_sha256": digests[s], "seconds": [round(x, 4) for x in seconds[s]],
                     "speedup": round(base / med, 3),
                     "ceiling": round(ceiling_base / cmed, 3),
                     # the engine's time against the same threads' share-nothing time, in the same rounds:
                     # how much of what the machine allowed it got (1.0: all of it)
                     "share_of_ceiling": round(cmed / med, 3),
                     "ceiling_seconds": [round(x, 4) for x in ceiling[s]],
                     "order_capacity": engine[s].get("order_capacity"),
                     "by_placement": _by_placement(trips, seconds[shard_counts[0]], seconds[s],
                                                   ceiling[shard_counts[0]], ceiling[s])})
    identical = len(set(digests.values())) == 1 and len(set(hashes.values())) == 1
    trips.append(line_round_trip_ns())
    return {"benchmark": "shards", "instruments": n_instruments, "batch": batch, "window": window, "repeat": repeat,
            "pretouch": pretouch, "identical_output": identical, "runs": runs,
            "line_round_trip_ns": [round(t, 1) for t in trips if t is not None]}


def _by_placement(trips: list, base: list[float], seconds: list[float], base_ceiling: list[float],
                  ceiling: list[float]) -> dict:
    """Median per-round speedup and ceiling over the first shard count, for the rounds of each placement."""
    groups: dict[str, list[int]] = {}
    for r, trip in enumerate(trips[:len(seconds)]):  # trips[r] was probed just before round r
        where = placement(trip)
        if where is not None:
            groups.setdefault(where, []).append(r)
    return {where: {"rounds": len(rs),
                    "speedup": round(statistics.median(base[r] / seconds[r] for r in rs), 3),
                    "ceiling": round(statistics.median(base_ceiling[r] / ceiling[r] for r in rs), 3)}
            for where, rs in sorted(groups.items())}


def durable_run(cmds: np.ndarray, batch: int, *, staged: bool, n_instruments: int, shards: int,
                fsync_policy: str = "batch", depth: int = 4, directory: str | None = None,
                many: int = 0) -> tuple[float, str]:
    """Seconds to take ``cmds`` through a fresh durable engine in batches of ``batch``, and its state hash.

    ``staged``: through the pipeline (``ex.pipeline(depth=depth)``); ``many``
    > 0: ``process_many`` on that many batches at a time (one fsync per
    list); otherwise a loop of ``process``.  The engine's directory is made under ``directory``
    (default: the system's temporary directory) and removed afterwards.
    """
    root = Path(tempfile.mkdtemp(prefix="shardex-bench-durable-", dir=directory))
    try:
        parts = batches(cmds, batch)
        with Exchange.open(root / "engine", instruments(n_instruments), shards=shards, fsync_policy=fsync_policy,
                           snapshot_every=0, snapshot_on_close=False) as ex:
            t0 = time.perf_counter()
            if staged:
                with ex.pipeline(depth=depth) as p:
                    for _events in p.run(parts):
                        pass
            elif many:
                for i in range(0, len(parts), many):
                    ex.process_many(parts[i:i + many])
            else:
                for b in parts:
                    ex.process(b)
            return time.perf_counter() - t0, ex.state_hash()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_pipeline(n_instruments: int = 64, shards: int = 2, commands: int = 1_000_000, batch: int = 4096,
                   fsync_policy: str = "batch", depth: int = 4, repeat: int = 3, directory: str | None = None,
                   seed: int = 42) -> dict:
    """End to end in process: sequencer + journal (fsync per batch) + matching + merge, staged and serial."""
    cmds = order_flow(commands, n_instruments=n_instruments, seed=seed)
    _warm(n_instruments)
    piped, serial, hashes = [], [], set()
    for _ in range(repeat):
        for staged in (True, False):
            dt, h = durable_run(cmds, batch, staged=staged, n_instruments=n_instruments, shards=shards,
                                fsync_policy=fsync_policy, depth=depth, directory=directory)
            hashes.add(h)
            (piped if staged else serial).append(dt)
    med = statistics.median(piped)
    return {"benchmark": "pipeline", "commands": commands, "commands_per_second": round(commands / med),
            "fsync_policy": fsync_policy, "batch": batch, "shards": shards, "instruments": n_instruments,
            "depth": depth, "seconds": [round(x, 4) for x in piped],
            "serial_commands_per_second": round(commands / statistics.median(serial)),
            "serial_seconds": [round(x, 4) for x in serial], "state_hashes_agree": len(hashes) == 1}


def bench_recovery(commands: int = 1_000_000, n_instruments: int = 1, shards: int = 1, batch: int = 4096,
                   repeat: int = 3, directory: str | None = None, cmds: np.ndarray | None = None, seed: int = 42) -> dict:
    """Replay a journal of ``commands`` into a fresh engine via ``Exchange.open`` (no snapshot to start from)."""
    if cmds is None:
        cmds = order_flow(commands, n_instruments=n_instruments, seed=seed)
    commands = len(cmds)
    listed = instruments(max(n_instruments, int(cmds["instrument"].max()) + 1))
    _warm(len(listed))
    root = Path(tempfile.mkdtemp(prefix="shardex-bench-recovery-", dir=directory))
    try:
        path = root / "engine"
        with Exchange.open(path, listed, shards=shards, fsync_policy="off", snapshot_every=0,
                           snapshot_on_close=False) as ex:
            for b in batches(cmds, batch):
                ex.process(b)
            live = ex.state_hash()
        seconds, matches = [], True
        for _ in range(repeat):
            t0 = time.perf_counter()
            again = Exchange.open(path, shards=shards, snapshot_on_close=False)
            seconds.append(time.perf_counter() - t0)
            matches &= again.recovered_commands == commands and again.state_hash() == live
            again.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = statistics.median(seconds)
    return {"benchmark": "recovery", "commands": commands, "seconds": round(med, 4),
            "commands_per_second": round(commands / med), "state_hash_matches": bool(matches),
            "shards": shards, "instruments": len(listed), "all_seconds": [round(x, 4) for x in seconds]}


def _print(result: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for line in lines:
            typer.echo(line)


def _placement_text(run: dict) -> str:
    """``; close rounds (n): x1.45 (ceiling x1.50); far ...`` for one run, or nothing."""
    return "".join(f"; {where} rounds ({g['rounds']}): x{g['speedup']} (ceiling x{g['ceiling']})"
                   for where, g in run["by_placement"].items())


def _trip_line(trips: list[float]) -> str:
    """A report's cache-line round trips as one line of text."""
    if not trips:
        return "cache-line round trip between cores: not measured (one core)"
    return (f"cache-line round trip between cores: median {statistics.median(trips):.0f} ns "
            f"({min(trips):.0f}-{max(trips):.0f}, {len(trips)} probes between rounds)")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add ``bench shards``, ``bench pipeline``, ``bench recovery`` and ``soak crash`` to the CLI."""
    soak_app = typer.Typer(help="Long-running fault tests.", no_args_is_help=True)
    app.add_typer(soak_app, name="soak")

    @bench_app.command("shards")
    def shards_cmd(
        instruments_: int = typer.Option(64, "--instruments", help="instruments in the workload"),
        shards: str = typer.Option("1,2,4", help="comma-separated shard counts"),
        commands: int = typer.Option(1_000_000, help="commands in the stream"),
        batch: int = typer.Option(4096, help="commands per batch"),
        repeat: int = typer.Option(3, help="timed runs per shard count (median reported)"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
        prefault_mb: int = typer.Option(256, "--prefault-mb", min=0,
                                        help="MB touched and freed before each run, untimed (0: off)"),
        cold: bool = typer.Option(False, "--cold", help="engines at the default pool size, growing and mapping "
                                  "pages as they go (default: pools sized and mapped before the clock)"),
        window: int = typer.Option(16, min=0, help="batches per Exchange.process_many call "
                                   "(0: Exchange.process on each batch)"),
    ) -> None:
        """Matching throughput for each shard count on one multi-instrument stream (identical output checked)."""
        try:
            counts = tuple(int(x) for x in shards.split(","))
        except ValueError:
            raise typer.BadParameter(f"--shards must be comma-separated integers, got {shards!r}") from None
        r = bench_shards(instruments_, counts, commands, batch, repeat, prefault_mb=prefault_mb, pretouch=not cold,
                         window=window)
        _print(r, as_json, [f"{x['shards']} shards: {x['commands_per_second']:,} commands/s (x{x['speedup']}; "
                            f"ceiling x{x['ceiling']}; {x['share_of_ceiling']:.0%} of it)"
                            + (_placement_text(x) if i else "") for i, x in enumerate(r["runs"])]
               + [f"identical output: {r['identical_output']}", _trip_line(r["line_round_trip_ns"])])

    @bench_app.command("pipeline")
    def pipeline_cmd(
        instruments_: int = typer.Option(64, "--instruments"),
        shards: int = typer.Option(2),
        commands: int = typer.Option(1_000_000),
        batch: int = typer.Option(4096),
        fsync_policy: str = typer.Option("batch", help="batch | interval:MS | off"),
        depth: int = typer.Option(4, help="batches per stage queue"),
        repeat: int = typer.Option(3),
        directory: str = typer.Option(None, "--dir", help="where the journal goes (default: the temp dir)"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Sequencer + journal (fsync per batch) + matching + merge, end to end, staged vs serial."""
        r = bench_pipeline(instruments_, shards, commands, batch, fsync_policy, depth, repeat, directory)
        _print(r, as_json, [f"pipeline: {r['commands_per_second']:,} commands/s; serial: "
                            f"{r['serial_commands_per_second']:,} (fsync {r['fsync_policy']}, batch {r['batch']})"])

    @bench_app.command("recovery")
    def recovery_cmd(
        commands: int = typer.Option(1_000_000),
        instruments_: int = typer.Option(1, "--instruments"),
        shards: int = typer.Option(1),
        repeat: int = typer.Option(3),
        directory: str = typer.Option(None, "--dir"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Replay a journal of N commands into a fresh engine (Exchange.open), state hash checked."""
        r = bench_recovery(commands, instruments_, shards, repeat=repeat, directory=directory)
        _print(r, as_json, [f"recovery: {r['commands']:,} commands in {r['seconds']} s = "
                            f"{r['commands_per_second']:,} commands/s; state hash matches: {r['state_hash_matches']}"])

    @soak_app.command("crash")
    def crash_cmd(
        iterations: int = typer.Option(5, help="writer processes to SIGKILL"),
        seed: int = typer.Option(None, help="random seed (default: random, printed)"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """SIGKILL a writer under load N times; every acknowledged command must be recovered."""
        from shardex.engine.crash_soak import soak

        r = soak(iterations, seed=seed).as_dict()
        r.pop("kills")
        _print(r, as_json, [f"{k}: {v}" for k, v in r.items()])
        if r["lost"] or r["hash_mismatches"]:
            raise typer.Exit(1)
