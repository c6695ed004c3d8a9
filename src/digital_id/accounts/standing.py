"""May this citizen authenticate, or receive tokens, now? The one rule every path asks.

PIN login, reuse of a single sign-on session, the step-up to a second factor, ``prompt=none``,
the portal, code redemption, refresh, introspection and UserInfo all ask it, so a
citizen who is blocked, deceased, locked or not activated, an agency that was disabled or a
consent that was withdrawn stops every one of them at once. ``refusal`` reads the facts one
statement at a time; the busiest paths read the same facts (``CITIZEN_FACTS``) inside a
statement of their own (``accounts.pin_login``, ``accounts.session_standing``,
``accounts.grant_standing``) and judge them with the same function as ``refusal`` does,
``citizen_refusal`` (with ``grant_refusal`` adding the agency, consent and session facts). A second copy of this rule, with
one check fewer, is how a blocked citizen kept receiving tokens (issue 13).

A lock belongs to a browser (``accounts.lockout``): the account's lock stops browsers the
citizen never logged in from, a recognised browser's lock stops that browser. So the rule
is asked with the browser in question: the one logging in, the session acting, or the
session a grant came from; a session (and what it gave) is held to the lock of the browser
it logged in on, and without a browser the strangers' lock applies.

The answer is a reason for the audit trail and the logs, never for the citizen or the agency:
pages show one generic failure, and the token endpoints one ``invalid_grant`` or
``invalid_token``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, false, select
from sqlalchemy.orm import Session

from digital_id.accounts.models import CitizenAccount, RecognisedBrowser
from digital_id.clients.agreements import agreement_problem
from digital_id.clients.models import Client
from digital_id.consent import service as consent_service
from digital_id.registry.models import Citizen
from digital_id.sessions.models import BrowserSession


class Refusal(StrEnum):
    """Why a citizen may not authenticate or receive tokens now."""

    UNKNOWN = "unknown"  # no such citizen in the register
    DECEASED = "deceased"  # the register says so
    REGISTER_BLOCKED = "register_blocked"  # the register's own status
    OPERATOR_BLOCKED = "operator_blocked"  # `digital-id citizens block`
    NOT_ACTIVATED = "not_activated"  # no PIN set yet
    LOCKED = "locked"  # too many failed PINs, here (this browser, or strangers), for now
    # Too many failed one-time codes, for now: someone holds the PIN. Kept apart from LOCKED
    # so nothing that eases the PIN lock (a recognised browser, say) eases this one.
    OTP_LOCKED = "otp_locked"
    AGENCY_DISABLED = "agency_disabled"
    # The agency's data-sharing agreement has expired or is suspended (clients.agreements).
    AGREEMENT_NOT_IN_FORCE = "agreement_not_in_force"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    SESSION_ENDED = "session_ended"  # the browser session online access was bound to
    # The guardian behind a grant may no longer act for its citizen (``accounts.delegation``):
    # the child turned 17 or married, or the register changed the family.
    DELEGATION_ENDED = "delegation_ended"


_REGISTER_REFUSALS = {"deceased": Refusal.DECEASED, "blocked": Refusal.REGISTER_BLOCKED}

# What the rule reads about a citizen, as columns a statement selects (``citizen_refusal``
# judges them), from ``citizens`` with the tables ``with_citizen_facts`` joins.
CITIZEN_FACTS = (
    Citizen.status,
    CitizenAccount.pin_hash.is_not(None),
    CitizenAccount.blocked_at,
    CitizenAccount.locked_until,
    RecognisedBrowser.id,
    RecognisedBrowser.locked_until,
    CitizenAccount.otp_locked_until,
)


_Statement = TypeVar("_Statement", bound="Select[*tuple[Any, ...]]")


def with_citizen_facts(statement: _Statement, browser: ColumnElement[bool]) -> _Statement:
    """``statement`` (which reads ``citizens``) with what ``CITIZEN_FACTS`` needs joined in:
    the account, and the recognised browser ``browser`` picks (the strangers' lock if none)."""
    return statement.outerjoin(CitizenAccount, CitizenAccount.citizen_id == Citizen.id).outerjoin(
        RecognisedBrowser, (RecognisedBrowser.citizen_id == Citizen.id) & browser
    )


def citizen_refusal(facts: Sequence[Any] | None, now: datetime) -> Refusal | None:
    """The citizen's part of the rule, over ``CITIZEN_FACTS`` as read (None: no citizen)."""
    if facts is None:
        return Refusal.UNKNOWN
    status, activated, blocked_at, strangers_lock, recognised, browsers_lock, otp_locked_until = (
        facts
    )
    locked_until = strangers_lock if recognised is None else browsers_lock
    if status != "active":
        return _REGISTER_REFUSALS.get(status, Refusal.REGISTER_BLOCKED)
    if blocked_at is not None:
        return Refusal.OPERATOR_BLOCKED
    if not activated:
        return Refusal.NOT_ACTIVATED
    return _lock_refusal(now, locked_until, otp_locked_until)


def grant_refusal(
    citizen_facts: Sequence[Any] | None,
    *,
    now: datetime,
    agency: Client,
    consent_live: bool,
    session_live: bool | None,
    delegation_live: bool | None = None,
) -> Refusal | None:
    """The whole rule for tokens of an agency, over facts a caller read in one statement of
    its own (UserInfo): the same order of reasons as ``refusal``. ``session_live`` is None
    when no browser session is bound (offline access). For a guardian's grant for a child,
    ``citizen_facts`` are the guardian's (who authenticated) and ``delegation_live`` whether
    they may still act for the child (``delegation.may_act_for``); None for anyone else's."""
    return (
        citizen_refusal(citizen_facts, now)
        or agency_refusal(agency, now)
        or (Refusal.DELEGATION_ENDED if delegation_live is False else None)
        or (Refusal.CONSENT_WITHDRAWN if not consent_live else None)
        or (Refusal.SESSION_ENDED if session_live is False else None)
    )


def refusal(
    session: Session,
    citizen_id: int,
    *,
    now: datetime,
    agency: Client | None = None,
    bound_session_id: int | None = None,
    browser_session_id: int | None = None,
    recognised_browser_id: int | None = None,
) -> Refusal | None:
    """None when the citizen may authenticate (and, given ``agency``, receive its tokens) now;
    otherwise why not.

    ``agency``: tokens are for this agency, so it must be enabled and the citizen's consent
    to it must stand. ``bound_session_id``: the browser session that online access lives
    with (offline access passes None), which must not have ended. ``browser_session_id``:
    the session acting, or the one the tokens came from, whose browser's lock applies.
    ``recognised_browser_id``: at a login, the recognised browser it comes from (None for a
    stranger)."""
    return (
        _citizen_refusal(
            session,
            citizen_id,
            now=now,
            browser_session_id=browser_session_id,
            recognised_browser_id=recognised_browser_id,
        )
        or (_agency_refusal(session, citizen_id, agency, now) if agency is not None else None)
        or (_session_refusal(session, bound_session_id) if bound_session_id is not None else None)
    )


def _citizen_refusal(
    session: Session,
    citizen_id: int,
    *,
    now: datetime,
    browser_session_id: int | None,
    recognised_browser_id: int | None,
) -> Refusal | None:
    # One statement on every path (token endpoints included): the browser's row is joined in.
    browser: ColumnElement[bool] = false()
    if recognised_browser_id is not None:
        browser = RecognisedBrowser.id == recognised_browser_id
    elif browser_session_id is not None:
        browser = (
            RecognisedBrowser.id
            == select(BrowserSession.recognised_browser_id)
            .where(BrowserSession.id == browser_session_id)
            .scalar_subquery()
        )
    row = session.execute(
        with_citizen_facts(select(*CITIZEN_FACTS), browser).where(Citizen.id == citizen_id)
    ).one_or_none()
    return citizen_refusal(row, now)


def _lock_refusal(
    now: datetime, locked_until: datetime | None, otp_locked_until: datetime | None
) -> Refusal | None:
    if locked_until is not None and now < locked_until:
        return Refusal.LOCKED
    if otp_locked_until is not None and now < otp_locked_until:
        return Refusal.OTP_LOCKED
    return None


def agency_refusal(agency: Client, now: datetime) -> Refusal | None:
    """The agency's part of the rule: its registration is enabled, and its data-sharing
    agreement is in force (``clients.agreements``)."""
    if not agency.enabled:
        return Refusal.AGENCY_DISABLED
    if agreement_problem(agency, now) is not None:
        return Refusal.AGREEMENT_NOT_IN_FORCE
    return None


def _agency_refusal(
    session: Session, citizen_id: int, agency: Client, now: datetime
) -> Refusal | None:
    if (refused := agency_refusal(agency, now)) is not None:
        return refused
    if consent_service.current(session, citizen_id=citizen_id, client_pk=agency.id) is None:
        return Refusal.CONSENT_WITHDRAWN
    return None


def _session_refusal(session: Session, browser_session_id: int) -> Refusal | None:
    ended = session.scalar(
        select(BrowserSession.ended_at.is_not(None)).where(BrowserSession.id == browser_session_id)
    )
    return Refusal.SESSION_ENDED if ended is None or ended else None
