"""Logging in with a passkey (no PIN): the assertion (``accounts.passkeys``), then the one
rule (``accounts.standing``) as for a PIN login; what failed is counted and audited as a
wrong PIN is, so rate limits and lockout apply alike."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from digital_id.accounts import passkeys, standing
from digital_id.accounts.lockout import LockoutPolicy, count_failure
from digital_id.accounts.lookup import existing_account
from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_ref
from digital_id.registry.models import Citizen


def log_in(
    session: Session,
    rp: passkeys.RelyingParty,
    credential: str,
    *,
    nik: str,
    policy: LockoutPolicy,
    now: datetime,
    events: EventContext,
) -> tuple[Citizen, passkeys.PasskeyLogin] | None:
    """The citizen a passkey assertion logs in, or None. ``nik``: what the citizen typed
    before choosing the passkey ("" for a discoverable login); the passkey must be theirs.
    A refusal after the passkey was found counts against its citizen's account as a wrong
    PIN from a stranger does, and every refusal is audited."""
    try:
        login = passkeys.authenticate(session, rp, credential, now=now, events=events)
    except passkeys.PasskeyError as refused:
        _failed(session, refused.citizen_id, str(refused), policy=policy, now=now, events=events)
        return None
    citizen = session.get_one(Citizen, login.citizen_id)
    refusal = standing.refusal(session, citizen.id, now=now)
    if (nik and nik != citizen.nik) or refusal is not None:
        reason = "another citizen's passkey" if refusal is None else str(refusal)
        _failed(session, citizen.id, reason, policy=policy, now=now, events=events, count=False)
        return None
    trail.record(
        session,
        "auth:login",
        context=events,
        subject=citizen_ref(citizen.id),
        details={"method": "passkey", "amr": login.amr},
        now=now,
    )
    return citizen, login


def _failed(
    session: Session,
    citizen_id: int | None,
    reason: str,
    *,
    policy: LockoutPolicy,
    now: datetime,
    events: EventContext,
    count: bool = True,
) -> None:
    locked = False
    if citizen_id is not None and count:
        account = existing_account(session, session.get_one(Citizen, citizen_id))
        if account is not None:
            locked = count_failure(session, account, policy, now)
    subject = citizen_ref(citizen_id) if citizen_id is not None else None
    trail.record(
        session,
        "auth:passkey:failed",
        context=events,
        subject=subject,
        details={"reason": reason[:200]},
        now=now,
    )
    if locked:
        trail.record(
            session,
            "auth:locked",
            context=events,
            subject=subject,
            details={"factor": "passkey"},
            now=now,
        )
