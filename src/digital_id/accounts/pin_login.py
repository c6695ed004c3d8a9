"""PIN login: the NIK and PIN checked, the failure counted, the browser recognised.

Functions take a session and flush; the caller commits, and must commit after a failed
login too, or the failure would not count. Failures all look the same from outside (unknown
NIK, wrong PIN, not activated, deceased or blocked, locked): one generic outcome, after the
same argon2 work, so neither the message nor the timing tells whether a NIK exists. Wrong
PINs count per browser (``accounts.lockout``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.orm import Session

from digital_id.accounts import standing
from digital_id.accounts.lockout import LockoutPolicy, clear_pin_failures, count_failure
from digital_id.accounts.models import CitizenAccount, RecognisedBrowser
from digital_id.accounts.pins import PinHasher
from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_ref
from digital_id.consent.models import Consent
from digital_id.consent.service import StoredConsent
from digital_id.db.purge import purge_expired
from digital_id.db.types import utc_now
from digital_id.registry.models import Citizen


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
    # After a success for an agency: the citizen's consent to it, read with the citizen.
    consent: StoredConsent | None = None

    @property
    def succeeded(self) -> bool:
        return self.citizen is not None


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
    agency_pk: int | None = None,
) -> LoginOutcome:
    """Check a NIK and PIN; the outcome is recorded in the audit trail (never the NIK).

    ``browser``: the public id of the recognised browser the attempt comes from, as its
    cookie names it for this NIK (``BrowserCookies.read``), or None for a stranger.
    ``agency_pk``: the agency the login is for, whose consent a success then carries."""
    now = now or utc_now()
    outcome = _authenticate(
        session,
        hasher,
        nik=nik,
        pin=pin,
        policy=policy,
        now=now,
        browser=browser,
        agency_pk=agency_pk,
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


def _authenticate(
    session: Session,
    hasher: PinHasher,
    *,
    nik: str,
    pin: str,
    policy: LockoutPolicy,
    now: datetime,
    browser: str | None,
    agency_pk: int | None,
) -> LoginOutcome:
    found = None
    if len(nik) == 16 and nik.isdigit():
        found = _login_facts(session, nik, browser=browser, agency_pk=agency_pk, now=now)
    if found is None:
        hasher.verify(None, pin)
        return LoginOutcome(None, standing.Refusal.UNKNOWN)
    citizen, account, recognised_browser, facts, consent = found
    recognised = recognised_browser is not None
    refused = standing.citizen_refusal(facts, now)
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
            clear_pin_failures(account)  # the stranger's side: this browser is no stranger now
        if hasher.needs_rehash(account.pin_hash):
            account.pin_hash = hasher.hash(pin)
        if session.is_modified(account):  # a login that changed nothing writes nothing
            account.updated_at = now
        renewed = _recognise(session, citizen.id, recognised_browser, policy=policy, now=now)
        session.flush()
        return LoginOutcome(
            citizen,
            "ok",
            citizen_id=citizen.id,
            browser=renewed,
            recognised=recognised,
            consent=consent,
        )
    locked = count_failure(session, recognised_browser or account, policy, now)
    return LoginOutcome(
        None, "wrong_pin", locked_now=locked, citizen_id=citizen.id, recognised=recognised
    )


_LoginFacts = tuple[
    Citizen,
    CitizenAccount | None,
    RecognisedBrowser | None,
    Sequence[Any],
    StoredConsent | None,
]


def _login_facts(
    session: Session, nik: str, *, browser: str | None, agency_pk: int | None, now: datetime
) -> _LoginFacts | None:
    """In one statement: the register's record for ``nik``, its account (None before
    activation), the recognised browser the cookie names while it is recognised for this
    citizen (None: a stranger, another citizen's browser included), the one rule's facts
    about them (``standing.CITIZEN_FACTS``), and, given ``agency_pk``, the citizen's consent
    to that agency (what the flow asks next). None for an unknown NIK."""
    recognised: ColumnElement[bool] = false()
    if browser is not None:
        recognised = (RecognisedBrowser.public_id == browser) & (RecognisedBrowser.expires_at > now)
    statement = standing.with_citizen_facts(
        select(Citizen, CitizenAccount, RecognisedBrowser, *standing.CITIZEN_FACTS), recognised
    ).where(Citizen.nik == nik)
    if agency_pk is not None:
        statement = statement.add_columns(Consent).outerjoin(
            Consent, (Consent.citizen_id == Citizen.id) & (Consent.client_id == agency_pk)
        )
    row: Sequence[Any] | None = session.execute(statement).one_or_none()
    if row is None:
        return None
    facts_end = 3 + len(standing.CITIZEN_FACTS)
    citizen = row[0]
    consent = None
    if agency_pk is not None:
        consent = StoredConsent(citizen_id=citizen.id, client_pk=agency_pk, row=row[facts_end])
    return citizen, row[1], row[2], tuple(row[3:facts_end]), consent


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
        # Rows that lapsed are the housekeeping job's (``purge_lapsed_browsers``), not ours.
        browser = RecognisedBrowser(
            public_id=secrets.token_urlsafe(24),
            citizen_id=citizen_id,
            recognised_at=now,
        )
        session.add(browser)
    clear_pin_failures(browser)
    browser.last_login_at = now
    browser.expires_at = now + policy.recognition
    browser.updated_at = now
    return browser


def purge_lapsed_browsers(session: Session, now: datetime) -> int:
    """Delete up to a batch of recognised browsers whose recognition lapsed (their cookie is
    refused already); how many went."""
    return purge_expired(session, RecognisedBrowser, RecognisedBrowser.expires_at <= now)
