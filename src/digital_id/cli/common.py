"""What every CLI module shares: settings, the database engine, one-line failures."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from sqlalchemy import Engine

from digital_id.config import ConfigError, Settings, load_settings
from digital_id.db.engine import create_engine_for
from digital_id.db.migrate import SchemaNotCurrentError, ensure_current

console = Console()
errors = Console(stderr=True)

# Exit codes: 1 for "the operation failed", 2 for "the request was wrong" (click's usage code).
EXIT_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_cli_settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def settings_of(ctx: typer.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def migrated_engine(ctx: typer.Context) -> Engine:
    """An engine on a database whose schema matches this code, or a one-line refusal."""
    engine = create_engine_for(settings_of(ctx).database_url)
    try:
        ensure_current(engine)
    except SchemaNotCurrentError as exc:
        engine.dispose()
        fail(str(exc))
    return engine
