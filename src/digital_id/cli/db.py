"""``digital-id db``: schema migrations, and purging rows nobody needs any more."""

from __future__ import annotations

from typing import Annotated

import typer

from digital_id.cli.common import console, settings_of
from digital_id.db import migrate
from digital_id.db.engine import create_engine_for
from digital_id.web.housekeeping import purge_round

app = typer.Typer(help="Create and migrate the database schema.", no_args_is_help=True)


@app.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database to the latest schema (safe to run twice, or from several workers)."""
    engine = create_engine_for(settings_of(ctx).database_url)
    try:
        before, after = migrate.upgrade(engine, revision)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"Database already at revision {after}; nothing to do.")
    else:
        console.print(f"Database migrated from {before or 'empty'} to {after}.")


@app.command()
def current(ctx: typer.Context) -> None:
    """Show the database's schema revision and the one this code needs."""
    engine = create_engine_for(settings_of(ctx).database_url)
    try:
        revision = migrate.current_revision(engine)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    state = "up to date" if revision == head else "needs `digital-id db upgrade`"
    console.print(f"Database at {revision or 'empty'}; code needs {head}: {state}.")


@app.command()
def purge(ctx: typer.Context) -> None:
    """Purge rows nobody needs any more now (each server also does it every
    DIGITAL_ID_HOUSEKEEPING_SECONDS): ended rate-limit windows, lapsed recognised browsers,
    old authorization codes, expired assertion and request-object ids, expired revocation
    marks."""
    engine = create_engine_for(settings_of(ctx).database_url)
    try:
        deleted = purge_round(engine)
    finally:
        engine.dispose()
    console.print(", ".join(f"{table}: {count} purged" for table, count in deleted.items()))
