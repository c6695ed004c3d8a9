"""A PIN change from a browser session, after the current PIN; other browsers are forgotten."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from digital_id.accounts import standing
from digital_id.accounts.lockout import LockoutPolicy, count_failure
from digital_id.accounts.lookup import existing_account
from digital_id.accounts.models import RecognisedBrowser
from digital_id.accounts.pins import PinHasher, check_chosen_pin
from digital_id.audit import trail
from digital_id.audit.trail import citizen_ref
from digital_id.db.types import utc_now
from digital_id.registry.models import Citizen
from digital_id.sessions.models import BrowserSession


class WrongCurrentPinError(Exception):
    """A PIN change refused: the current PIN given is wrong, or the browser is locked."""


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
    account = existing_account(session, citizen)
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
            count_failure(session, browser or account, policy, now)
        trail.record(
            session,
            "auth:pin:failed",
            actor="citizen",
            subject=citizen_ref(citizen.id),
            details={"reason": "pin_change"},
            now=now,
        )
        raise WrongCurrentPinError("the current PIN is not right")
    check_chosen_pin(new_pin, new_pin_confirm, birth_date=citizen.birth_date)
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
