"""Recording the audit trail's events, each in a hash chain.

``record`` adds an event to the caller's transaction: it commits with the change it records
or not at all. Each event's hash is SHA-256 over the previous hash in its chain and a
canonical JSON of its fields. The hashes are computed in the process, after the head it
remembers for its chain, and written on condition that the head row still holds that head;
the write locks the row until the transaction ends, so a chain stays one line whoever
appends to it, and a head that moved meanwhile is read again under the lock.

There are many chains: a transaction appends to a chain its process holds for no other
transaction at that moment (``audit.chains``), so the head row it locks is not contended and
appends run in parallel across connections, workers and servers. ``audit.checkpoints`` signs
all the heads now and then, so a chain cut back or deleted is caught.

A transaction that sent no statement at all (its events are its only change) hands them to
its process's group committer instead, when one runs (``audit.group_commit``), and its commit
returns once theirs has.

The events are chained and written at the very end, as the transaction commits
(``before_commit``), in one statement on PostgreSQL (two on SQLite) whatever their number:
the head row is then locked for that statement and the commit, not for the rest of the
request's work, and it is always the last lock a transaction takes, so it cannot be part of
a deadlock. Inside a savepoint an event is written at once,
so that rolling the savepoint back takes it away too.

Events never carry a NIK, a PIN, a code or a token: citizens appear as a pairwise subject or
an internal reference (``citizen:<id>``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from sqlalchemy import Connection, Engine, TextClause, bindparam, text
from sqlalchemy import event as orm_events
from sqlalchemy.orm import Session, SessionTransaction

from digital_id.audit.chains import ChainPool, Head, pool_for, take_chain
from digital_id.audit.models import AuditEvent
from digital_id.db.types import UtcDateTime, utc_now
from digital_id.telemetry import metrics

_UNWRITTEN = "digital_id.audit.unwritten"  # the session.info key of events awaiting commit
_CHAIN = "digital_id.audit.chain"  # the session.info key of the chain its transaction holds
_SENT = "digital_id.audit.sent"  # the session.info key set once its transaction used a connection

# Per engine, the running group committer's ``submit`` (audit.group_commit), if any.
_group_commits: weakref.WeakKeyDictionary[Engine, Callable[[list[AuditEvent]], bool]] = (
    weakref.WeakKeyDictionary()
)


def group_commit_through(engine: Engine, submit: Callable[[list[AuditEvent]], bool] | None) -> None:
    """From now on, transactions on ``engine`` that sent no statement give their events to
    ``submit`` (which returns once they are committed, or False to decline); None: no more."""
    if submit is None:
        _group_commits.pop(engine, None)
    else:
        _group_commits[engine] = submit


@dataclass(frozen=True)
class EventContext:
    """Who and where, for events recorded while serving a request."""

    actor: str = "system"
    request_id: str | None = None
    ip: str | None = None


def citizen_ref(citizen_id: int) -> str:
    return f"citizen:{citizen_id}"


def citizen_of(reference: object) -> int | None:
    """The citizen id a ``citizen_ref`` names; None for anything else."""
    number = str(reference).removeprefix("citizen:")
    return int(number) if str(reference).startswith("citizen:") and number.isdigit() else None


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


def append_now(session: Session, events: list[AuditEvent]) -> None:
    """Chain and write ``events`` in ``session``'s transaction now (the group committer's
    batches)."""
    _append(session, events)


def _append(session: Session, events: list[AuditEvent]) -> None:
    """Chain ``events`` after the head of the transaction's chain and write them, in one
    statement on PostgreSQL and two on SQLite however many events there are.

    The hashes are computed here, after the head the pool remembers for the chain (a chain
    is held by one transaction of the process at a time); the head row is updated only if
    it still holds that head, which also locks it until the transaction ends, so a chain
    stays one line. If it does not (another process took the chain, a savepoint or a commit
    rolled back, the row is gone), the head is read again under the lock and the events
    linked again: the pool's memory saves a round trip, it is never trusted. The rows are
    written as SQL text, not through the ORM's unit of work, which cost 1.5 ms of CPU more
    per event (timed on this project's development machine)."""
    connection = session.connection()
    checkout = _checkout_of(session, connection)
    now = utc_now()  # when the chain was last appended to (see chains.take_chain)
    for known in (checkout.head, None):
        head = known or _lock_head(connection, checkout, now)
        write = _write_on_postgresql if connection.dialect.name == "postgresql" else _write
        if write(connection, checkout.chain, head, events, now):
            last = events[-1]
            checkout.head = Head(last.sequence, last.hash)
            return
        checkout.head = None
    raise RuntimeError(f"audit chain {checkout.chain}: its locked head moved")  # unreachable


@dataclass
class _Checkout:
    """The chain a session's transaction holds, its head as the transaction last knew it
    (None: read it from the row), whether the transaction made the chain (then the head row
    goes if the transaction rolls back) and how far its commit got."""

    pool: ChainPool
    chain: int
    head: Head | None
    made: bool
    committing: bool = False
    committed: bool = False


def _checkout_of(session: Session, connection: Connection) -> _Checkout:
    checkout: _Checkout | None = session.info.get(_CHAIN)
    if checkout is not None:
        return checkout
    pool = pool_for(connection.engine)
    chain = pool.checkout()
    if chain is None:
        taken = take_chain(connection, utc_now())
        pool.adopt(taken.id)
        checkout = _Checkout(pool, taken.id, taken.head, made=taken.made)
    else:
        checkout = _Checkout(pool, chain, pool.head(chain), made=False)
    session.info[_CHAIN] = checkout
    return checkout


def _lock_head(connection: Connection, checkout: _Checkout, now: datetime) -> Head:
    """The chain's head read from its row, which stays locked; if the row has gone (deleted,
    or made in a savepoint that rolled back), a new chain instead."""
    row = connection.execute(_LOCK_HEAD, {"chain": checkout.chain, "appended_at": now}).first()
    if row is not None:
        return Head(int(row[0]), str(row[1]))
    checkout.pool.forget(checkout.chain)
    taken = take_chain(connection, now)
    checkout.pool.adopt(taken.id)
    checkout.chain, checkout.made = taken.id, taken.made
    return taken.head


@dataclass(frozen=True)
class _Linked:
    """An event's details and all its fields as canonical JSON: the second is the text its
    hash covers after the previous hash."""

    details: str
    fields: str


def _link(events: list[AuditEvent], chain: int, head: Head) -> list[_Linked]:
    """Give each event its place after ``head`` and its hash. Each event's details are
    serialised once, for the hash and for the row."""
    sequence, previous_hash = head
    linked = []
    for event in events:
        sequence += 1
        event.chain, event.sequence, event.previous_hash = chain, sequence, previous_hash
        details = _canonical(event.details)
        before, after = _canonical_around_sequence(event, details)
        linked.append(_Linked(details, before + str(sequence) + after))
        event.hash = previous_hash = _hash(previous_hash, linked[-1].fields)
    return linked


def _write_on_postgresql(
    connection: Connection, chain: int, head: Head, events: list[AuditEvent], now: datetime
) -> bool:
    """The events go as one JSON array, each the canonical JSON its hash covers with the two
    hashes added (hexadecimal, nothing to escape), so nothing is serialised again; this costs
    a third of the client CPU of one array parameter per column (timed on this machine)."""
    linked = _link(events, chain, head)
    rows = ",".join(
        f'{text[:-1]},"previous_hash":"{event.previous_hash}","hash":"{event.hash}"}}'
        for event, text in zip(events, (each.fields for each in linked), strict=True)
    )
    last = events[-1]
    parameters = {
        "chain": chain, "sequence": head.sequence, "hash": head.hash,
        "last_sequence": last.sequence, "last_hash": last.hash, "appended_at": now,
        "events": f"[{rows}]",
    }  # fmt: skip
    written = connection.execute(_append_statement(), parameters).rowcount
    return bool(written == len(events))


def _write(
    connection: Connection, chain: int, head: Head, events: list[AuditEvent], now: datetime
) -> bool:
    """SQLite: move the head if it is still ``head``, then insert the rows (executemany);
    SQLite holds its one write lock for the whole transaction anyway."""
    linked = _link(events, chain, head)
    last = events[-1]
    moved = connection.execute(
        _MOVE_HEAD,
        {
            "chain": chain, "sequence": head.sequence, "hash": head.hash,
            "last_sequence": last.sequence, "last_hash": last.hash, "appended_at": now,
        },
    ).rowcount  # fmt: skip
    if moved != 1:
        return False
    rows = []
    for event, each in zip(events, linked, strict=True):
        row = {column: getattr(event, column) for column in _EVENT_COLUMNS}
        row["details"] = each.details
        rows.append(row)
    connection.execute(_insert_events(), rows)
    return True


_EVENT_FIELDS = (
    "occurred_at", "tag", "actor", "client_id", "subject", "request_id", "ip", "details",
)  # fmt: skip
_EVENT_COLUMNS = ("chain", "sequence", *_EVENT_FIELDS, "previous_hash", "hash")
_HEAD_IS = "WHERE id = :chain AND sequence = :sequence AND hash = :hash"
_MOVE_HEAD = text(
    "UPDATE audit_chains SET sequence = :last_sequence, hash = :last_hash, "  # noqa: S608
    "appended_at = :appended_at " + _HEAD_IS
).bindparams(bindparam("appended_at", type_=UtcDateTime))
# Locks the row on both databases (PostgreSQL's row lock, SQLite's write lock).
_LOCK_HEAD = text(
    "UPDATE audit_chains SET appended_at = :appended_at WHERE id = :chain RETURNING sequence, hash"
).bindparams(bindparam("appended_at", type_=UtcDateTime))


@functools.cache
def _insert_events() -> TextClause:
    """SQLite's insert: the details come as their canonical JSON text."""
    return text(
        f"INSERT INTO {AuditEvent.__tablename__} ({', '.join(_EVENT_COLUMNS)}) "  # noqa: S608
        f"VALUES ({', '.join(':' + column for column in _EVENT_COLUMNS)})"
    ).bindparams(bindparam("occurred_at", type_=UtcDateTime))


@functools.cache
def _append_statement() -> TextClause:
    """PostgreSQL: move the head if it is still the given one (locking its row), and insert
    the events, given as one JSON array, only if it was moved: one statement whatever the
    number of events. The row count says whether the events were written."""
    fields = ", ".join(_EVENT_COLUMNS[1:])
    record = ", ".join(
        f"{column} {_RECORD_TYPES.get(column, 'text')}" for column in _EVENT_COLUMNS[1:]
    )
    return text(
        "WITH head AS (UPDATE audit_chains SET sequence = :last_sequence, "  # noqa: S608
        f"hash = :last_hash, appended_at = :appended_at {_HEAD_IS} RETURNING id) "
        f"INSERT INTO {AuditEvent.__tablename__} (chain, {fields}) "
        f"SELECT head.id, {fields} FROM head "
        f"CROSS JOIN jsonb_to_recordset(CAST(:events AS jsonb)) AS e({record})"
    ).bindparams(bindparam("appended_at", type_=UtcDateTime))


_RECORD_TYPES = {"sequence": "bigint", "occurred_at": "timestamptz", "details": "jsonb"}


def _write_unwritten(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint commits; the events recorded outside it wait for the outer one
    events: list[AuditEvent] | None = session.info.get(_UNWRITTEN)
    if events:
        # The request's own writes first: their locks and constraint errors come before the
        # head.
        session.flush()
        if not _group_committed(session, events):
            _append(session, list(events))
        events.clear()
    checkout: _Checkout | None = session.info.get(_CHAIN)
    if checkout is not None:
        checkout.committing = True


def _group_committed(session: Session, events: list[AuditEvent]) -> bool:
    """Whether ``events`` went through the process's group committer: only for a transaction
    that sent no statement (nothing but its events to commit) on an engine that has one."""
    if session.info.get(_SENT) or not isinstance(session.bind, Engine):
        return False
    submit = _group_commits.get(session.bind)
    return submit is not None and submit(list(events))


def _note_sent(session: Session, _transaction: SessionTransaction, _connection: Connection) -> None:
    session.info[_SENT] = True


def _drop_unwritten(session: Session, transaction: SessionTransaction) -> None:
    # After a commit the list is empty; after a rollback or a close its events never happened.
    if transaction.parent is not None:
        return
    session.info.pop(_SENT, None)
    events: list[AuditEvent] | None = session.info.get(_UNWRITTEN)
    if events:
        events.clear()
    checkout: _Checkout | None = session.info.pop(_CHAIN, None)
    if checkout is None:
        return
    if checkout.made and not checkout.committing:  # its head row never reached the database
        checkout.pool.forget(checkout.chain)
    else:  # (if the commit itself failed, the next append finds the row gone and replaces it)
        # The head is remembered only as committed: after a rollback the next append reads it.
        checkout.pool.checkin(checkout.chain, checkout.head if checkout.committed else None)


def _mark_committed(session: Session) -> None:
    checkout: _Checkout | None = session.info.get(_CHAIN)
    if checkout is not None and session.get_nested_transaction() is None:  # the outermost
        checkout.committed = True


def _forget_rolled_back_head(session: Session, previous: SessionTransaction) -> None:
    # A savepoint's appends rolled back: the head the transaction knew is no longer the row's.
    checkout: _Checkout | None = session.info.get(_CHAIN)
    if checkout is not None and previous.nested:
        checkout.head = None


# On the Session class, once, when this module is imported: any session may record an event,
# and a commit without one costs a dictionary lookup.
orm_events.listen(Session, "after_begin", _note_sent)
orm_events.listen(Session, "before_commit", _write_unwritten)
orm_events.listen(Session, "after_commit", _mark_committed)
orm_events.listen(Session, "after_soft_rollback", _forget_rolled_back_head)
orm_events.listen(Session, "after_transaction_end", _drop_unwritten)


def event_hash(event: AuditEvent) -> str:
    """SHA-256 over the previous event's hash and the canonical JSON of this event's fields
    (keys sorted, no spaces, ASCII)."""
    before, after = _canonical_around_sequence(event, _canonical(event.details))
    return _hash(event.previous_hash, before + str(event.sequence) + after)


def _hash(previous_hash: str, fields: str) -> str:
    return hashlib.sha256((previous_hash + fields).encode("ascii")).hexdigest()


def _canonical_around_sequence(event: AuditEvent, details: str) -> tuple[str, str]:
    """The canonical JSON of an event's fields, given that of its details, as the text
    before and after its sequence number. Written out field by field (keys sort as actor,
    client_id, details, ip, occurred_at, request_id, sequence, subject, tag) so that the
    details are serialised once; each value as ``json.dumps`` with ``ensure_ascii`` writes
    it (``encode_basestring_ascii`` is the function it calls for a string)."""
    if event.occurred_at.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    before = (
        f'{{"actor":{_string(event.actor)},"client_id":{_string(event.client_id)},'
        f'"details":{details},"ip":{_string(event.ip)},'
        f'"occurred_at":{_string(event.occurred_at.isoformat())},'
        f'"request_id":{_string(event.request_id)},"sequence":'
    )
    return before, f',"subject":{_string(event.subject)},"tag":{_string(event.tag)}}}'


def _string(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def _canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
