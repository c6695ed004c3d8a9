"""``digital-id audit``: check the audit trail's hash chain; export it for a SIEM."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    JsonOption,
    console,
    fail,
    migrated_engine,
    print_json,
)

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command()
def verify(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Walk the hash chain: the count and head hash, or the first broken link (exit 1)."""
    engine = migrated_engine(ctx)
    try:
        with Session(engine) as session:
            result = trail.verify(session)
    finally:
        engine.dispose()
    if as_json:
        print_json(
            {
                "intact": result.intact,
                "count": result.count,
                "head": result.head,
                "broken_at": result.broken_at,
                "problem": result.problem,
            }
        )
        if not result.intact:
            raise typer.Exit(EXIT_FAILED)
        return
    if not result.intact:
        fail(
            f"the audit chain is broken at event {result.broken_at}: {result.problem} "
            f"({result.count} events before it are intact)",
            EXIT_FAILED,
        )
    console.print(f"Audit chain intact: {result.count} events, head {result.head}")


@app.command()
def export(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only events at or after this date (YYYY-MM-DD, UTC)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write JSON Lines here instead of stdout.")
    ] = None,
) -> None:
    """Events as JSON Lines, oldest first, with their hashes (for a SIEM)."""
    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since).replace(tzinfo=UTC)
        except ValueError:
            fail(f"--since: {since!r} is not a date like 2026-11-28", EXIT_USAGE)
    engine = migrated_engine(ctx)
    written = 0
    try:
        with Session(engine) as session:
            if out is None:
                for event in trail.export(session, since=start):
                    sys.stdout.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
                return
            # Streamed to a temporary file beside the target, then renamed: a crash leaves
            # either no file or a whole one.
            partial = out.with_name(f".{out.name}.partial")
            with partial.open("w", encoding="utf-8") as handle:
                for event in trail.export(session, since=start):
                    handle.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
                    written += 1
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(out)
    finally:
        engine.dispose()
    console.print(f"Wrote {written} events to {out}")
