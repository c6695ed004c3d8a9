"""What every CLI module shares: settings, the database engine, one-line failures."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text
from sqlalchemy import Engine

from digital_id.accounts.pins import PinHasher
from digital_id.config import ConfigError, Settings, load_settings
from digital_id.db.engine import create_engine_for
from digital_id.db.migrate import SchemaNotCurrentError, ensure_current
from digital_id.keys.errors import KeyStoreError
from digital_id.keys.store import KeyStore

console = Console(soft_wrap=True)  # messages stay on one line, greppable in logs
errors = Console(stderr=True)

# Exit codes: 1 for "the operation failed", 2 for "the request was wrong" (click's usage code).
EXIT_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print JSON for scripts (the same keys every release) instead."),
]


def print_json(document: Any) -> None:
    """Output for scripts: plain JSON on stdout, never wrapped, cut or coloured, whatever the
    terminal. Callers pass only what an operator may see; secrets and PIN hashes never."""
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def iso(moment: datetime | None) -> str | None:
    """A moment as JSON output writes it: ISO 8601 in UTC, or null."""
    return moment.isoformat(timespec="seconds") if moment else None


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    identifiers: Collection[str] = (),
    empty: str,
) -> None:
    """Rows for a person at a terminal. Columns named in ``identifiers`` (kids, client_ids)
    are never cut or wrapped, because an operator copies them into the next command: the rows
    are a table when it fits the terminal that way, otherwise one block of lines per row."""
    if not rows:
        console.print(empty, highlight=False)
        return
    columns = [
        Column(header, no_wrap=True, min_width=max(len(row[index]) for row in rows))
        if header in identifiers
        else Column(header)
        for index, header in enumerate(headers)
    ]
    table = Table(*columns)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    # The narrowest the table can be with every word whole: rich would squeeze it further,
    # to one character per column, rather than let it pass the terminal's width.
    unbounded = console.options.update_width(10**6)
    if Measurement.get(console, unbounded, table).minimum <= console.width:
        console.print(table)
        return
    for number, row in enumerate(rows):
        if number:
            console.print()
        print_record(list(zip(headers, row, strict=True)))


def print_record(fields: Sequence[tuple[str, str]], *, title: str | None = None) -> None:
    """One thing's fields as ``label  value`` lines. Nothing is cut: a value longer than the
    terminal is left for the terminal to wrap (the console writes soft-wrapped lines), so
    copying it gives it whole."""
    if title is not None:
        console.print(Text(title, style="bold"))
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        lines = value.split("\n")
        console.print(Text(f"{label:<{width}}  ", style="bold") + Text(lines[0]))
        for line in lines[1:]:
            console.print(Text(" " * (width + 2) + line))


def load_cli_settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def settings_of(ctx: typer.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def key_store(ctx: typer.Context) -> KeyStore:
    """The key store, with a loud warning when it is opened with the development passphrase."""
    settings = settings_of(ctx)
    if settings.uses_development_passphrase:
        errors.print(
            "[bold yellow]warning:[/] the key store uses the published development passphrase; "
            "set DIGITAL_ID_KEYS_PASSPHRASE for anything but development",
            highlight=False,
        )
    return KeyStore(settings.keys_dir, settings.keys_passphrase.get_secret_value())


def pin_hasher(ctx: typer.Context) -> PinHasher:
    """The PIN hasher, peppered with the secret from the key store."""
    settings = settings_of(ctx)
    try:
        pepper = key_store(ctx).secret("pin_pepper")
    except KeyStoreError as exc:
        fail(str(exc))
    return PinHasher(
        pepper, memory_kib=settings.pin_argon2_memory_kib, time_cost=settings.pin_argon2_time_cost
    )


def pairwise_secret(ctx: typer.Context) -> bytes:
    """The secret agencies' subject identifiers are derived from: a back-channel logout from
    the command line names the citizen as each agency knows them."""
    try:
        return key_store(ctx).secret("pairwise_subject")
    except KeyStoreError as exc:
        fail(str(exc))


def migrated_engine(ctx: typer.Context) -> Engine:
    """An engine on a database whose schema matches this code, or a one-line refusal."""
    engine = create_engine_for(settings_of(ctx).database_url)
    try:
        ensure_current(engine)
    except SchemaNotCurrentError as exc:
        engine.dispose()
        fail(str(exc))
    return engine
