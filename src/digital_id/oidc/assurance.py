"""Levels of assurance (``acr``) and the authentication methods behind them (RFC 8176 ``amr``).

A request names the levels it accepts (``acr_values``, or an ``acr`` claim in the ``claims``
parameter); the lowest of those we support is what it needs. An agency may be registered
with ``default_acr_values``; its lowest level is enforced whatever the request says. A
session below what is needed is stepped up, never reused.

The portal needs the level the citizen has: a citizen with an authenticator must have passed
it in the session (``citizen_level``). A session reaches the substantial level one way only,
``pass_second_factor``, wherever the code is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from digital_id.accounts.lockout import LockoutPolicy
from digital_id.accounts.second_factor import second_factor_enrolled, verify_totp
from digital_id.accounts.totp import TotpCipher
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
    authenticator, the PIN alone is not them."""
    return LOA_SUBSTANTIAL if second_factor_enrolled(session, citizen_id) else LOA_LOW


def pass_second_factor(
    session: Session,
    cipher: TotpCipher,
    browser_session: BrowserSession,
    code: str,
    *,
    policy: LockoutPolicy,
    now: datetime,
) -> bool:
    """Check the citizen's one-time code (completing enrolment when one is pending) and, when
    it is right, step the session up to substantial. A wrong code counts towards the second
    factor's lockout; the caller commits either way."""
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
