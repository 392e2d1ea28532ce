"""``shardex journal ...``: inspect journals from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from shardex.errors import JournalError
from shardex.journal.verify import VerifyReport, verify_journal

app = typer.Typer(help="Inspect write-ahead journals and snapshots.", no_args_is_help=True)


def _print_report(report: VerifyReport) -> None:
    echo = typer.echo
    echo(f"journal   {report.journal_dir}")
    if report.lock_pid is not None:
        echo(f"lock      pid {report.lock_pid} (last holder; the lock itself is released when it exits)")
    seq = "empty" if report.last_seq is None else f"{report.first_seq}..{report.last_seq}"
    echo(f"seq       {seq}")
    echo(f"segments  {len(report.segments)}")
    for s in report.segments:
        line = f"  {s.file}  {s.bytes:>12} bytes  {s.records:>7} records  {s.commands:>9} commands  {s.status}"
        if s.problem:
            line += f" at byte offset {s.offset}: {s.problem}"
        echo(line)
    if report.torn_tail:
        t = report.torn_tail
        echo(f"torn tail {t['file']} at byte offset {t['offset']} ({t['bytes']} bytes, {t['reason']}); opening the journal cuts it")
    echo(f"snapshots {len(report.snapshots)}" + (f" in {report.snapshot_dir}" if report.snapshot_dir else ""))
    for snap in report.snapshots:
        state = f"valid  hash {snap.state_hash}" if snap.valid else f"INVALID: {snap.problem}"
        echo(f"  {snap.file}  seq {snap.seq}  {state}")
    for c in report.corruption:
        echo(f"CORRUPT   {c['file']} at byte offset {c['offset']}: {c['problem']}", err=True)
    echo("result    " + ("ok" if report.ok else "CORRUPT"))


@app.command("verify")
def verify(
    directory: Path = typer.Argument(..., help="A journal directory, or an engine directory holding journal/ and snapshots/."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
) -> None:
    """Check every record's CRC32C, the sequence chain and the snapshots, changing nothing.

    Exit status: 0 when intact (a torn tail is reported, not an error), 1 on
    corruption or a missing segment, 2 when DIRECTORY cannot be inspected.
    """
    try:
        report = verify_journal(directory)
    except (JournalError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    raise typer.Exit(0 if report.ok else 1)
