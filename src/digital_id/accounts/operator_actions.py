"""What an operator does to a citizen's account: look at it, unlock, block (ending their
sessions and grants) or unblock, reset the second factor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from digital_id.accounts.lockout import clear_code_failures, clear_pin_failures
from digital_id.accounts.lookup import account_for, existing_account, registered_citizen
from digital_id.accounts.models import CitizenAccount, RecognisedBrowser
from digital_id.accounts.second_factor import forget_authenticator
from digital_id.audit import trail
from digital_id.audit.trail import citizen_ref
from digital_id.db.types import utc_now
from digital_id.registry.models import Citizen
from digital_id.sessions.ending import end_citizen_sessions


@dataclass(frozen=True)
class AccountSummary:
    """What an operator sees of a citizen's account (never the PIN or a secret)."""

    citizen: Citizen
    activated_at: datetime | None
    activation_pending: bool
    failed_attempts: int
    locked_until: datetime | None
    totp_enrolled_at: datetime | None
    blocked_at: datetime | None
    failed_codes: int = 0
    codes_locked_until: datetime | None = None


def summary(session: Session, nik: str) -> AccountSummary:
    citizen = registered_citizen(session, nik)
    account = existing_account(session, citizen)
    return AccountSummary(
        citizen=citizen,
        activated_at=account.activated_at if account else None,
        activation_pending=bool(account and account.activation_code_hash),
        failed_attempts=account.failed_attempts if account else 0,
        locked_until=account.locked_until if account else None,
        totp_enrolled_at=account.totp_enrolled_at if account else None,
        blocked_at=account.blocked_at if account else None,
        failed_codes=account.otp_failed_attempts if account else 0,
        codes_locked_until=account.otp_locked_until if account else None,
    )


def unlock(session: Session, nik: str, *, now: datetime | None = None) -> Citizen:
    """Lift every lock after failed PINs or one-time codes: the strangers', each recognised
    browser's and the second factor's."""
    now = now or utc_now()
    citizen, account = _citizen_and_account(session, nik, now)
    clear_pin_failures(account)
    clear_code_failures(account)
    account.updated_at = now
    session.execute(
        update(RecognisedBrowser)
        .where(RecognisedBrowser.citizen_id == citizen.id)
        .values(failed_attempts=0, lock_count=0, locked_until=None, updated_at=now)
    )
    session.flush()
    trail.record(
        session, "citizen:unlocked", actor="operator", subject=citizen_ref(citizen.id), now=now
    )
    return citizen


def block(
    session: Session, nik: str, *, pairwise_secret: bytes, now: datetime | None = None
) -> Citizen:
    """Refuse all logins and tokens at once. From the moment the block commits, the one rule
    (``accounts.standing``) refuses the citizen everywhere; in the same transaction their
    sessions end through the logout path (each agency gets a back-channel logout) and their
    grants are revoked, so lifting the block later brings no old token back."""
    now = now or utc_now()
    citizen = _set_blocked(session, nik, True, now)
    end_citizen_sessions(
        session,
        citizen.id,
        pairwise_secret=pairwise_secret,
        now=now,
        reason="citizen_blocked",
        actor="operator",
    )
    return citizen


def unblock(session: Session, nik: str, *, now: datetime | None = None) -> Citizen:
    """Allow logins again (sessions and grants the block ended stay ended)."""
    return _set_blocked(session, nik, False, now or utc_now())


def _set_blocked(session: Session, nik: str, blocked: bool, now: datetime) -> Citizen:
    citizen, account = _citizen_and_account(session, nik, now)
    account.blocked_at = now if blocked else None
    account.updated_at = now
    session.flush()
    trail.record(
        session,
        "citizen:blocked" if blocked else "citizen:unblocked",
        actor="operator",
        subject=citizen_ref(citizen.id),
        now=now,
    )
    return citizen


def reset_second_factor(
    session: Session, nik: str, *, pairwise_secret: bytes, now: datetime | None = None
) -> Citizen:
    """An operator removes the citizen's authenticator (lost or replaced phone), and with it
    the second factor's failure count and lock. In the same transaction the citizen's sessions
    end through the logout path and their grants are revoked: whoever holds one may be the
    reason for the reset."""
    now = now or utc_now()
    citizen, account = _citizen_and_account(session, nik, now)
    forget_authenticator(account, now)
    session.flush()
    trail.record(
        session, "citizen:otp_reset", actor="operator", subject=citizen_ref(citizen.id), now=now
    )
    end_citizen_sessions(
        session,
        citizen.id,
        pairwise_secret=pairwise_secret,
        now=now,
        reason="second_factor_reset",
        actor="operator",
    )
    return citizen


def _citizen_and_account(
    session: Session, nik: str, now: datetime
) -> tuple[Citizen, CitizenAccount]:
    citizen = registered_citizen(session, nik)
    return citizen, account_for(session, citizen, now)
