"""``digital-id keys``: the signing-key lifecycle and the JWKS it publishes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.cli.common import (
    EXIT_USAGE,
    JsonOption,
    console,
    errors,
    fail,
    iso,
    key_store,
    print_json,
    print_table,
    settings_of,
)
from digital_id.db.engine import create_engine_for
from digital_id.db.migrate import SchemaNotCurrentError, ensure_current
from digital_id.keys import ALGORITHMS, KeyStoreError
from digital_id.keys.records import KeyState
from digital_id.keys.store import SECRET_NAMES

app = typer.Typer(
    help="Signing keys: generate, rotate, retire, prune, revoke.", no_args_is_help=True
)

# A kid is base64url, so it may begin with "-": such a kid goes after "--", which ends options.
KidArgument = Annotated[
    str,
    typer.Argument(
        help="The key's kid, in full (`keys list`). One that begins with '-' goes after '--': "
        "`digital-id keys revoke --yes -- -AbC...`."
    ),
]
AlgorithmOption = Annotated[str, typer.Option("--alg", help=f"One of {', '.join(ALGORITHMS)}.")]


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show every key in the store with its state and timestamps (kids in full)."""
    settings = settings_of(ctx)
    try:
        records = sorted(key_store(ctx).records(), key=lambda r: (r.alg, r.created_at))
    except KeyStoreError as exc:
        fail(str(exc))
    if as_json:
        print_json(
            [
                {
                    "kid": record.kid,
                    "alg": record.alg,
                    "state": record.state.value,
                    "created_at": iso(record.created_at),
                    "activated_at": iso(record.activated_at),
                    "retired_at": iso(record.retired_at),
                    "removable_after": iso(record.removable_after(settings.key_grace_period)),
                }
                for record in records
            ]
        )
        return
    print_table(
        ("kid", "alg", "state", "created", "activated", "retired", "removable after"),
        [
            (
                record.kid,
                record.alg,
                record.state.value,
                _when(record.created_at),
                _when(record.activated_at),
                _when(record.retired_at),
                _when(record.removable_after(settings.key_grace_period)),
            )
            for record in records
        ],
        identifiers={"kid"},
        empty="The key store is empty; run `digital-id keys generate --alg RS256`.",
    )


@app.command()
def init(ctx: typer.Context) -> None:
    """Prepare the key store for servers that may only read it: every server secret and an
    active key for each algorithm a server signs with (RS256 for ID tokens, and
    DIGITAL_ID_ACCESS_TOKEN_ALGORITHM's, ES256 by default). Safe to run again; it changes
    nothing that is already there."""
    algorithms = settings_of(ctx).signing_algorithms
    store = key_store(ctx)
    created = []
    try:
        for name in SECRET_NAMES:
            store.secret(name)  # created on first use, so servers never need to write
        for alg in algorithms:
            if (record := store.ensure_active(alg)) is not None:
                created.append(record)
    except KeyStoreError as exc:
        fail(str(exc))
    for record in created:
        _record(ctx, "keys:generated", {"kid": record.kid, "alg": record.alg, "state": "active"})
        console.print(f"Generated {record.alg} key {record.kid}; it is active.")
    console.print(
        f"Key store ready in {settings_of(ctx).keys_dir}: {len(SECRET_NAMES)} server secrets "
        f"and an active key for {' and '.join(algorithms)}. Servers may mount it read-only."
    )


@app.command()
def generate(
    ctx: typer.Context,
    alg: AlgorithmOption = "RS256",
    size: Annotated[
        int | None, typer.Option(help="RSA key size: 2048 or 3072 (default 3072).")
    ] = None,
) -> None:
    """Add a key: published as `next`, or `active` at once if ALG has no key yet."""
    try:
        record = key_store(ctx).generate(alg, size=size)
    except KeyStoreError as exc:
        fail(str(exc), EXIT_USAGE)
    _record(ctx, "keys:generated", {"kid": record.kid, "alg": alg, "state": str(record.state)})
    if record.state == KeyState.ACTIVE:
        console.print(f"Generated {alg} key {record.kid}; it is active (the first {alg} key).")
    else:
        wait = settings_of(ctx).jwks_cache_seconds
        console.print(
            f"Generated {alg} key {record.kid} as next: published now, signing after "
            f"`digital-id keys rotate --alg {alg}` (allowed once it has been published for {wait} s)."
        )


