"""``digital-id clients``: the registry of agency apps."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from digital_id.audit import reports
from digital_id.cli.common import (
    EXIT_USAGE,
    JsonOption,
    console,
    fail,
    iso,
    key_store,
    migrated_engine,
    print_json,
    print_table,
    settings_of,
)
from digital_id.clients import agreements, service
from digital_id.clients.metadata_fields import InvalidClientMetadataError
from digital_id.db.types import WIB, utc_now
from digital_id.keys import KeyState, KeyStoreError
from digital_id.outbound import Outbound

app = typer.Typer(
    help="Agency clients: register, update, disable, rotate secrets.", no_args_is_help=True
)

ClientIdArgument = Annotated[str, typer.Argument(help="The client_id.")]
RegistrationFile = Annotated[
    Path, typer.Option("--file", help="Registration metadata as JSON, RFC 7591 field names.")
]


@app.command()
def add(ctx: typer.Context, file: RegistrationFile) -> None:
    """Register an agency app; prints its registration, with the client secret shown once."""
    data = _read_registration(file)
    with _session(ctx) as session:
        registered = service.register(
            session,
            data,
            production=settings_of(ctx).is_production,
            active_algorithms=_active_algorithms(ctx),
            outbound=Outbound.from_settings(settings_of(ctx)),
        )
        _print_document(service.registration_document(registered.client, registered.client_secret))
    if registered.client_secret:
        console.print(
            "The client_secret above is shown once; only its hash is stored.", style="yellow"
        )


ExpiringOption = Annotated[
    str | None,
    typer.Option(
        "--expiring",
        help="Only clients whose data-sharing agreement ends within this many days (30d, or 30),"
        " or has ended.",
    ),
]


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False, expiring: ExpiringOption = None) -> None:
    """Show every registered client (client_ids in full), with its agreement's end."""
    with _session(ctx) as session:
        clients = service.all_clients(session)
        if expiring is not None:
            days = expiring.removesuffix("d")
            if not days.isdigit() or len(days) > 5:
                fail("--expiring takes a number of days, such as 30d", EXIT_USAGE)
            clients = agreements.expiring(clients, within=timedelta(days=int(days)), now=utc_now())
        summaries = [
            {
                "client_id": client.client_id,
                "client_name": client.client_name,
                "token_endpoint_auth_method": client.registration["token_endpoint_auth_method"],
                "grant_types": list(client.registration["grant_types"]),
                "enabled": client.enabled,
                "created_at": iso(client.created_at),
                "agreement": (client.registration.get("agreement") or {}).get("number"),
                "agreement_expires": (client.registration.get("agreement") or {}).get("expires"),
                "suspended": client.suspended_at is not None,
            }
            for client in clients
        ]
        created = [client.created_at.strftime("%Y-%m-%d %H:%M") for client in clients]
    if as_json:
        print_json(summaries)
        return
    print_table(
        ("client_id", "name", "auth method", "grant types", "enabled", "agreement ends", "created"),
        [
            (
                summary["client_id"],
                summary["client_name"],
                summary["token_endpoint_auth_method"],
                " ".join(summary["grant_types"]),
                "yes" if summary["enabled"] else "no",
                ("suspended" if summary["suspended"] else summary["agreement_expires"] or "-"),
                when,
            )
            for summary, when in zip(summaries, created, strict=True)
        ],
        identifiers={"client_id"},
        empty="No clients registered; add one with `digital-id clients add --file REG.json`.",
    )


@app.command()
def show(ctx: typer.Context, client_id: ClientIdArgument, as_json: JsonOption = False) -> None:
    """Print one client's registration as JSON (never its secret); --json leaves out colour."""
    with _session(ctx) as session:
        document = service.registration_document(service.get(session, client_id))
    if as_json:
        print_json(document)
    else:
        _print_document(document)


@app.command()
def update(ctx: typer.Context, client_id: ClientIdArgument, file: RegistrationFile) -> None:
    """Replace a client's metadata with FILE (validated the same way as `add`)."""
    data = _read_registration(file)
    with _session(ctx) as session:
        registered = service.update(
            session,
            client_id,
            data,
            production=settings_of(ctx).is_production,
            active_algorithms=_active_algorithms(ctx),
            outbound=Outbound.from_settings(settings_of(ctx)),
        )
        _print_document(service.registration_document(registered.client, registered.client_secret))


