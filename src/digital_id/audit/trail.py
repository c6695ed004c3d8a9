"""Recording, verifying and exporting the audit trail.

``record`` adds an event inside the caller's transaction: it commits with the change it
records or not at all. Each event's hash is SHA-256 over the previous hash and a canonical
JSON of its fields; the head row is locked before the previous hash is read, so appends are
serialised across workers and the chain stays one line.

Events never carry a NIK, a PIN, a code or a token: citizens appear as a pairwise subject or
an internal reference (``citizen:<id>``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digital_id.audit.models import AuditEvent, AuditHead
from digital_id.db.types import utc_now
from digital_id.telemetry import metrics

GENESIS = "0" * 64


@dataclass(frozen=True)
class EventContext:
    """Who and where, for events recorded while serving a request."""

    actor: str = "system"
    request_id: str | None = None
    ip: str | None = None


def citizen_ref(citizen_id: int) -> str:
    return f"citizen:{citizen_id}"


def record(
    session: Session,
    tag: str,
    *,
    context: EventContext | None = None,
    actor: str | None = None,
    client_id: str | None = None,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    context = context or EventContext()
    sequence, previous_hash = _advance_head(session)
    event = AuditEvent(
        sequence=sequence,
        occurred_at=now or utc_now(),
        tag=tag,
        actor=actor or context.actor,
        client_id=client_id,
        subject=subject,
        request_id=context.request_id,
        ip=context.ip,
        details=details or {},
        previous_hash=previous_hash,
    )
    event.hash = event_hash(event)
    session.add(event)
    session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(hash=event.hash),
        execution_options={"synchronize_session": False},
    )
    session.flush()
    metrics.count_when_committed(session, tag, event.details)
    return event


def event_hash(event: AuditEvent) -> str:
    body = {
        "sequence": event.sequence,
        "occurred_at": event.occurred_at.isoformat(),
        "tag": event.tag,
        "actor": event.actor,
        "client_id": event.client_id,
        "subject": event.subject,
        "request_id": event.request_id,
        "ip": event.ip,
        "details": event.details,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((event.previous_hash + canonical).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Verification:
    count: int
    head: str
    broken_at: int | None = None  # the sequence number of the first bad link
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def verify(session: Session, *, batch: int = 5000) -> Verification:
    """Walk the chain from the start; report the first broken link, or the count and head."""
    previous = GENESIS
    expected_sequence = 1
    count = 0
    for event in _in_order(session, batch):
        if event.sequence != expected_sequence:
            return Verification(count, previous, expected_sequence, "an event is missing")
        if event.previous_hash != previous:
            return Verification(
                count, previous, event.sequence, "the link to the previous event is broken"
            )
        if event_hash(event) != event.hash:
            return Verification(count, previous, event.sequence, "the event was altered")
        previous = event.hash
        expected_sequence += 1
        count += 1
    head = session.get(AuditHead, 1, populate_existing=True)
    if head is None and count:
        return Verification(count, previous, count + 1, "the chain's head record is missing")
    if head is not None and (head.sequence != count or head.hash != previous):
        return Verification(count, previous, count + 1, "events after this one were removed")
    return Verification(count, previous)


def export(session: Session, *, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    query = select(AuditEvent).order_by(AuditEvent.sequence)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    for event in session.scalars(query.execution_options(yield_per=1000)):
        yield {
            "sequence": event.sequence,
            "occurred_at": event.occurred_at.isoformat(),
            "tag": event.tag,
            "actor": event.actor,
            "client_id": event.client_id,
            "subject": event.subject,
            "request_id": event.request_id,
            "ip": event.ip,
            "details": event.details,
            "previous_hash": event.previous_hash,
            "hash": event.hash,
        }


def _advance_head(session: Session) -> tuple[int, str]:
    """Lock the head row and take the next sequence number: one statement, so the lock is
    held for as short a time as the chain allows (every audited transaction in every worker
    waits for it). Returns the new event's sequence and the previous event's hash."""
    advance = (
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(sequence=AuditHead.sequence + 1)
        .returning(AuditHead.sequence, AuditHead.hash)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(advance).first()
    if row is None:
        # No head yet (the migration creates it; an emptied table may lack it). Whoever
        # inserts first wins; the others wait for that insert and then lock the row.
        insert = (
            postgresql.insert(AuditHead)
            if session.get_bind().dialect.name == "postgresql"
            else sqlite.insert(AuditHead)
        )
        session.execute(
            insert.values(id=1, sequence=0, hash=GENESIS).on_conflict_do_nothing(
                index_elements=["id"]
            )
        )
        row = session.execute(advance).one()
    return int(row[0]), str(row[1])


def _in_order(session: Session, batch: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.sequence > last)
            .order_by(AuditEvent.sequence)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].sequence
        session.expunge_all()


def releases(
    session: Session, citizen_id: int, *, page: int = 1, per_page: int = 20
) -> tuple[list[AuditEvent], bool]:
    """A citizen's claim releases, newest first, one page; and whether older ones remain."""
    rows = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.subject == citizen_ref(citizen_id), AuditEvent.tag == "claims:released")
        .order_by(AuditEvent.sequence.desc())
        .offset((max(page, 1) - 1) * per_page)
        .limit(per_page + 1)
    ).all()
    return list(rows[:per_page]), len(rows) > per_page
