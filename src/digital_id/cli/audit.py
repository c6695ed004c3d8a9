"""``digital-id audit``: check the audit trail's hash chains, sign a checkpoint over their heads;
export the events for a SIEM."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session

from digital_id.audit import checkpoints, verification
from digital_id.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    JsonOption,
    console,
    fail,
    key_store,
    migrated_engine,
    print_json,
)
from digital_id.keys import KeyStoreError

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command()
def verify(
    ctx: typer.Context,
    as_json: JsonOption = False,
    jwks: Annotated[
        Path | None,
        typer.Option(
            "--jwks",
            help="Check the checkpoints' signatures with this published JWKS file "
            "instead of the key store.",
        ),
    ] = None,
) -> None:
    """Walk every hash chain and check the signed checkpoints: the count and a digest of the
    heads, or the first broken link and its chain (exit 1)."""

    def published_keys() -> KeySet:
        try:
            if jwks is not None:
                return KeySet.import_key_set(json.loads(jwks.read_text(encoding="utf-8")))
            return key_store(ctx).snapshot().verification_keys()
        except (OSError, ValueError, JoseError, KeyStoreError) as exc:
            fail(f"cannot read the keys to check the checkpoints with: {exc}")

    engine = migrated_engine(ctx)
    try:
        with Session(engine) as session:
            result = verification.verify(session, keys=published_keys)
    finally:
        engine.dispose()
    if as_json:
        print_json(
            {
                "intact": result.intact,
                "count": result.count,
                "chains": result.chains,
                "checkpoints": result.checkpoints,
                "head": result.head,
                "chain": result.chain,
                "broken_at": result.broken_at,
                "problem": result.problem,
            }
        )
        if not result.intact:
            raise typer.Exit(EXIT_FAILED)
        return
    if not result.intact:
        where = "the audit trail is broken"
        if result.chain is not None:
            where = f"audit chain {result.chain} is broken at event {result.broken_at}"
        fail(
            f"{where}: {result.problem} ({result.count} events before it are intact)",
            EXIT_FAILED,
        )
    console.print(
        f"Audit trail intact: {result.count} events in {result.chains} chains, "
        f"{result.checkpoints} signed checkpoints, heads digest {result.head}"
    )


@app.command()
def checkpoint(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Sign every chain's head now with the active signing key (the server also does this
    every DIGITAL_ID_AUDIT_CHECKPOINT_SECONDS)."""
    try:
        key = key_store(ctx).snapshot().signing_key(checkpoints.CHECKPOINT_ALGORITHM)
    except KeyStoreError as exc:
        fail(str(exc))
    engine = migrated_engine(ctx)
    try:
        with Session(engine) as session, session.begin():
            written = checkpoints.write(session, key, checkpoints.CHECKPOINT_ALGORITHM)
            number, chains = written.id, len(checkpoints.heads_in(written.token, None))
    finally:
        engine.dispose()
    if as_json:
        print_json({"checkpoint": number, "chains": chains})
        return
    console.print(f"Signed audit checkpoint {number} over {chains} chains")


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
                for event in verification.export(session, since=start):
                    sys.stdout.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
                return
            # Streamed to a temporary file beside the target, then renamed: a crash leaves
            # either no file or a whole one.
            partial = out.with_name(f".{out.name}.partial")
            with partial.open("w", encoding="utf-8") as handle:
                for event in verification.export(session, since=start):
                    handle.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
                    written += 1
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(out)
    finally:
        engine.dispose()
    console.print(f"Wrote {written} events to {out}")
