"""Levels of assurance (``acr``) and the authentication methods behind them (RFC 8176 ``amr``).

A request names the levels it accepts (``acr_values``, or an ``acr`` claim in the ``claims``
parameter); the lowest of those we support is what it needs. An agency may be registered
with ``default_acr_values``; its lowest level is enforced whatever the request says. A
session below what is needed is stepped up, never reused.

The portal needs the level the citizen has: a citizen with an authenticator must have passed
it in the session (``citizen_level``). A session reaches the substantial level in two ways
only: ``pass_second_factor`` (the one-time code, or a passkey in its place) wherever the
second factor is asked for, and a passkey login (``passkey_login``), which starts there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from digital_id.accounts import passkeys, standing
from digital_id.accounts.lockout import LockoutPolicy
from digital_id.accounts.lookup import existing_account
from digital_id.accounts.second_factor import (
    second_factor_enrolled,
    second_factor_failed,
    verify_totp,
)
from digital_id.accounts.totp import TotpCipher
from digital_id.audit.trail import EventContext
from digital_id.levels import LOA_LOW, LOA_SUBSTANTIAL, METHODS, RANK
from digital_id.oidc.jwt_policy import load_json
from digital_id.oidc.requests import PARAMETER_LIMITS
from digital_id.registry.models import Citizen
from digital_id.sessions import service as sessions
from digital_id.sessions.models import BrowserSession


def required_level(parameters: Mapping[str, str], registration: Mapping[str, Any]) -> str:
    requested = _lowest(_requested(parameters))
    minimum = _lowest(registration.get("default_acr_values") or [])
    return max(requested or LOA_LOW, minimum or LOA_LOW, key=RANK.__getitem__)


def _requested(parameters: Mapping[str, str]) -> list[str]:
    values = parameters.get("acr_values", "").split()
    try:
        claims = load_json(parameters.get("claims") or "{}", max_length=PARAMETER_LIMITS["claims"])
        acr = claims.get("id_token", {}).get("acr") or {}
    except (ValueError, AttributeError):
        return values  # a malformed claims parameter is refused elsewhere
    if isinstance(acr, dict):
        if isinstance(acr.get("value"), str):
            values.append(acr["value"])
        if isinstance(acr.get("values"), list):
            values.extend(v for v in acr["values"] if isinstance(v, str))
    return values


def _lowest(values: Iterable[str]) -> str | None:
    known = [value for value in values if value in RANK]
    return min(known, key=RANK.__getitem__) if known else None


def citizen_level(session: Session, citizen_id: int) -> str:
    """The level the citizen can reach, so the level their own account pages need: with an
    authenticator or a passkey, the PIN alone is not them."""
    if second_factor_enrolled(session, citizen_id) or passkeys.passkeys_of(session, citizen_id):
        return LOA_SUBSTANTIAL
    return LOA_LOW


def pass_second_factor(
    session: Session,
    cipher: TotpCipher,
    browser_session: BrowserSession,
    code: str,
    *,
    policy: LockoutPolicy,
    now: datetime,
    passkey: PasskeyAnswer | None = None,
) -> bool:
    """Check the citizen's one-time code (completing enrolment when one is pending), or their
    passkey in its place (``passkey``), and when it passes step the session up to
    substantial. A failure counts towards the second factor's lockout; the caller commits
    either way."""
    if passkey is not None:
        return _pass_passkey(session, browser_session, passkey, policy=policy, now=now)
    citizen = session.get_one(Citizen, browser_session.citizen_id)
    if not verify_totp(
        session,
        cipher,
        citizen,
        code,
        policy=policy,
        now=now,
        browser_session_id=browser_session.id,
    ):
        return False
    sessions.step_up(
        session, browser_session, acr=LOA_SUBSTANTIAL, amr=METHODS[LOA_SUBSTANTIAL], now=now
    )
    return True


@dataclass(frozen=True)
class PasskeyAnswer:
    """A browser's passkey assertion, and for whom it is checked (the issuer's site)."""

    credential: str
    rp: passkeys.RelyingParty
    events: EventContext


def _pass_passkey(
    session: Session,
    browser_session: BrowserSession,
    answer: PasskeyAnswer,
    *,
    policy: LockoutPolicy,
    now: datetime,
) -> bool:
    citizen = session.get_one(Citizen, browser_session.citizen_id)
    account = existing_account(session, citizen)
    if (
        account is None
        or standing.refusal(session, citizen.id, now=now, browser_session_id=browser_session.id)
        is not None
    ):
        return False
    try:
        login = passkeys.authenticate(
            session,
            answer.rp,
            answer.credential,
            now=now,
            events=answer.events,
            citizen_id=citizen.id,
        )
    except passkeys.PasskeyError:
        second_factor_failed(session, account, policy=policy, now=now, method="passkey")
        return False
    methods = list(dict.fromkeys([*browser_session.amr, *login.amr, "mfa"]))
    sessions.step_up(session, browser_session, acr=LOA_SUBSTANTIAL, amr=methods, now=now)
    return True
