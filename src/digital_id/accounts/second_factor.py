"""The second factor: enrolling an authenticator app, checking its one-time codes, removing it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digital_id.accounts import standing, totp
from digital_id.accounts.lockout import LockoutPolicy, clear_code_failures, count_failure
from digital_id.accounts.lookup import account_for, existing_account
from digital_id.accounts.models import CitizenAccount
from digital_id.accounts.totp import TotpCipher
from digital_id.audit import trail
from digital_id.audit.trail import citizen_ref
from digital_id.db.types import utc_now
from digital_id.registry.models import Citizen


def second_factor_enrolled(session: Session, citizen_id: int) -> bool:
    account = session.scalars(
        select(CitizenAccount).where(CitizenAccount.citizen_id == citizen_id)
    ).one_or_none()
    return account is not None and account.totp_secret is not None


def begin_totp_enrolment(
    session: Session, cipher: TotpCipher, citizen: Citizen, *, issuer_name: str, now: datetime
) -> totp.Enrolment:
    """A secret to enrol (the same one until enrolment completes), for the enrolment page."""
    account = account_for(session, citizen, now)
    secret = (
        cipher.open(citizen.id, account.totp_pending_secret)
        if account.totp_pending_secret
        else None
    )
    if secret is None:
        secret = totp.new_secret()
        account.totp_pending_secret = cipher.seal(citizen.id, secret)
        account.updated_at = now
        session.flush()
    # The account name an authenticator app shows: never the NIK, just its last four digits.
    return totp.enrolment(secret, account_name=f"NIK …{citizen.nik[-4:]}", issuer_name=issuer_name)


def verify_totp(
    session: Session,
    cipher: TotpCipher,
    citizen: Citizen,
    code: str,
    *,
    policy: LockoutPolicy,
    now: datetime,
    browser_session_id: int | None = None,
) -> bool:
    """Check a one-time code against the enrolled secret, or the pending one (which completes
    enrolment). A code for a time step already used is refused, also when two arrive at once
    (one conditional UPDATE). ``browser_session_id``: the session asking, whose browser's lock
    applies.

    A failure counts towards the second factor's own lockout, with the PIN's threshold and
    lock durations: only a correct code (or an operator) resets it, never a correct PIN, so
    whoever holds the PIN gets a handful of guesses a day instead of thousands."""
    account = existing_account(session, citizen)
    if (
        account is None
        or standing.refusal(session, citizen.id, now=now, browser_session_id=browser_session_id)
        is not None
    ):
        return False
    enrolling = account.totp_secret is None
    sealed = account.totp_pending_secret if enrolling else account.totp_secret
    secret = cipher.open(citizen.id, sealed) if sealed else None
    step = totp.matching_step(secret, code, now=now) if secret else None
    if step is not None:
        accepted = session.execute(
            update(CitizenAccount)
            .where(
                CitizenAccount.id == account.id,
                (CitizenAccount.totp_last_step.is_(None)) | (CitizenAccount.totp_last_step < step),
            )
            .values(
                totp_last_step=step,
                failed_attempts=0,
                lock_count=0,
                otp_failed_attempts=0,
                otp_lock_count=0,
                otp_locked_until=None,
                updated_at=now,
            )
            .returning(CitizenAccount.id)
        ).scalar_one_or_none()
        if accepted is not None:
            if enrolling:
                account.totp_secret = account.totp_pending_secret
                account.totp_pending_secret = None
                account.totp_enrolled_at = now
                trail.record(
                    session,
                    "auth:otp:enrolled",
                    actor="citizen",
                    subject=citizen_ref(citizen.id),
                    now=now,
                )
            trail.record(
                session,
                "auth:otp:passed",
                actor="citizen",
                subject=citizen_ref(citizen.id),
                now=now,
            )
            session.flush()
            session.expire(account)
            return True
    # A wrong code while enrolling guesses nothing (the page shows the secret), so only codes
    # for an enrolled authenticator count towards its lock.
    second_factor_failed(session, account, policy=policy, now=now, counted=not enrolling)
    return False


def second_factor_failed(
    session: Session,
    account: CitizenAccount,
    *,
    policy: LockoutPolicy,
    now: datetime,
    counted: bool = True,
    method: str = "otp",
) -> None:
    """A second factor that did not pass (a wrong one-time code, or a passkey refused in its
    place): counted towards the second factor's own lock (when ``counted``), and audited."""
    locked = counted and count_failure(session, account, policy, now, factor="otp_")
    subject = citizen_ref(account.citizen_id)
    trail.record(session, f"auth:{method}:failed", actor="citizen", subject=subject, now=now)
    if locked:
        trail.record(
            session,
            "auth:locked",
            actor="citizen",
            subject=subject,
            details={"factor": method},
            now=now,
        )


def remove_totp(session: Session, citizen: Citizen, *, now: datetime | None = None) -> None:
    """The citizen removes their own authenticator, from the portal."""
    now = now or utc_now()
    account = existing_account(session, citizen)
    if account is None or account.totp_secret is None:
        return
    forget_authenticator(account, now)
    session.flush()
    trail.record(
        session, "auth:otp:removed", actor="citizen", subject=citizen_ref(citizen.id), now=now
    )


def forget_authenticator(account: CitizenAccount, now: datetime) -> None:
    """No authenticator, enrolled or pending, and no failed codes or lock of its own."""
    account.totp_secret = None
    account.totp_pending_secret = None
    account.totp_enrolled_at = None
    account.totp_last_step = None
    clear_code_failures(account)
    account.updated_at = now
