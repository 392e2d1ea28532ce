"""shardex against the matching engines a Python user would otherwise pick.

One run, one workload, every engine: the ``matching-engine`` package's own
``order_flow(seed=42)`` flow, 1 M commands (``bench/gen_order_flow.py``),
replayed through

* shardex, one call per batch (``shardex bench matching --workload F --json
  --repeat N``) and one call per command (the same with ``--per-command``);
* each peer in its own venv (``bench/setup_matching_peers.sh``), driven one
  order at a time by ``bench/peers/run_<peer>.py``.

Each engine runs ``--repeat`` times in one process of its own (a fresh book
each time) and the median is reported, with trades, traded quantity, the ratio to shardex's batch mode,
and parity with ``matching-engine`` (same trades and traded quantity with
STP cancel-taker).  The machine is shared and noisy: compare ratios taken in
the same run, not absolute numbers across runs.  With ``--rounds K`` the
whole line-up runs K times in turn (shardex, peer, shardex, peer, ...), so
that a slow spell of the machine hits one round of every engine instead of
all runs of one; each round gives its own ratios, and the targets are judged
on their median over the rounds (every round's ratio is printed too).

Usage::

    python bench/bench_matching.py [--repeat 3] [--rounds 1] [--peers obook,liquibook]
                                   [--workload F.csv] [--json results.json]

Never part of CI: it needs the peers' venvs and minutes of CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
VENVS = BENCH / ".venvs"
REFERENCE = "matching-engine"

# peer name -> (venv folder, runner script)
PEERS: dict[str, tuple[str, str]] = {
    "matching-engine": ("matching-engine", "run_matching_engine.py"),
    "limit-order-book": ("limit-order-book", "run_limit_order_book.py"),
    "orderly-chaos": ("orderly-chaos", "run_orderly_chaos.py"),
    "obook": ("obook", "run_obook.py"),
    "liquibook": ("liquibook", "run_liquibook.py"),
    "cython-orderbook": ("cython-orderbook", "run_cython_orderbook.py"),
}

console = Console(stderr=True)


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def positive_ints(text: str) -> list[int]:
    """An argparse ``type``: comma-separated integers, each at least 1 (``--sizes 1,16,4096``)."""
    try:
        values = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"every value must be at least 1, not {text!r}")
    return values


def sign_and_save(report: dict, path: Path | None) -> None:
    """Print the line saying when and on what ``report`` (with a ``machine`` entry) was measured; write it to ``path``."""
    m = report["machine"]
    print(f"\n{m['date']}  {m['cores']} cores  {m['cpu']}")
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def _reason(*texts: str) -> str:
    """The last meaningful line of a failed command's output (rich boxes stripped)."""
    for text in texts:
        for line in reversed(text.strip().splitlines()):
            line = line.strip(" \t│╭╮╰╯─")
            if any(c.isalnum() for c in line):
                return line[:160]
    return "no output"


def ensure_workload(path: Path, seed: int, count: int) -> None:
    """Generate the workload with the peer's own generator if the file is missing."""
    if path.exists():
        return
    py = VENVS / "matching-engine" / "bin" / "python"
    if not py.exists():
        sys.exit(
            f"{path} does not exist and the matching-engine venv is missing: "
            "run  bash bench/setup_matching_peers.sh  first"
        )
    console.print(f"generating {path} (order_flow seed={seed}, {count:,} commands) ...")
    cmd = [str(py), str(BENCH / "gen_order_flow.py"), "--seed", str(seed), "--count", str(count), "--out", str(path)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def run_shardex(workload: Path, per_command: bool, repeat: int, timeout: float, warmup: int, prefault_mb: int = 0) -> dict:
    """Run ``shardex bench matching --repeat N`` once: ``N`` fresh books in one process, as the peers' runners do.

    Every engine gets the same protocol: one process, ``repeat`` runs on a
    fresh book each, the median reported.  The first runs of any process pay
    for memory the operating system hands it for the first time; running
    shardex once per process instead would time only those.
    """
    name = "shardex (per command)" if per_command else "shardex (batch)"
    cmd = [sys.executable, "-m", "shardex.cli", "bench", "matching", "--workload", str(workload), "--json",
           "--repeat", str(repeat), "--warmup", str(warmup), "--prefault-mb", str(prefault_mb)]
    if per_command:
        cmd.append("--per-command")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=BENCH.parent)
    except subprocess.TimeoutExpired:
        return {"engine": name, "available": False, "reason": f"timed out after {timeout:.0f} s"}
    out = _last_json(p.stdout) if p.returncode == 0 else None
    if out is None:
        why = _reason(p.stderr, p.stdout)
        return {"engine": name, "available": False, "reason": f"`shardex bench matching` failed: {why}"}
    median = float(out["seconds"])
    return {
        "engine": name,
        "available": True,
        "commands": int(out["commands"]),
        "seconds": median,
        "seconds_all": [float(x) for x in out["runs_seconds"]],
        "commands_per_second": int(out["commands"]) / median if median > 0 else None,
        "trades": out.get("trades"),
        "traded_qty": out.get("traded_qty"),
        "state_hash": out.get("state_hash"),
        "notes": ["STP cancel-taker"] + (["one Python call per command"] if per_command else ["one call per batch"])
                 + ([f"{prefault_mb} MB faulted in (untimed) before each run"] if prefault_mb else []),
        "raw": out,
    }


