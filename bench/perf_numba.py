"""Where a numba kernel spends its time: `perf` samples mapped onto the compiled functions.

numba's JIT code has no symbols, so `perf report` shows it as anonymous
addresses.  This script runs a workload under `perf record` (software clock,
so it works on VMs without hardware counters), has the workload write the
address range and machine code of every function in the kernels' compiled
libraries, and then attributes each sample to its function and, with
`--annotate`, to the instructions around the hottest addresses (objdump).

    python bench/perf_numba.py matching                 # the 1M-command matching benchmark
    python bench/perf_numba.py settlement --accounts 100000 --mode parallel
    python bench/perf_numba.py matching --annotate 3    # + the hottest lines of the top 3 functions

Needs Debian's `linux-perf` and binutils (`perf`, `objdump`).  The kernels are
compiled afresh into a temporary numba cache: functions loaded from the
on-disk cache carry no module to read their symbols from.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dump_symbols(dispatchers, out: Path) -> None:
    """Write ``syms.json`` (start, end, name) and ``f<i>.bin`` (code) for every function of the dispatchers' libraries."""
    maps = []
    for line in open("/proc/self/maps"):
        lo, hi = line.split()[0].split("-")
        maps.append((int(lo, 16), int(hi, 16)))
    syms = set()
    for disp in dispatchers:
        for cres in disp.overloads.values():
            lib = cres.library
            for fn in lib._final_module.functions:
                if fn.is_declaration:
                    continue
                try:
                    addr = lib.get_pointer_to_function(fn.name)
                except Exception:  # noqa: BLE001 - a function the engine did not emit
                    continue
                if addr:
                    syms.add((addr, fn.name))
    ordered = sorted(syms)
    table = []
    for i, (addr, name) in enumerate(ordered):
        end = next(hi for lo, hi in maps if lo <= addr < hi)
        if i + 1 < len(ordered):
            end = min(end, ordered[i + 1][0])
        (out / f"f{i}.bin").write_bytes(ctypes.string_at(addr, end - addr))
        table.append((addr, end, name))
    (out / "syms.json").write_text(json.dumps(table))


def _matching_workload(args, out: Path) -> None:
    import numpy as np

    from shardex import Exchange, Instrument
    from shardex.book.matching import process_commands
    from shardex.engine.loadgen import order_flow

    if args.csv is not None:  # e.g. bench/out/order_flow_seed42_1000000.csv, the matching benchmark's flow
        from shardex.engine.workload import read_workload_csv

        cmds = read_workload_csv(args.csv).commands[: args.commands]
    else:
        cmds = order_flow(args.commands, n_instruments=1, seed=42)
    Exchange([Instrument(0, "W")]).sequencer.stamp(cmds)

    def run():
        shard = Exchange([Instrument(0, "BENCH")]).shards[0]
        for s in range(0, len(cmds), 65536):
            shard.process_into(cmds[s:s + 65536])

    run()
    dump_symbols([process_commands], out)
    _loop(run, args.seconds)
    del np


def _settlement_workload(args, out: Path) -> None:
    import numpy as np

    from shardex.ledger import _kernels as K
    from shardex.ledger import settle
    from shardex.ledger.bench import _batch, _ledger

    base = _ledger(args.accounts, "trade", 0)
    txns = _batch(np.random.default_rng(5), args.accounts, "trade", 10_000)
    mode = args.mode

    def run():
        settle(base.copy(), txns, threads=2, mode=mode)

    run()
    dump_symbols([K.run_worker, K.run_sequential, K.plan, K.finalize], out)
    _loop(run, args.seconds)


def _loop(run, seconds: float) -> None:
    t0 = time.perf_counter()
    k = 0
    while time.perf_counter() - t0 < seconds and k < 10_000:
        run()
        k += 1
    print(f"{k} runs, {(time.perf_counter() - t0) / k * 1e3:.1f} ms each (under perf)", flush=True)


def report(out: Path, annotate: int, top: int = 15) -> None:
    """Print the samples per function, and the hottest instructions of the first ``annotate`` functions."""
    syms = json.loads((out / "syms.json").read_text())
    text = subprocess.run(["perf", "script", "-i", str(out / "perf.data"), "-F", "ip"], capture_output=True,
                          text=True, check=True).stdout
    ips = [int(x, 16) for x in text.split()]
    starts = [s[0] for s in syms]
    import bisect

    per_fn: collections.Counter[int] = collections.Counter()
    per_ip: collections.Counter[int] = collections.Counter()
    for ip in ips:
        i = bisect.bisect_right(starts, ip) - 1
        if i >= 0 and ip < syms[i][1]:
            per_fn[i] += 1
            per_ip[ip] += 1
    inside = sum(per_fn.values())
    print(f"{len(ips)} samples, {inside} in the kernels' functions")
    for i, n in per_fn.most_common(top):
        print(f"{n:8d} {100 * n / max(inside, 1):5.1f}%  {_short(syms[i][2])}")
    for i, n in per_fn.most_common(annotate):
        lo, hi, name = syms[i]
        print(f"\n== {_short(name)} ==")
        dis = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", f"--adjust-vma={lo}",
                              str(out / f"f{i}.bin")], capture_output=True, text=True, check=True).stdout.splitlines()
        for j, line in enumerate(dis):
            head = line.split(":")[0].strip()
            try:
                addr = int(head, 16)
            except ValueError:
                continue
            c = per_ip.get(addr, 0)
            if c and c / n >= 0.02:
                print(f"{100 * c / n:5.1f}%  " + "\n        ".join(x[:110] for x in dis[max(0, j - 3):j + 1]))


def _short(name: str) -> str:
    """The dotted Python name inside a numba symbol (``_ZN7shardex4book...`` -> ``shardex.book....``)."""
    body = name.split("_ZN", 1)[1] if "_ZN" in name else ""
    parts, i = [], 0
    while i < len(body) and body[i].isdigit():
        j = i
        while body[j].isdigit():
            j += 1
        n = int(body[i:j])
        parts.append(body[j:j + n])
        i = j + n
    return ".".join(parts) or name


def main(argv: list[str] | None = None) -> int:
    """Record and report (the default), or run one workload inside perf (``--inner``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=("matching", "settlement"))
    ap.add_argument("--commands", type=int, default=1_000_000, help="matching: commands in the flow")
    ap.add_argument("--csv", type=Path, default=None, help="matching: a workload CSV instead of the generated flow")
    ap.add_argument("--accounts", type=int, default=100_000, help="settlement: accounts")
    ap.add_argument("--mode", default="parallel", choices=("parallel", "sequential"), help="settlement: executor mode")
    ap.add_argument("--seconds", type=float, default=4.0, help="how long to loop the workload under perf")
    ap.add_argument("--frequency", type=int, default=10_000, help="samples per second")
    ap.add_argument("--annotate", type=int, default=0, help="annotate the hottest N functions")
    ap.add_argument("--out", type=Path, default=None, help="directory for perf.data and the code dumps")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="perf_numba_"))
    out.mkdir(parents=True, exist_ok=True)
    if args.inner:
        (_matching_workload if args.workload == "matching" else _settlement_workload)(args, out)
        return 0
    env = dict(os.environ, NUMBA_CACHE_DIR=str(out / "numba-cache"))
    cmd = ["perf", "record", "-e", "cpu-clock", "-F", str(args.frequency), "-o", str(out / "perf.data"), "-q", "--",
           sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--inner", "--out", str(out)]
    try:
        subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    except FileNotFoundError:
        sys.exit("perf_numba.py needs `perf` (Debian: apt-get install linux-perf)")
    report(out, args.annotate)
    print(f"\nfiles in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
