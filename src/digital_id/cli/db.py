"""``digital-id db``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from digital_id.cli.common import console, settings_of
from digital_id.db import migrate
from digital_id.db.engine import create_engine_for

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
