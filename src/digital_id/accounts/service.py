"""Activation, PIN login and lockout.

Functions take a session and flush; the caller commits, and must commit after a failed
login too, or the failure would not count. Failures all look the same from outside (unknown
NIK, wrong PIN, not activated, deceased or blocked, locked): one generic outcome, after the
same argon2 work, so neither the message nor the timing tells whether a NIK exists.

Wrong PINs are counted per browser: those from browsers the citizen never logged in from
(strangers: anyone who read the NIK off a KTP) on the account, those from a recognised
browser (``accounts.browsers``) on that browser. So a stranger's lock does not keep the
citizen out of their own browsers, and guessing at a recognised browser locks that browser.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from digital_id.accounts import standing, totp
from digital_id.accounts.models import CitizenAccount, RecognisedBrowser
from digital_id.accounts.pins import InvalidPinError, PinHasher, check_pin_rules
from digital_id.accounts.totp import TotpCipher
from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_ref
from digital_id.db.types import utc_now
from digital_id.registry.models import Citizen
from digital_id.registry.service import find_by_nik
from digital_id.sessions.models import BrowserSession

# Crockford's base32 without I, L, O, U: nothing to misread when a code is read out.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_GROUPS = 3
_CODE_GROUP_LENGTH = 4


# Past 2**20 doublings every sane setting is at its cap; stops the multiplication overflowing.
_MOST_DOUBLINGS = 20


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int = 5
    first_lock: timedelta = timedelta(minutes=15)
    longest_lock: timedelta = timedelta(hours=4)
    # How long a browser stays recognised after its latest successful login.
    recognition: timedelta = timedelta(days=90)

    def lock_duration(self, lock_count: int) -> timedelta:
        """15 minutes, then 30, 60, ... for each lock since the last successful login on the
        same side (strangers, or this recognised browser), never longer than ``longest_lock``:
        the stranger's count is not reset by the citizen's logins at their own browsers, so
        without a cap a patient stranger would lock the NIK for weeks."""
        doublings = min(max(lock_count - 1, 0), _MOST_DOUBLINGS)
        return min(self.first_lock * (1 << doublings), self.longest_lock)


@dataclass(frozen=True)
class LoginOutcome:
    citizen: Citizen | None
    # For the audit trail only, never shown: ok, wrong_pin, or the one rule's refusal.
    reason: str
    locked_now: bool = False  # this failure locked the account (or the browser)
    citizen_id: int | None = None  # who failed, when known (for the audit trail only)
    # After a success: the browser, now recognised (new, or renewed) for its cookie.
    browser: RecognisedBrowser | None = None
    # Whether the attempt came from a browser recognised for this citizen (audit trail only).
    recognised: bool = False

    @property
    def succeeded(self) -> bool:
        return self.citizen is not None


class ActivationError(Exception):
    """Activation refused: the code is wrong, used or expired, or the record cannot log in."""


class CitizenNotFoundError(Exception):
    pass


def issue_activation_code(
    session: Session,
    nik: str,
    *,
    now: datetime | None = None,
    valid_for: timedelta = timedelta(hours=24),
) -> str:
    """A one-time code for an active register record; only its hash is stored."""
    now = now or utc_now()
    citizen = find_by_nik(session, nik)
    if citizen is None:
        raise CitizenNotFoundError("no citizen with that NIK in the register")
    if citizen.status != "active":
        raise ActivationError(
            f"the register record is {citizen.status}; only active records can be activated"
        )
    code = "-".join(
        "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_GROUP_LENGTH))
        for _ in range(_CODE_GROUPS)
    )
    account = _account_for(session, citizen, now)
    account.activation_code_hash = _code_hash(code)
    account.activation_expires_at = now + valid_for
    account.updated_at = now
    session.flush()
    trail.record(
        session,
        "citizen:activation_issued",
        actor="operator",
        subject=citizen_ref(citizen.id),
        now=now,
    )
    return code


def activate(
    session: Session,
    hasher: PinHasher,
    *,
    nik: str,
    code: str,
    pin: str,
    pin_confirm: str,
    now: datetime | None = None,
) -> Citizen:
    """Complete activation: the code, then the PIN chosen twice and checked against the rules."""
    now = now or utc_now()
    citizen = find_by_nik(session, nik)
    account = _existing_account(session, citizen)
    presented = _code_hash(_normalise_code(code))
    valid = (
        citizen is not None
        and citizen.status == "active"
        and account is not None
        and account.activation_code_hash is not None
        and account.activation_expires_at is not None
        and now < account.activation_expires_at
        and hmac.compare_digest(account.activation_code_hash, presented)
    )
    if not valid:
        raise ActivationError("the activation code is not valid for this NIK, or has expired")
    assert citizen is not None
    assert account is not None
    if pin != pin_confirm:
        raise InvalidPinError("mismatch", "the two PINs are not the same")
    check_pin_rules(pin, birth_date=citizen.birth_date)
    _set_pin(account, hasher.hash(pin), now)
    session.flush()
    trail.record(
        session, "citizen:activated", actor="citizen", subject=citizen_ref(citizen.id), now=now
    )
    return citizen


def set_pin(
    session: Session, hasher: PinHasher, *, nik: str, pin: str, now: datetime | None = None
) -> Citizen:
    """Set a PIN without a code: for development seeding only (the CLI refuses it in production)."""
    now = now or utc_now()
    citizen = find_by_nik(session, nik)
    if citizen is None:
        raise CitizenNotFoundError("no citizen with that NIK in the register")
    check_pin_rules(pin, birth_date=citizen.birth_date)
    _set_pin(_account_for(session, citizen, now), hasher.hash(pin), now)
    session.flush()
    return citizen


def authenticate(
    session: Session,
    hasher: PinHasher,
    *,
    nik: str,
    pin: str,
    policy: LockoutPolicy,
    now: datetime | None = None,
    events: EventContext | None = None,
    browser: str | None = None,
) -> LoginOutcome:
    """Check a NIK and PIN; the outcome is recorded in the audit trail (never the NIK).

    ``browser``: the public id of the recognised browser the attempt comes from, as its
    cookie names it for this NIK (``BrowserCookies.read``), or None for a stranger."""
    now = now or utc_now()
    outcome = _authenticate(
        session,
        hasher,
        nik=nik,
        pin=pin,
        policy=policy,
        now=now,
        browser=recognised_browser(session, browser, now=now),
    )
    subject = citizen_ref(outcome.citizen_id) if outcome.citizen_id is not None else None
    if outcome.succeeded:
        trail.record(
            session,
            "auth:login",
            context=events,
            subject=subject,
            details={"method": "pin"},
            now=now,
        )
    else:
        trail.record(
            session,
            "auth:pin:failed",
            context=events,
            subject=subject,
            details={"reason": outcome.reason, "recognised_browser": outcome.recognised},
            now=now,
        )
        if outcome.locked_now:
            trail.record(
                session,
                "auth:locked",
                context=events,
                subject=subject,
                details={"recognised_browser": outcome.recognised},
                now=now,
            )
    return outcome


def recognised_browser(
    session: Session, public_id: str | None, *, now: datetime
) -> RecognisedBrowser | None:
    """The recognised browser a cookie names, while it is recognised."""
    if public_id is None:
        return None
    return session.scalars(
        select(RecognisedBrowser).where(
            RecognisedBrowser.public_id == public_id, RecognisedBrowser.expires_at > now
        )
    ).one_or_none()


def _authenticate(
    session: Session,
    hasher: PinHasher,
    *,
    nik: str,
    pin: str,
    policy: LockoutPolicy,
    now: datetime,
    browser: RecognisedBrowser | None,
) -> LoginOutcome:
    citizen = find_by_nik(session, nik) if len(nik) == 16 and nik.isdigit() else None
    if citizen is None:
        hasher.verify(None, pin)
        return LoginOutcome(None, standing.Refusal.UNKNOWN)
    if browser is not None and browser.citizen_id != citizen.id:
        browser = None  # another citizen's: a stranger to this one
    recognised = browser is not None
    refused = standing.refusal(
        session, citizen.id, now=now, recognised_browser_id=browser.id if browser else None
    )
    account = _existing_account(session, citizen)
    if refused is not None or account is None or account.pin_hash is None:
        hasher.verify(None, pin)
        return LoginOutcome(
            None,
            refused or standing.Refusal.NOT_ACTIVATED,
            citizen_id=citizen.id,
            recognised=recognised,
        )
    if hasher.verify(account.pin_hash, pin):
        if browser is None:
            _reset(account)  # the stranger's side: this browser is no stranger now
        if hasher.needs_rehash(account.pin_hash):
            account.pin_hash = hasher.hash(pin)
        account.updated_at = now
        browser = _recognise(session, citizen.id, browser, policy=policy, now=now)
        session.flush()
        return LoginOutcome(
            citizen, "ok", citizen_id=citizen.id, browser=browser, recognised=recognised
        )
    locked = _count_failure(session, browser or account, policy, now)
    return LoginOutcome(
        None, "wrong_pin", locked_now=locked, citizen_id=citizen.id, recognised=recognised
    )


def _recognise(
    session: Session,
    citizen_id: int,
    browser: RecognisedBrowser | None,
    *,
    policy: LockoutPolicy,
    now: datetime,
) -> RecognisedBrowser:
    """After a successful login: the browser is recognised for ``policy.recognition`` more
    (a new one gets its row), and its own failures start again from nothing."""
    if browser is None:
        # Rows that lapsed go as new ones come (a few at a time, nobody waits on them).
        lapsed = select(RecognisedBrowser.id).where(RecognisedBrowser.expires_at <= now).limit(20)
        session.execute(delete(RecognisedBrowser).where(RecognisedBrowser.id.in_(lapsed)))
        browser = RecognisedBrowser(
            public_id=secrets.token_urlsafe(24),
            citizen_id=citizen_id,
            recognised_at=now,
        )
        session.add(browser)
    _reset(browser)
    browser.last_login_at = now
    browser.expires_at = now + policy.recognition
    browser.updated_at = now
    return browser


def _reset(counter: CitizenAccount | RecognisedBrowser) -> None:
    counter.failed_attempts = 0
    counter.lock_count = 0
    counter.locked_until = None


def _count_failure(
    session: Session,
    counter: CitizenAccount | RecognisedBrowser,
    policy: LockoutPolicy,
    now: datetime,
    *,
    factor: str = "",
) -> bool:
    """Count one failure on the stranger's side (the account) or on a recognised browser;
    True when it locked that side. ``factor="otp_"`` counts a wrong one-time code on the
    account's own code counters instead, with the same threshold and doubling."""
    table = type(counter)
    failed_attempts = getattr(table, f"{factor}failed_attempts")
    lock_count_column = getattr(table, f"{factor}lock_count")
    # One atomic UPDATE, so parallel failures in different workers each count.
    failed, lock_count = session.execute(
        update(table)
        .where(table.id == counter.id)
        .values({failed_attempts: failed_attempts + 1, table.updated_at: now})
        .returning(failed_attempts, lock_count_column)
    ).one()
    if failed >= policy.threshold:
        session.execute(
            update(table)
            .where(table.id == counter.id, failed_attempts >= policy.threshold)
            .values(
                {
                    failed_attempts: 0,
                    lock_count_column: lock_count + 1,
                    getattr(table, f"{factor}locked_until"): now
                    + policy.lock_duration(lock_count + 1),
                }
            )
        )
    session.expire_all()
    return bool(failed >= policy.threshold)


