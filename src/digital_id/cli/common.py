"""What every CLI module shares: settings, the database engine, one-line failures."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
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
