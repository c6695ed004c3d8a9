"""A browser session resumed for the consent page's answer, read in one statement together
with what that step asks about it: the one rule's facts about its citizen (in the browser it
logged in on) and the citizen's consent row for the agency asking.

``sessions.resume`` followed by ``standing.refusal`` and ``consent.service.stored`` would be
three statements for the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.orm import Session, contains_eager

from digital_id.accounts.models import RecognisedBrowser
from digital_id.accounts.standing import (
    CITIZEN_FACTS,
    Refusal,
    citizen_refusal,
    with_citizen_facts,
)
from digital_id.consent.models import Consent
from digital_id.registry.models import Citizen
from digital_id.sessions import service as sessions
from digital_id.sessions.models import BrowserSession


@dataclass(frozen=True)
class SessionStanding:
    """A live browser session (its citizen loaded), the citizen's part of the one rule as
    ``standing.refusal`` would answer it for this session, and the stored consent row for
    ``client_pk`` (live or withdrawn, as ``consent.service.stored``; None if never given)."""

    browser_session: BrowserSession
    refusal: Refusal | None
    client_pk: int | None
    consent: Consent | None


def resume(
    session: Session,
    token: str | None,
    *,
    client_pk: int | None,
    policy: sessions.SessionPolicy,
    now: datetime,
) -> SessionStanding | None:
    """``sessions.resume`` for the cookie ``token``, with the session's standing and the
    consent to the agency ``client_pk`` (None: no agency known, no consent read) read in the
    same statement. None when there is no live session."""
    if not token:
        return None
    consent_of_agency: ColumnElement[bool] = false()
    if client_pk is not None:
        consent_of_agency = (Consent.citizen_id == BrowserSession.citizen_id) & (
            Consent.client_id == client_pk
        )
    # The browser the session logged in on (its lock applies), as standing.refusal picks it.
    its_browser = RecognisedBrowser.id == BrowserSession.recognised_browser_id
    statement = with_citizen_facts(
        select(BrowserSession, *CITIZEN_FACTS, Consent)
        .join(Citizen, Citizen.id == BrowserSession.citizen_id)
        .options(contains_eager(BrowserSession.citizen)),
        its_browser,
    ).outerjoin(Consent, consent_of_agency)
    row = session.execute(statement.where(sessions.named_by(token))).one_or_none()
    if row is None:
        return None
    browser_session, *facts, consent = row
    live = sessions.still_live(session, browser_session, policy=policy, now=now)
    if live is None:
        return None
    return SessionStanding(live, citizen_refusal(facts, now), client_pk, consent)
