"""Child process of test_crash.py: append batches forever-ish, printing each acknowledged seq.

Usage: python crash_writer.py DIR SEED.  A seq is printed only after
``append`` returned, i.e. after its fsync, so every printed seq must survive
a SIGKILL at any moment.
"""

from __future__ import annotations

import random
import sys

from helpers import make_batch  # the script's own directory is on sys.path

from shardex.journal import Journal


def main() -> None:
    rng = random.Random(int(sys.argv[2]))
    with Journal(sys.argv[1], segment_bytes=256 * 1024) as j:
        print("ready", j.next_seq, flush=True)
        seq = j.next_seq
        for _ in range(200_000):  # bounded: never outlives a broken parent for long
            n = rng.randint(1, 300)
            j.append(make_batch(seq, n))
            seq += n
            print(seq - 1, flush=True)


if __name__ == "__main__":
    main()