def run_peer(name: str, workload: Path, repeat: int, timeout: float, warmup: int) -> dict:
    """Run one peer's runner in its venv; it times ``repeat`` fresh books itself."""
    venv, script = PEERS[name]
    py = VENVS / venv / "bin" / "python"
    runner = BENCH / "peers" / script
    if not py.exists():
        return {"engine": name, "available": False, "reason": f"no venv at {py.parent.parent} (run bench/setup_matching_peers.sh)"}
    if not runner.exists():
        return {"engine": name, "available": False, "reason": f"no runner {runner.name}"}
    try:
        p = subprocess.run(
            [str(py), str(runner), str(workload), "--repeat", str(repeat), "--warmup", str(warmup)],
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"engine": name, "available": False, "reason": f"timed out after {timeout:.0f} s"}
    out = _last_json(p.stdout) if p.returncode == 0 else None
    if out is None:
        return {"engine": name, "available": False, "reason": f"runner failed: {_reason(p.stderr, p.stdout)}"}
    out["available"] = True
    return out


def parity(r: dict, ref: dict | None) -> str:
    """Whether trades and traded quantity equal the reference's."""
    if not r.get("available"):
        return "-"
    if r["engine"] == REFERENCE:
        return "reference"
    if ref is None or not ref.get("available"):
        return "no reference"
    qty_ok = r.get("traded_qty") == ref["traded_qty"]
    if r.get("trades") is None:
        dq = (r.get("traded_qty") or 0) - ref["traded_qty"]
        return "qty equal (trades unknown)" if qty_ok else f"no: trades unknown, qty {dq:+,}"
    if qty_ok and r["trades"] == ref["trades"]:
        return "yes"
    return f"no: trades {r['trades'] - ref['trades']:+,}, qty {r['traded_qty'] - ref['traded_qty']:+,}"