def _set_pin(account: CitizenAccount, pin_hash: str, now: datetime) -> None:
    account.pin_hash = pin_hash
    account.activated_at = now
    account.activation_code_hash = None
    account.activation_expires_at = None
    account.failed_attempts = 0
    account.lock_count = 0
    account.locked_until = None
    account.updated_at = now


def _existing_account(session: Session, citizen: Citizen | None) -> CitizenAccount | None:
    if citizen is None:
        return None
    return session.scalars(
        select(CitizenAccount).where(CitizenAccount.citizen_id == citizen.id)
    ).one_or_none()


def _account_for(session: Session, citizen: Citizen, now: datetime) -> CitizenAccount:
    account = _existing_account(session, citizen)
    if account is None:
        account = CitizenAccount(
            citizen_id=citizen.id, failed_attempts=0, lock_count=0, updated_at=now
        )
        session.add(account)
    return account


def _normalise_code(code: str) -> str:
    compact = "".join(code.split()).replace("-", "").upper()
    return "-".join(
        compact[i : i + _CODE_GROUP_LENGTH] for i in range(0, len(compact), _CODE_GROUP_LENGTH)
    )


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


# --- the second factor -------------------------------------------------------------------


def second_factor_enrolled(session: Session, citizen_id: int) -> bool:
    account = session.scalars(
        select(CitizenAccount).where(CitizenAccount.citizen_id == citizen_id)
    ).one_or_none()
    return account is not None and account.totp_secret is not None


