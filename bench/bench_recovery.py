"""Recovery, shardex against matching-engine in the same run, on the same number of commands.

    python bench/bench_recovery.py --commands 1000000 --repeat 3 [--json FILE]

shardex: ``shardex.engine.benchmarks.bench_recovery`` (journal written
untimed, then ``Exchange.open`` timed: journal scan, CRC-checked reads and
replay through the matching kernels, no snapshot).  Its workload is the
peer's own order flow (``bench/out/order_flow_seed42_<N>.csv`` from
``bench/gen_order_flow.py``) when that file exists, else shardex's
statistically equivalent ``loadgen.order_flow`` on one instrument.
matching-engine: ``bench/recovery_peer_matching_engine.py`` in its venv
(``bench/setup_matching_peers.sh``).  Prints both and the ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_PY = HERE / ".venvs" / "matching-engine" / "bin" / "python"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commands", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args()

    from shardex.engine.benchmarks import bench_recovery
    from shardex.engine.workload import read_workload_csv

    csv = HERE / "out" / f"order_flow_seed42_{args.commands}.csv"
    cmds = read_workload_csv(csv).commands if csv.is_file() else None
    ours = bench_recovery(args.commands, shards=args.shards, repeat=args.repeat, cmds=cmds)
    ours["workload"] = str(csv.relative_to(HERE.parent)) if cmds is not None else "loadgen.order_flow(1 instrument)"
    peer: dict = {"error": f"{PEER_PY} missing: run bench/setup_matching_peers.sh"}
    if PEER_PY.exists():
        out = subprocess.run([str(PEER_PY), str(HERE / "recovery_peer_matching_engine.py"), str(args.commands),
                              "--repeat", str(args.repeat)], capture_output=True, text=True, timeout=3600)
        peer = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-2000:]}
    ratio = ours["commands_per_second"] / peer["commands_per_second"] if "commands_per_second" in peer else None
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.platform(),
              "shardex": ours, "matching_engine": peer, "ratio": None if ratio is None else round(ratio, 2)}
    print(f"shardex recovery:         {ours['commands_per_second']:>12,} commands/s ({ours['seconds']} s, "
          f"hash matches: {ours['state_hash_matches']})")
    if ratio is not None:
        print(f"matching-engine recovery: {peer['commands_per_second']:>12,} commands/s ({peer['seconds']} s)")
        print(f"ratio: {ratio:.1f}x")
    else:
        print(f"matching-engine: {peer['error']}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2))
    sys.exit(0 if ours["state_hash_matches"] else 1)


if __name__ == "__main__":
    main()
