"""SIGKILL a writer at random moments: every acknowledged seq must be readable after reopen."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from shardex.journal import Journal

from .helpers import check_batches

WRITER = os.path.join(os.path.dirname(__file__), "crash_writer.py")


def test_sigkill_loses_no_acknowledged_batch(tmp_path):
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    acked_total = 0
    for iteration in range(5):
        proc = subprocess.Popen([sys.executable, WRITER, str(tmp_path), str(seed + iteration)], stdout=subprocess.PIPE, text=True)
        ready = proc.stdout.readline().split()
        assert ready[0] == "ready", ready
        time.sleep(rng.uniform(0.01, 0.3))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        # a line without its newline was cut by the kill: not an acknowledgement
        acked = [int(line) for line in out.split("\n")[:-1]]
        last_acked = acked[-1] if acked else int(ready[1]) - 1
        acked_total += len(acked)
        with Journal(tmp_path, segment_bytes=256 * 1024) as j:
            j._check()
            assert j.next_seq - 1 >= last_acked, f"seed {seed}: acknowledged seq {last_acked} lost (journal ends at {j.next_seq - 1})"
            assert check_batches(j.read(), 1) == j.next_seq
    assert acked_total > 0
