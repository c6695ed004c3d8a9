"""What a citizen sees of the audit trail: releases of their claims, and what happened to
their account while they were away."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_id.audit.models import AuditEvent
from digital_id.audit.trail import citizen_ref


def releases(
    session: Session, citizen_id: int, *, page: int = 1, per_page: int = 20
) -> tuple[list[AuditEvent], bool]:
    """A citizen's claim releases, newest first, one page; and whether older ones remain."""
    rows = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.subject == citizen_ref(citizen_id), AuditEvent.tag == "claims:released")
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .offset((max(page, 1) - 1) * per_page)
        .limit(per_page + 1)
    ).all()
    return list(rows[:per_page]), len(rows) > per_page


# What a citizen is told happened to their account while they were away.
_FAILED_LOGIN_TAGS = ("auth:pin:failed", "auth:otp:failed")
_LOCK_TAG = "auth:locked"


@dataclass(frozen=True)
class WhileAway:
    """Failed logins and locks of a citizen's account since their previous login."""

    previous_login: datetime | None
    failed: int
    locks: int


def while_away(session: Session, citizen_id: int, *, logged_in_at: datetime) -> WhileAway:
    """Since the login before the one at ``logged_in_at``: how many logins failed and how
    many times a lock began (any browser's), for the portal to tell the citizen."""
    subject = citizen_ref(citizen_id)
    previous = session.scalar(
        select(func.max(AuditEvent.occurred_at)).where(
            AuditEvent.subject == subject,
            AuditEvent.tag == "auth:login",
            AuditEvent.occurred_at < logged_in_at,
        )
    )
    counted = select(AuditEvent.tag, func.count()).where(
        AuditEvent.subject == subject, AuditEvent.tag.in_((*_FAILED_LOGIN_TAGS, _LOCK_TAG))
    )
    if previous is not None:
        counted = counted.where(AuditEvent.occurred_at > previous)
    rows = session.execute(counted.group_by(AuditEvent.tag)).all()
    counts: dict[str, int] = {row[0]: row[1] for row in rows}
    return WhileAway(
        previous_login=previous,
        failed=sum(counts.get(tag, 0) for tag in _FAILED_LOGIN_TAGS),
        locks=counts.get(_LOCK_TAG, 0),
    )


def all_releases(session: Session, citizen_id: int) -> list[AuditEvent]:
    """Every claim release of a citizen's, oldest first (their copy of their data)."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.subject == citizen_ref(citizen_id), AuditEvent.tag == "claims:released"
            )
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        )
    )


def last_release_by_agency(session: Session, citizen_id: int) -> dict[str | None, datetime]:
    """When each agency (by client_id) last received a citizen's claims."""
    rows = session.execute(
        select(AuditEvent.client_id, func.max(AuditEvent.occurred_at))
        .where(AuditEvent.subject == citizen_ref(citizen_id), AuditEvent.tag == "claims:released")
        .group_by(AuditEvent.client_id)
    ).all()
    return dict(rows)
