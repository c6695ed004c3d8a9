"""``digital-id citizens``: citizen accounts (activation)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from digital_id.accounts import activation, operator_actions
from digital_id.accounts.lookup import CitizenNotFoundError
from digital_id.accounts.pins import InvalidPinError
from digital_id.cli import common
from digital_id.cli.common import (
    EXIT_USAGE,
    JsonOption,
    console,
    fail,
    iso,
    migrated_engine,
    pin_hasher,
    print_json,
    print_record,
    settings_of,
)
from digital_id.consent import service as consent_service
from digital_id.registry.nik import mask_nik

app = typer.Typer(
    help="Citizen accounts: activation, lockouts, second factor, blocking.", no_args_is_help=True
)

NikArgument = Annotated[str, typer.Argument(help="The citizen's NIK.")]


@app.command()
def activate(
    ctx: typer.Context,
    nik: NikArgument,
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
                activation.set_pin(session, hasher, nik=nik, pin=pin)
                console.print(
                    f"Development: citizen {mask_nik(nik)} can now log in with the PIN given."
                )
                return
            code = activation.issue_activation_code(
                session, nik, valid_for=timedelta(hours=settings.activation_code_hours)
            )
    except (CitizenNotFoundError, activation.ActivationError) as exc:
        fail(f"NIK {mask_nik(nik)}: {exc}")
    except InvalidPinError as exc:
        fail(f"--pin: {exc}", EXIT_USAGE)
    finally:
        engine.dispose()
    console.print(f"Activation code for {mask_nik(nik)}: {code}")
    console.print(
        f"Give it to the citizen; it is shown once and works for {settings.activation_code_hours} h at /activate."
    )


@app.command()
def show(ctx: typer.Context, nik: NikArgument, as_json: JsonOption = False) -> None:
    """Status, activation, lockout, second factor and the agencies with access."""
    engine = migrated_engine(ctx)
    try:
        with Session(engine) as session:
            account = operator_actions.summary(session, nik)
            agencies = consent_service.agencies_with_access(session, account.citizen.id)
    except CitizenNotFoundError as exc:
        fail(f"NIK {mask_nik(nik)}: {exc}")
    finally:
        engine.dispose()
    if as_json:
        # The NIK stays masked as on screen; no PIN hash, code hash or TOTP secret is shown.
        print_json(
            {
                "nik": mask_nik(nik),
                "register_status": account.citizen.status,
                "activated_at": iso(account.activated_at),
                "activation_pending": account.activation_pending,
                "failed_attempts": account.failed_attempts,
                "locked_until": iso(account.locked_until),
                "totp_enrolled_at": iso(account.totp_enrolled_at),
                "failed_codes": account.failed_codes,
                "codes_locked_until": iso(account.codes_locked_until),
                "blocked_at": iso(account.blocked_at),
                "agencies_with_access": [
                    {"client_id": client_id, "client_name": name, "claims": list(claims)}
                    for client_id, name, claims in agencies
                ],
            }
        )
        return
    print_record(
        [
            ("register status", account.citizen.status),
            ("activated", _when(account.activated_at)),
            ("activation code pending", "yes" if account.activation_pending else "no"),
            ("failed attempts", str(account.failed_attempts)),
            ("locked until", _when(account.locked_until)),
            ("second factor (TOTP)", _when(account.totp_enrolled_at)),
            ("failed one-time codes", str(account.failed_codes)),
            ("one-time codes locked until", _when(account.codes_locked_until)),
            ("blocked", _when(account.blocked_at)),
            (
                "agencies with access",
                "\n".join(
                    f"{name} ({client_id}): {', '.join(claims)}"
                    for client_id, name, claims in agencies
                )
                or "none",
            ),
        ],
        title=f"Citizen {mask_nik(nik)}",
    )


@app.command()
def unlock(ctx: typer.Context, nik: NikArgument) -> None:
    """Lift a lockout after failed PINs or one-time codes."""
    _operate(ctx, nik, lambda session: operator_actions.unlock(session, nik), "unlocked")


@app.command()
def block(ctx: typer.Context, nik: NikArgument) -> None:
    """Refuse all logins and tokens at once; the citizen's sessions end (each agency gets a
    back-channel logout) and their grants are revoked."""
    pairwise_secret = common.pairwise_secret(ctx)
    _operate(
        ctx,
        nik,
        lambda session: operator_actions.block(session, nik, pairwise_secret=pairwise_secret),
        "blocked",
    )


@app.command("reset-otp")
def reset_otp(ctx: typer.Context, nik: NikArgument) -> None:
    """Remove the citizen's authenticator (a lost or replaced phone) and lift its lock; the
    citizen's sessions end (each agency gets a back-channel logout) and their grants are
    revoked. They log in with the PIN and set up a new authenticator."""
    pairwise_secret = common.pairwise_secret(ctx)
    _operate(
        ctx,
        nik,
        lambda session: operator_actions.reset_second_factor(
            session, nik, pairwise_secret=pairwise_secret
        ),
        "has no authenticator now; their sessions ended",
    )


@app.command()
def unblock(ctx: typer.Context, nik: NikArgument) -> None:
    """Allow logins again."""
    _operate(ctx, nik, lambda session: operator_actions.unblock(session, nik), "unblocked")


def _operate(ctx: typer.Context, nik: str, action: Callable[[Session], object], done: str) -> None:
    engine = migrated_engine(ctx)
    try:
        with Session(engine) as session, session.begin():
            action(session)
    except CitizenNotFoundError as exc:
        fail(f"NIK {mask_nik(nik)}: {exc}")
    finally:
        engine.dispose()
    console.print(f"Citizen {mask_nik(nik)} {done}.")


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"
