"""Ending what a guardian gave for a child once they may no longer act for them: the child
turned 17 or married, or a register import moved them to another family card or changed
either one's relationship on it.

The one rule (``delegation.may_act_for``, asked through ``accounts.grant_standing``) already
stops the grant's tokens the moment the register says so. This sweep makes it final and
tells the agency: each consent a guardian gave that no longer stands is withdrawn (its grants
revoked, a withdrawal receipt issued, a back-channel logout queued for each session the
agency had), and the end is audited with both parties. The housekeeping thread runs it every
round and ``digital-id registry import`` right after an import; both go through the
guardian-given consents in pages, each page its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, aliased

from digital_id.accounts.delegation import may_act_for, today_in_indonesia
from digital_id.audit import trail
from digital_id.audit.trail import citizen_ref
from digital_id.clients.models import Client
from digital_id.consent.models import Consent
from digital_id.consent.withdrawal import withdraw_consent
from digital_id.keys.store import KeySnapshot
from digital_id.registry.models import Citizen

PAGE = 500

_Guardian = aliased(Citizen, name="guardian")
_Child = aliased(Citizen, name="child")


def end_lapsed_delegations(
    engine: Engine,
    secrets: Callable[[], tuple[KeySnapshot, bytes]],
    *,
    issuer: str,
    now: datetime,
) -> int:
    """Withdraw every live consent a guardian gave for a child they may no longer act for;
    how many were withdrawn. ``secrets``: the signing keys (for the withdrawal receipts) and
    the pairwise secret (for the agency's ``sub``), asked for only when something ends."""
    today = today_in_indonesia(now)
    ended = 0
    after = 0
    while True:
        with Session(engine) as session, session.begin():
            page = session.execute(
                select(Consent.id, _Guardian, _Child, Client)
                .join(_Guardian, _Guardian.id == Consent.given_by_citizen_id)
                .join(_Child, _Child.id == Consent.citizen_id)
                .join(Client, Client.id == Consent.client_id)
                .where(Consent.revoked_at.is_(None), Consent.id > after)
                .order_by(Consent.id)
                .limit(PAGE)
            ).all()
            for _, guardian, child, client in page:
                if may_act_for(guardian, child, today):
                    continue
                keys, pairwise_secret = secrets()
                withdraw_consent(
                    session,
                    keys,
                    issuer=issuer,
                    pairwise_secret=pairwise_secret,
                    citizen_id=child.id,
                    client=client,
                    now=now,
                )
                trail.record(
                    session,
                    "delegation:ended",
                    actor="system",
                    client_id=client.client_id,
                    subject=citizen_ref(child.id),
                    details={"guardian": citizen_ref(guardian.id)},
                    now=now,
                )
                ended += 1
        if len(page) < PAGE:
            return ended
        after = page[-1][0]
