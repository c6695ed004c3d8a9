"""``digital-id citizens``: citizen accounts (activation)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from digital_id.accounts import service
from digital_id.accounts.pins import InvalidPinError
from digital_id.cli.common import (
    EXIT_USAGE,
    console,
    fail,
    migrated_engine,
    pin_hasher,
    settings_of,
)
from digital_id.registry.nik import mask_nik

app = typer.Typer(help="Citizen accounts: activation.", no_args_is_help=True)


@app.command()
def activate(
    ctx: typer.Context,
    nik: Annotated[str, typer.Argument(help="The citizen's NIK.")],
    pin: Annotated[
        str | None,
        typer.Option("--pin", help="Development only: set this PIN directly, without a code."),
    ] = None,
) -> None:
    """Issue a one-time activation code (shown once, valid 24 h) for an active register record."""
    settings = settings_of(ctx)
    if pin is not None and settings.is_production:
        fail("--pin sets a PIN without the citizen; it is refused in production", EXIT_USAGE)
    engine = migrated_engine(ctx)
    hasher = pin_hasher(ctx) if pin is not None else None
    try:
        with Session(engine) as session, session.begin():
            if hasher is not None and pin is not None:
                service.set_pin(session, hasher, nik=nik, pin=pin)
                console.print(
                    f"Development: citizen {mask_nik(nik)} can now log in with the PIN given."
                )
                return
            code = service.issue_activation_code(
                session, nik, valid_for=timedelta(hours=settings.activation_code_hours)
            )
    except (service.CitizenNotFoundError, service.ActivationError) as exc:
        fail(f"NIK {mask_nik(nik)}: {exc}")
    except InvalidPinError as exc:
        fail(f"--pin: {exc}", EXIT_USAGE)
    finally:
        engine.dispose()
    console.print(f"Activation code for {mask_nik(nik)}: {code}")
    console.print(
        f"Give it to the citizen; it is shown once and works for {settings.activation_code_hours} h at /activate."
    )