@app.command()
def disable(ctx: typer.Context, client_id: ClientIdArgument) -> None:
    """Stop a client from logging anyone in (its registration is kept)."""
    with _session(ctx) as session:
        service.set_enabled(session, client_id, enabled=False)
    console.print(f"Client {client_id} is disabled.")


@app.command()
def enable(ctx: typer.Context, client_id: ClientIdArgument) -> None:
    """Let a disabled client log citizens in again."""
    with _session(ctx) as session:
        service.set_enabled(session, client_id, enabled=True)
    console.print(f"Client {client_id} is enabled.")


@app.command()
def suspend(
    ctx: typer.Context,
    client_id: ClientIdArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit trail.")],
) -> None:
    """Suspend a client's data-sharing agreement: nothing is released to it until reinstated."""
    if not reason.strip():
        fail("--reason must say why", EXIT_USAGE)
    with _session(ctx) as session:
        agreements.suspend(session, service.get(session, client_id), reason=reason, now=utc_now())
    console.print(f"Client {client_id}'s agreement is suspended: it receives nothing now.")


@app.command()
def reinstate(ctx: typer.Context, client_id: ClientIdArgument) -> None:
    """Lift a suspension (an expired agreement stays expired until the registration renews it)."""
    with _session(ctx) as session:
        agreements.reinstate(session, service.get(session, client_id), now=utc_now())
    console.print(f"Client {client_id}'s agreement is reinstated.")


@app.command()
def report(
    ctx: typer.Context,
    client_id: ClientIdArgument,
    since: Annotated[str, typer.Option("--since", help="From this date (YYYY-MM-DD, WIB).")],
    output: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
) -> None:
    """What the agency received since a date: releases by month and claim, and the distinct
    citizens (the agreement's semester report), as CSV or JSON on stdout."""
    if output not in ("csv", "json"):
        fail("--format is csv or json", EXIT_USAGE)
    try:
        start = datetime.combine(date.fromisoformat(since), time(0), tzinfo=WIB)
    except ValueError:
        fail("--since takes a date as YYYY-MM-DD", EXIT_USAGE)
    with _session(ctx) as session:
        service.get(session, client_id)
        found = reports.releases_report(session, client_id, since=start)
    rows = found.rows()
    if output == "json":
        print_json(
            {
                "client_id": client_id,
                "since": since,
                "releases": found.events,
                "distinct_citizens": len(found.everyone),
                "by_month_and_claim": rows[:-1],
            }
        )
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=["month", "claim", "releases", "citizens"])
    writer.writeheader()
    writer.writerows(rows)


@app.command("rotate-secret")
def rotate_secret(ctx: typer.Context, client_id: ClientIdArgument) -> None:
    """Issue a new client secret (shown once); servers stop taking the old one within
    DIGITAL_ID_CLIENTS_RELOAD_SECONDS."""
    with _session(ctx) as session:
        registered = service.rotate_secret(session, client_id)
        _print_document(
            {"client_id": registered.client.client_id, "client_secret": registered.client_secret}
        )
    console.print(
        "The client_secret above is shown once; the previous secret no longer works "
        "(servers notice within DIGITAL_ID_CLIENTS_RELOAD_SECONDS).",
        style="yellow",
    )


@contextmanager
def _session(ctx: typer.Context) -> Iterator[Session]:
    """One transaction per command: committed on success, rolled back on any refusal."""
    engine = migrated_engine(ctx)
    try:
        with Session(engine) as session, session.begin():
            yield session
    except InvalidClientMetadataError as exc:
        fail(f"{exc} ({exc.error}); nothing was changed", EXIT_USAGE)
    except service.ClientError as exc:
        fail(str(exc))
    finally:
        engine.dispose()


def _active_algorithms(ctx: typer.Context) -> set[str]:
    try:
        return {r.alg for r in key_store(ctx).records() if r.state == KeyState.ACTIVE}
    except KeyStoreError as exc:
        fail(str(exc))


def _read_registration(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{file}: no such file", EXIT_USAGE)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{file}: not a JSON document ({exc})", EXIT_USAGE)
    if not isinstance(data, dict):
        fail(f"{file}: the registration must be a JSON object", EXIT_USAGE)
    return data


def _print_document(document: dict[str, Any]) -> None:
    console.print_json(json.dumps(document, ensure_ascii=False))
