"""Crash safety, tested for real: SIGKILL a writer under load, recover, compare with an in-memory replay.

``soak(iterations)`` starts a writer process (``python -m
shardex.engine.crash_soak DIR SEED BASE MANY``) on one engine directory again
and again.  The writer opens ``Exchange.open(DIR)``, warms its kernels, prints
``ready <next_seq>``, then processes a deterministic stream of batches of
random size, printing each batch's last seq only after ``process`` returned
(the acknowledgement).  Every other writer hands the batches over
``WRITER_MANY`` at a time through ``process_many`` (one group commit per
list, the list streamed through the shards while it is fsynced) and prints
the list's last seq once it returned.  The parent kills it with SIGKILL at a random moment,
reopens the directory (recovery), and checks:

* every acknowledged command is recovered (``lost`` counts those that are not);
* the recovered state hash equals that of an in-memory engine fed the same
  stream up to the recovered position (acknowledged batches, plus a batch
  that was durable but killed before its acknowledgement was printed).

The stream is regenerated in the parent from the same seed, so the
reference never reads the journal it is checking.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from shardex.engine.exchange import Exchange
from shardex.engine.loadgen import instruments, order_flow

__all__ = ["SoakReport", "soak", "writer_batches"]

N_INSTRUMENTS = 16
#: Commands a writer may send in one life; bounds the run if no kill comes.
WRITER_COMMANDS = 400_000
#: Batches per ``process_many`` call of every other writer.
WRITER_MANY = 4
_READY_TIMEOUT_S = 300.0  # a cold numba compile on a loaded machine can take a minute or more


@dataclass
class SoakReport:
    """What ``shardex soak crash`` prints (``--json``: these keys)."""

    iterations: int
    acknowledged: int = 0
    recovered: int = 0
    lost: int = 0
    hash_mismatches: int = 0
    durable_unacknowledged: int = 0
    seed: int = 0
    seconds: float = 0.0
    kills: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The report as plain JSON-able data."""
        return asdict(self)


def writer_batches(seed: int, base_order_id: int) -> list[np.ndarray]:
    """The deterministic batches a writer with this seed sends (random sizes 1..4096)."""
    cmds = order_flow(WRITER_COMMANDS, n_instruments=N_INSTRUMENTS, seed=seed)
    cmds["order_id"] += base_order_id
    sizes = np.random.default_rng(seed + 1).integers(1, 4097, size=WRITER_COMMANDS)
    cuts = np.cumsum(sizes)
    cuts = cuts[cuts < WRITER_COMMANDS]
    return [part.copy() for part in np.split(cmds, cuts)]


def _writer(path: str, seed: int, base_order_id: int, many: int = 0) -> None:
    # Compile (or load from the on-disk cache) before the clock of the kill
    # starts, so that kills land under load rather than in the compiler.
    for shards in (1, 2):
        with Exchange(instruments(2), shards=shards) as warm:
            warm.process(order_flow(200, n_instruments=2, seed=0))
            warm.process_many([order_flow(200, n_instruments=2, seed=s) for s in (1, 2)])
    parts = writer_batches(seed, base_order_id)
    lists = [parts[i:i + many] for i in range(0, len(parts), many)] if many else [[b] for b in parts]
    with Exchange.open(path, instruments(N_INSTRUMENTS), shards=2, snapshot_every=50_000) as ex:
        print("ready", ex.sequencer.next_seq, flush=True)
        for bs in lists:  # bounded: WRITER_COMMANDS in all
            if many:
                ex.process_many(bs)
            else:
                ex.process(bs[0])
            print(int(bs[-1]["seq"][-1]), flush=True)  # only after it returned: acknowledged


def soak(iterations: int, *, directory: str | os.PathLike[str] | None = None, seed: int | None = None,
         kill_after_s: tuple[float, float] = (0.05, 1.5)) -> SoakReport:
    """Run ``iterations`` SIGKILL cycles on one engine directory and report what recovery found.

    ``directory``: the engine directory (default: a fresh temporary one,
    removed afterwards).  ``kill_after_s``: the kill comes uniformly within
    this many seconds after the writer is ready.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    report = SoakReport(iterations=iterations, seed=seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="shardex-soak-") as tmp:
        path = Path(directory) if directory is not None else Path(tmp) / "engine"
        ref = Exchange(instruments(N_INSTRUMENTS), shards=1, clock=lambda: 0)
        for it in range(iterations):
            _one_kill(path, seed + it, it, rng, kill_after_s, ref, report)
        ref.close()
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _one_kill(path: Path, seed: int, it: int, rng: random.Random, kill_after_s: tuple[float, float],
              ref: Exchange, report: SoakReport) -> None:
    base_oid = (it + 1) * 10**7
    many = WRITER_MANY if it % 2 else 0
    proc = subprocess.Popen([sys.executable, "-m", "shardex.engine.crash_soak", str(path), str(seed), str(base_oid),
                             str(many)], stdout=subprocess.PIPE, text=True)
    try:
        ready = _read_ready(proc)
        time.sleep(rng.uniform(*kill_after_s))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    start = int(ready[1])
    # A last line without its newline was cut by the kill: not an acknowledgement.
    acked = [int(x) for x in out.split("\n")[:-1]]
    last_acked = acked[-1] if acked else start - 1
    with Exchange.open(path, shards=1 + it % 3, snapshot_on_close=False) as ex:
        recovered_last = ex.sequencer.next_seq - 1
        got = ex.state_hash()
    # Feed the reference the writer's stream up to where recovery ended.
    for b in writer_batches(seed, base_oid):
        if ref.sequencer.next_seq > recovered_last:
            break
        ref.process(b)
    ref_last = ref.sequencer.next_seq - 1
    n_acked = last_acked - start + 1
    n_recovered = min(recovered_last, last_acked) - start + 1
    report.acknowledged += n_acked
    report.recovered += max(n_recovered, 0)
    report.lost += n_acked - max(n_recovered, 0)
    report.durable_unacknowledged += max(recovered_last - last_acked, 0)
    mismatch = ref_last != recovered_last or ref.state_hash() != got
    report.hash_mismatches += int(mismatch)
    report.kills.append({"iteration": it, "process_many": many, "start_seq": start, "last_acknowledged": last_acked,
                         "recovered_to": recovered_last, "hash_matches": not mismatch})


def _read_ready(proc: subprocess.Popen) -> list[str]:
    """The writer's ``ready <seq>`` line; raise if it dies or stalls first."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(_READY_TIMEOUT_S):
        raise RuntimeError(f"crash-soak writer printed nothing in {_READY_TIMEOUT_S} s")
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        raise RuntimeError(f"crash-soak writer failed before it was ready (exit {proc.wait(timeout=60)}): {line}")
    return line


if __name__ == "__main__":
    _writer(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0)
