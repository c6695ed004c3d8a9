"""Recording the audit trail's events, each in a hash chain.

``record`` adds an event to the caller's transaction: it commits with the change it records
or not at all. Each event's hash is SHA-256 over the previous hash in its chain and a
canonical JSON of its fields; the chain's head row is locked before the previous hash is
read, so a chain stays one line whoever appends to it.

There are many chains: a transaction appends to a chain its process holds for no other
transaction at that moment (``audit.chains``), so the head row it locks is not contended and
appends run in parallel across connections, workers and servers. ``audit.checkpoints`` signs
all the heads now and then, so a chain cut back or deleted is caught.

The events are chained and written at the very end, as the transaction commits
(``before_commit``): the head row is then locked for one statement, the inserts and the
commit, not for the rest of the request's work, and it is always the last lock a transaction
takes, so it cannot be part of a deadlock. Inside a savepoint an event is written at once,
so that rolling the savepoint back takes it away too.

Events never carry a NIK, a PIN, a code or a token: citizens appear as a pairwise subject or
an internal reference (``citizen:<id>``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, TextClause, bindparam, text
from sqlalchemy import event as orm_events
from sqlalchemy.orm import Session, SessionTransaction

from digital_id.audit.chains import ChainPool, pool_for, take_chain
from digital_id.audit.models import AuditEvent
from digital_id.db.types import UtcDateTime, utc_now
from digital_id.telemetry import metrics

_UNWRITTEN = "digital_id.audit.unwritten"  # the session.info key of events awaiting commit
_CHAIN = "digital_id.audit.chain"  # the session.info key of the chain its transaction holds


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
    event = AuditEvent(
        occurred_at=now or utc_now(),
        tag=tag,
        actor=actor or context.actor,
        client_id=client_id,
        subject=subject,
        request_id=context.request_id,
        ip=context.ip,
        details=details or {},
    )
    if not session.in_transaction():
        # The event belongs to a transaction even if nothing else was done yet, so that a
        # rollback (which ends only a begun transaction) takes it away.
        session.begin()
    if session.in_nested_transaction():
        _append(session, [event])
    else:
        session.info.setdefault(_UNWRITTEN, []).append(event)
    metrics.count_when_committed(session, tag, event.details)
    return event


def _append(session: Session, events: list[AuditEvent]) -> None:
    """Chain ``events`` after the head of the transaction's chain and write them; the head
    row stays locked until the transaction ends, so the fewer round trips it is held for,
    the sooner a chain shared by several transactions (see ``chains.ChainPool.limit``) takes
    the next. On PostgreSQL each event is one statement that locks the head, hashes and
    inserts; on SQLite, whose write lock is held for the whole transaction anyway, the hash
    is computed here between statements. Either way the rows are written as SQL text, not
    through the ORM's unit of work, which cost 1.5 ms of CPU more per event (timed on this
    project's development machine)."""
    connection = session.connection()
    chain = _chain_of(session, connection)
    now = utc_now()  # when the chain was last appended to (see chains.take_chain)
    if connection.dialect.name == "postgresql":
        for event in events:
            event.chain = chain
            if not _append_on_postgresql(connection, event, now):  # the head row is gone
                event.chain = chain = _replace_chain(session, connection)
                _append_on_postgresql(connection, event, now)
        return
    head = _advance_head(connection, chain, len(events), now)
    if head is None:
        chain = _replace_chain(session, connection)
        head = _advance_head(connection, chain, len(events), now)
    assert head is not None  # the row was just made in this transaction
    last_sequence, previous_hash = head
    rows = []
    for sequence, event in enumerate(events, start=last_sequence - len(events) + 1):
        event.chain = chain
        event.sequence = sequence
        event.previous_hash = previous_hash
        event.hash = previous_hash = event_hash(event)
        rows.append({column: getattr(event, column) for column in _EVENT_COLUMNS})
    connection.execute(_insert_events(), rows)
    connection.execute(_SET_HEAD_HASH, {"hash": previous_hash, "chain": chain})


@dataclass
class _Checkout:
    """The chain a session's transaction holds, and whether the transaction made it (then
    the head row goes if the transaction rolls back)."""

    pool: ChainPool
    chain: int
    made: bool
    committing: bool = False


def _chain_of(session: Session, connection: Connection) -> int:
    checkout: _Checkout | None = session.info.get(_CHAIN)
    if checkout is not None:
        return checkout.chain
    pool = pool_for(connection.engine)
    chain = pool.checkout()
    if chain is None:
        chain, made = take_chain(connection, utc_now())
        pool.adopt(chain)
        session.info[_CHAIN] = _Checkout(pool, chain, made=made)
    else:
        session.info[_CHAIN] = _Checkout(pool, chain, made=False)
    return chain


def _replace_chain(session: Session, connection: Connection) -> int:
    """A new chain instead of the held one, whose head row has gone (deleted, or made in a
    savepoint that rolled back)."""
    checkout: _Checkout = session.info[_CHAIN]
    checkout.pool.forget(checkout.chain)
    checkout.chain, checkout.made = take_chain(connection, utc_now())
    checkout.pool.adopt(checkout.chain)
    return checkout.chain


def _append_on_postgresql(connection: Connection, event: AuditEvent, now: datetime) -> bool:
    before, after = _canonical_around_sequence(event)
    parameters = {column: getattr(event, column) for column in _EVENT_FIELDS}
    parameters |= {"chain": event.chain, "before_sequence": before, "after_sequence": after}
    parameters["appended_at"] = now
    row = connection.execute(_append_statement(), parameters).first()
    if row is None:
        return False
    event.sequence, event.previous_hash, event.hash = int(row[0]), str(row[1]), str(row[2])
    return True