@app.command()
def rotate(
    ctx: typer.Context,
    alg: Annotated[
        str | None,
        typer.Option("--alg", help="Rotate only this algorithm (default: every active one)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Activate a key published for less than the JWKS cache lifetime."
        ),
    ] = False,
) -> None:
    """Promote the oldest next key to active; the active key retires."""
    settings = settings_of(ctx)
    store = key_store(ctx)
    try:
        algorithms = (
            [alg] if alg else sorted({r.alg for r in store.records() if r.state == KeyState.ACTIVE})
        )
        if not algorithms:
            fail(
                "the key store has no active key to rotate; run `digital-id keys generate --alg RS256`"
            )
        if not force:  # check every algorithm first, so a refusal changes nothing
            for name in algorithms:
                problem = store.rotation_problem(name, min_published=settings.jwks_cache_lifetime)
                if problem is not None:
                    fail(problem)
        for name in algorithms:
            active, retired = store.rotate(
                name, min_published=settings.jwks_cache_lifetime, force=force
            )
            previous = f"; {retired.kid} retired" if retired else ""
            console.print(f"{name}: {active.kid} is now active{previous}.")
            _record(
                ctx,
                "keys:rotated",
                {"alg": name, "active": active.kid, "retired": retired.kid if retired else None},
            )
    except KeyStoreError as exc:
        fail(str(exc))


@app.command()
def retire(ctx: typer.Context, kid: KidArgument) -> None:
    """Retire a next key (an active key retires by `rotate`)."""
    try:
        record = key_store(ctx).retire(kid)
    except KeyStoreError as exc:
        fail(str(exc))
    _record(ctx, "keys:retired", {"kid": record.kid, "alg": record.alg})
    console.print(
        f"{record.kid} is retired; it stays published until `prune` after the grace period."
    )


@app.command()
def prune(ctx: typer.Context) -> None:
    """Remove retired keys whose grace period has passed."""
    grace = settings_of(ctx).key_grace_period
    try:
        removed = key_store(ctx).prune(grace)
    except KeyStoreError as exc:
        fail(str(exc))
    if not removed:
        console.print(f"Nothing to prune (grace period {int(grace.total_seconds())} s).")
    for record in removed:
        console.print(f"Removed retired {record.alg} key {record.kid}.")
    if removed:
        _record(ctx, "keys:pruned", {"kids": [record.kid for record in removed]})


@app.command()
def revoke(
    ctx: typer.Context,
    kid: KidArgument,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: tokens it signed stop verifying now.")
    ] = False,
) -> None:
    """Emergency: unpublish a key now. An active key is replaced by a new one at once."""
    if not yes:
        fail(
            "revoking unpublishes the key at once and every token it signed stops verifying; "
            "repeat with --yes to confirm",
            EXIT_USAGE,
        )
    try:
        record, replacement = key_store(ctx).revoke(kid)
    except KeyStoreError as exc:
        fail(str(exc))
    console.print(f"Revoked {record.alg} key {record.kid}; it is no longer published.")
    _record(
        ctx,
        "keys:revoked",
        {
            "kid": record.kid,
            "alg": record.alg,
            "replacement": replacement.kid if replacement else None,
        },
    )
    if replacement is not None:
        console.print(f"{record.alg}: {replacement.kid} is now active.")


def _record(ctx: typer.Context, tag: str, details: dict[str, Any]) -> None:
    """Note the change in the audit trail. The key store is files, so this cannot share a
    transaction with the change; without a usable database the operator is told."""
    engine = create_engine_for(settings_of(ctx).database_url)
    try:
        ensure_current(engine)
        with Session(engine) as session, session.begin():
            trail.record(session, tag, actor="operator", details=details)
    except (SchemaNotCurrentError, SQLAlchemyError):
        errors.print(
            f"[bold yellow]warning:[/] {tag} not recorded in the audit trail: the database is "
            "not available or not migrated",
            highlight=False,
        )
    finally:
        engine.dispose()


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"