def begin_totp_enrolment(
    session: Session, cipher: TotpCipher, citizen: Citizen, *, issuer_name: str, now: datetime
) -> totp.Enrolment:
    """A secret to enrol (the same one until enrolment completes), for the enrolment page."""
    account = _account_for(session, citizen, now)
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
    account = _existing_account(session, citizen)
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
    locked = not enrolling and _count_failure(session, account, policy, now, factor="otp_")
    trail.record(
        session, "auth:otp:failed", actor="citizen", subject=citizen_ref(citizen.id), now=now
    )
    if locked:
        trail.record(
            session,
            "auth:locked",
            actor="citizen",
            subject=citizen_ref(citizen.id),
            details={"factor": "otp"},
            now=now,
        )
    return False


# --- operator actions --------------------------------------------------------------------


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
    citizen = find_by_nik(session, nik)
    if citizen is None:
        raise CitizenNotFoundError("no citizen with that NIK in the register")
    account = _existing_account(session, citizen)
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
    now = now or utc_now()
    citizen, account = _operated(session, nik, now)
    _reset(account)
    _clear_code_failures(account)
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


def set_blocked(
    session: Session, nik: str, blocked: bool, *, now: datetime | None = None
) -> Citizen:
    """Block or unblock logins. From the moment the block commits, the one rule
    (``accounts.standing``) refuses the citizen everywhere; the caller ends their sessions
    and revokes their grants in the same transaction (``sessions.ending.end_citizen_sessions``),
    which tells the agencies."""
    now = now or utc_now()
    citizen, account = _operated(session, nik, now)
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