def combine_rounds(rounds: list[list[dict]]) -> list[dict]:
    """One result per engine from several rounds of the same line-up.

    Each round's ratio to shardex's batch mode is taken within the round;
    the combined result carries the median of those ratios
    (``ratio_vs_shardex_batch``, with every round's in ``round_ratios``) and
    the median round's other figures (``commands_per_second_rounds`` lists
    every round's rate).  With one round this is that round's result.
    """
    out = []
    for j, first in enumerate(rounds[0]):
        per_round = [line_up[j] for line_up in rounds]
        ok = [r for r in per_round if r.get("available") and r.get("commands_per_second")]
        if not ok:
            out.append(first)
            continue
        ratios = []
        for line_up, r in zip(rounds, per_round):
            base = next((b for b in line_up if b["engine"] == "shardex (batch)" and b.get("available")), None)
            if base and r.get("available") and r.get("commands_per_second"):
                ratios.append(r["commands_per_second"] / base["commands_per_second"])
        ok.sort(key=lambda r: r["commands_per_second"])
        merged = dict(ok[len(ok) // 2])
        merged["commands_per_second_rounds"] = [r["commands_per_second"] for r in per_round if r.get("available")]
        if ratios:
            merged["round_ratios"] = ratios
            merged["ratio_vs_shardex_batch"] = statistics.median(ratios)
        out.append(merged)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--workload", type=Path, default=None, help="CSV (default: bench/out/order_flow_seed42_1000000.csv)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per engine; the median is reported")
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed runs per engine before the timed ones, the same for every engine (0: none)")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset of: " + ", ".join(PEERS))
    ap.add_argument("--no-shardex", action="store_true", help="peers only")
    ap.add_argument("--no-per-command", action="store_true", help="skip shardex's one-call-per-command mode")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per engine")
    ap.add_argument("--json", type=Path, default=None, help="write every result to this file")
    ap.add_argument("--prefault-mb", type=int, default=512,
                    help="shardex: touch and free this many MB before each run, untimed (0: off); see docs/bench-matching.md")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the whole line-up this many times in turn; ratios are judged on their median over rounds")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")

    workload = args.workload or BENCH / "out" / f"order_flow_seed{args.seed}_{args.count}.csv"
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        ap.error(f"unknown peers {unknown}; known: {', '.join(PEERS)}")
    ensure_workload(workload, args.seed, args.count)

    t_start = time.perf_counter()
    rounds: list[list[dict]] = []
    for k in range(args.rounds):
        tag = f" (round {k + 1} of {args.rounds})" if args.rounds > 1 else ""
        line_up: list[dict] = []
        if not args.no_shardex:
            modes = [False] if args.no_per_command else [False, True]
            for per_command in modes:
                console.print(f"running shardex ({'per command' if per_command else 'batch'}) x{args.repeat}{tag} ...")
                line_up.append(run_shardex(workload, per_command, args.repeat, args.timeout, args.warmup,
                                           args.prefault_mb))
        for name in peers:
            console.print(f"running {name} x{args.repeat}{tag} ...")
            line_up.append(run_peer(name, workload, args.repeat, args.timeout, args.warmup))
        rounds.append(line_up)
    results = combine_rounds(rounds)

    ref = next((r for r in results if r["engine"] == REFERENCE and r.get("available")), None)
    base = next((r for r in results if r["engine"] == "shardex (batch)" and r.get("available")), None)
    for r in results:
        r["parity"] = parity(r, ref)

    info = machine()
    table = Table(
        title=f"matching: {workload.name}, median of {args.repeat} after {args.warmup} warm-up"
              + (f", median of {args.rounds} rounds" if args.rounds > 1 else "")
              + f" ({info['cores']} cores, {info['date']})",
    )
    for col, just in (("engine", "left"), ("commands/s", "right"), ("trades", "right"),
                      ("traded qty", "right"), ("vs shardex batch", "right"), ("parity with matching-engine", "left")):
        table.add_column(col, justify=just)
    for r in results:
        if not r.get("available"):
            table.add_row(r["engine"], "not available", "", "", "", r.get("reason", ""))
            continue
        ratio = r.get("ratio_vs_shardex_batch")
        table.add_row(
            r["engine"],
            f"{r['commands_per_second']:,.0f}",
            "-" if r.get("trades") is None else f"{r['trades']:,}",
            "-" if r.get("traded_qty") is None else f"{r['traded_qty']:,}",
            "-" if ratio is None else f"{ratio:.3g}x",
            r["parity"],
        )
    out = Console(width=None if sys.stdout.isatty() else 160)
    out.print(table)
    for r in results:
        for note in r.get("notes", []) if r.get("available") else []:
            out.print(f"  [dim]{r['engine']}: {note}[/dim]")
    if base:
        for peer, target in (("matching-engine", 20.0), ("limit-order-book", 3.0)):
            p = next((r for r in results if r["engine"] == peer and r.get("available")), None)
            if p:
                x = 1.0 / p["ratio_vs_shardex_batch"]
                mark = "meets" if x >= target else "below"
                each = ""
                if len(p["round_ratios"]) > 1:
                    each = f"; per round: {', '.join(f'{1.0 / r:.2f}x' for r in p['round_ratios'])}"
                out.print(f"shardex batch = {x:.1f}x {peer} (target >= {target:g}x: {mark}{each})")
        mark = "meets" if base["commands_per_second"] >= 7e6 else "below"
        out.print(f"shardex batch: {base['commands_per_second'] / 1e6:.2f} M commands/s (target >= 7 M: {mark})")
    out.print(f"[dim]total wall time {time.perf_counter() - t_start:.0f} s[/dim]")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"machine": info, "workload": str(workload), "repeat": args.repeat, "warmup": args.warmup,
                        "rounds": args.rounds, "results": results}, indent=2)
        )
        out.print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