_EVENT_FIELDS = (
    "occurred_at", "tag", "actor", "client_id", "subject", "request_id", "ip", "details",
)  # fmt: skip
_EVENT_COLUMNS = ("chain", "sequence", *_EVENT_FIELDS, "previous_hash", "hash")
_ADVANCE_HEAD = text(
    "UPDATE audit_chains SET sequence = sequence + :count, appended_at = :appended_at "
    "WHERE id = :chain RETURNING sequence, hash"
).bindparams(bindparam("appended_at", type_=UtcDateTime))
_SET_HEAD_HASH = text("UPDATE audit_chains SET hash = :hash WHERE id = :chain")


@functools.cache
def _insert_events() -> TextClause:
    return text(
        f"INSERT INTO {AuditEvent.__tablename__} ({', '.join(_EVENT_COLUMNS)}) "  # noqa: S608
        f"VALUES ({', '.join(':' + column for column in _EVENT_COLUMNS)})"
    ).bindparams(*_typed_fields())


@functools.cache
def _append_statement() -> TextClause:
    """Lock the chain's head, link the event to it and insert it, in one PostgreSQL statement. The
    hash is ``event_hash``'s: SHA-256 (PostgreSQL 11+) over the previous hash and the
    canonical JSON, whose only part not known before the lock is the sequence number."""
    fields = ", ".join(_EVENT_FIELDS)
    values = ", ".join(f":{field}" for field in _EVENT_FIELDS)
    return text(
        "WITH head AS (SELECT sequence, hash FROM audit_chains WHERE id = :chain FOR UPDATE), "  # noqa: S608
        "linked AS (SELECT sequence + 1 AS sequence, hash AS previous_hash, "
        "encode(sha256(convert_to(hash || CAST(:before_sequence AS text) "
        "|| CAST(sequence + 1 AS text) || CAST(:after_sequence AS text), 'UTF8')), 'hex') "
        "AS hash FROM head), "
        "advanced AS (UPDATE audit_chains SET sequence = linked.sequence, hash = linked.hash, "
        "appended_at = :appended_at FROM linked WHERE audit_chains.id = :chain) "
        f"INSERT INTO {AuditEvent.__tablename__} "
        f"(chain, sequence, {fields}, previous_hash, hash) "
        f"SELECT :chain, linked.sequence, {values}, linked.previous_hash, linked.hash "
        "FROM linked "
        "RETURNING sequence, previous_hash, hash"
    ).bindparams(*_typed_fields(), bindparam("appended_at", type_=UtcDateTime))


def _typed_fields() -> tuple[BindParameter[Any], ...]:
    columns = AuditEvent.__table__.columns
    return tuple(
        bindparam(field, type_=columns[field].type) for field in ("occurred_at", "details")
    )


def _write_unwritten(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint commits; the events recorded outside it wait for the outer one
    events: list[AuditEvent] | None = session.info.get(_UNWRITTEN)
    if events:
        # The request's own writes first: their locks and constraint errors come before the
        # head.
        session.flush()
        _append(session, list(events))
        events.clear()
    checkout: _Checkout | None = session.info.get(_CHAIN)
    if checkout is not None:
        checkout.committing = True


def _drop_unwritten(session: Session, transaction: SessionTransaction) -> None:
    # After a commit the list is empty; after a rollback or a close its events never happened.
    if transaction.parent is not None:
        return
    events: list[AuditEvent] | None = session.info.get(_UNWRITTEN)
    if events:
        events.clear()
    checkout: _Checkout | None = session.info.pop(_CHAIN, None)
    if checkout is None:
        return
    if checkout.made and not checkout.committing:  # its head row never reached the database
        checkout.pool.forget(checkout.chain)
    else:  # (if the commit itself failed, the next append finds the row gone and replaces it)
        checkout.pool.checkin(checkout.chain)


# On the Session class, once, when this module is imported: any session may record an event,
# and a commit without one costs a dictionary lookup.
orm_events.listen(Session, "before_commit", _write_unwritten)
orm_events.listen(Session, "after_transaction_end", _drop_unwritten)


def event_hash(event: AuditEvent) -> str:
    """SHA-256 over the previous event's hash and the canonical JSON of this event's fields
    (keys sorted, no spaces, ASCII)."""
    before, after = _canonical_around_sequence(event)
    linked = event.previous_hash + before + str(event.sequence) + after
    return hashlib.sha256(linked.encode("ascii")).hexdigest()


def _canonical_around_sequence(event: AuditEvent) -> tuple[str, str]:
    """The canonical JSON of an event's fields, as the text before and after its sequence
    number (the one field PostgreSQL fills in while appending). Keys sort as actor,
    client_id, details, ip, occurred_at, request_id, sequence, subject, tag."""
    before = _canonical(
        {
            "actor": event.actor,
            "client_id": event.client_id,
            "details": event.details,
            "ip": event.ip,
            "occurred_at": event.occurred_at.isoformat(),
            "request_id": event.request_id,
        }
    )
    after = _canonical({"subject": event.subject, "tag": event.tag})
    return before[:-1] + ',"sequence":', "," + after[1:]


def _canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _advance_head(
    connection: Connection, chain: int, count: int, now: datetime
) -> tuple[int, str] | None:
    """Lock the chain's head row and take ``count`` sequence numbers in one statement.
    Returns the last of them and the hash of the event before the first; None if the chain
    has no head row."""
    parameters = {"count": count, "chain": chain, "appended_at": now}
    row = connection.execute(_ADVANCE_HEAD, parameters).first()
    return None if row is None else (int(row[0]), str(row[1]))