def _operated(session: Session, nik: str, now: datetime) -> tuple[Citizen, CitizenAccount]:
    citizen = find_by_nik(session, nik)
    if citizen is None:
        raise CitizenNotFoundError("no citizen with that NIK in the register")
    return citizen, _account_for(session, citizen, now)


def change_pin(
    session: Session,
    hasher: PinHasher,
    citizen: Citizen,
    *,
    old_pin: str,
    new_pin: str,
    new_pin_confirm: str,
    policy: LockoutPolicy,
    browser_session: BrowserSession,
    now: datetime | None = None,
) -> None:
    """A new PIN, after the old one, from a browser session. A wrong old PIN counts towards
    the lock of the session's browser (recognised since its login); every other recognised
    browser is forgotten, so a browser that knew the old PIN is a stranger again."""
    now = now or utc_now()
    account = _existing_account(session, citizen)
    browser = (
        session.get(RecognisedBrowser, browser_session.recognised_browser_id)
        if browser_session.recognised_browser_id is not None
        else None
    )
    locked = (
        standing.refusal(session, citizen.id, now=now, browser_session_id=browser_session.id)
        == standing.Refusal.LOCKED
    )
    if account is None or locked or not hasher.verify(account.pin_hash, old_pin):
        if account is not None and not locked:
            _count_failure(session, browser or account, policy, now)
        trail.record(
            session,
            "auth:pin:failed",
            actor="citizen",
            subject=citizen_ref(citizen.id),
            details={"reason": "pin_change"},
            now=now,
        )
        raise ActivationError("the current PIN is not right")
    if new_pin != new_pin_confirm:
        raise InvalidPinError("mismatch", "the two PINs are not the same")
    check_pin_rules(new_pin, birth_date=citizen.birth_date)
    account.pin_hash = hasher.hash(new_pin)
    account.updated_at = now
    forgotten = delete(RecognisedBrowser).where(RecognisedBrowser.citizen_id == citizen.id)
    if browser is not None:
        forgotten = forgotten.where(RecognisedBrowser.id != browser.id)
    session.execute(forgotten)
    session.flush()
    trail.record(
        session, "auth:pin:changed", actor="citizen", subject=citizen_ref(citizen.id), now=now
    )


def remove_totp(session: Session, citizen: Citizen, *, now: datetime | None = None) -> None:
    now = now or utc_now()
    account = _existing_account(session, citizen)
    if account is None or account.totp_secret is None:
        return
    _forget_authenticator(account, now)
    session.flush()
    trail.record(
        session, "auth:otp:removed", actor="citizen", subject=citizen_ref(citizen.id), now=now
    )


def reset_second_factor(session: Session, nik: str, *, now: datetime | None = None) -> Citizen:
    """An operator removes the citizen's authenticator (lost or replaced phone), and with it
    the second factor's failure count and lock. The caller ends the citizen's sessions in the
    same transaction (``sessions.ending.end_citizen_sessions``): whoever holds one may be the
    reason for the reset."""
    now = now or utc_now()
    citizen, account = _operated(session, nik, now)
    _forget_authenticator(account, now)
    session.flush()
    trail.record(
        session, "citizen:otp_reset", actor="operator", subject=citizen_ref(citizen.id), now=now
    )
    return citizen


def _forget_authenticator(account: CitizenAccount, now: datetime) -> None:
    account.totp_secret = None
    account.totp_pending_secret = None
    account.totp_enrolled_at = None
    account.totp_last_step = None
    _clear_code_failures(account)
    account.updated_at = now


def _clear_code_failures(account: CitizenAccount) -> None:
    account.otp_failed_attempts = 0
    account.otp_lock_count = 0
    account.otp_locked_until = None
