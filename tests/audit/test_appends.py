"""Appending to an audit chain after the head the process remembers, on SQLite and
PostgreSQL: a transaction's events cost a fixed number of statements however many there
are, and a remembered head that is no longer the row's (moved by another process, or left
by a rollback) is read again, so the chain stays one unbroken line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, delete, event, false, select
from sqlalchemy.orm import Session

from digital_id.audit import trail, verification
from digital_id.audit.chains import pool_for
from digital_id.audit.models import AuditChain, AuditCheckpoint, AuditEvent
from digital_id.db.engine import create_engine_for

# The statements that write a transaction's events to a chain whose head the process knows.
WRITE = {"postgresql": 1, "sqlite": 2}
# When the head it knew had moved: the write whose condition failed (on SQLite, the head's
# update alone), the head read under its lock, the write again.
REWRITE = {"postgresql": 3, "sqlite": 4}


def append(engine: Engine, count: int, tag: str = "test:event") -> None:
    with Session(engine) as session, session.begin():
        for index in range(count):
            trail.record(session, tag, subject=f"citizen:{index}", details={"n": index})


@contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def new_process(engine: Engine) -> Engine:
    """An engine as a newly started process has it: a pool of its own, empty."""
    return create_engine_for(engine.url.render_as_string(hide_password=False))


@pytest.fixture
def process(engine: Engine) -> Iterator[Engine]:
    process = new_process(engine)
    yield process
    process.dispose()


def sequences(engine: Engine) -> list[tuple[int, int]]:
    with Session(engine) as session:
        rows = session.execute(
            select(AuditEvent.chain, AuditEvent.sequence).order_by(
                AuditEvent.chain, AuditEvent.sequence
            )
        )
        return [(row.chain, row.sequence) for row in rows]


def verify(engine: Engine) -> verification.Verification:
    with Session(engine) as session:
        return verification.verify(session)


def test_many_events_in_one_transaction_cost_as_many_statements_as_one(engine, process):
    append(process, 1)  # the process takes its chain and learns its head
    with counted(process) as one:
        append(process, 1)
    with counted(process) as many:
        append(process, 50)
    assert len(one) == len(many) == WRITE[engine.dialect.name], many
    result = verify(engine)
    assert result.intact
    assert (result.count, result.chains) == (52, 1)


def test_a_head_moved_by_another_process_is_read_again_and_the_chain_stays_one_line(
    engine, process
):
    append(process, 2)
    [chain] = pool_for(process).chains()
    other = new_process(engine)
    try:
        # Another process appends to the same chain (as one that adopted it would).
        pool_for(other).adopt(chain)
        pool_for(other).checkin(chain)
        append(other, 3, tag="test:other")
    finally:
        other.dispose()
    with counted(process) as statements:
        append(process, 1, tag="test:after")
    assert len(statements) == REWRITE[engine.dialect.name], statements
    assert sequences(engine) == [(chain, n) for n in range(1, 7)]
    with Session(engine) as session:
        assert session.scalar(select(AuditChain.sequence).where(AuditChain.id == chain)) == 6
    result = verify(engine)
    assert result.intact
    assert (result.count, result.chains) == (6, 1)


def test_a_head_row_moved_back_from_another_connection_is_not_appended_after(engine, process):
    append(process, 3)
    [chain] = pool_for(process).chains()
    with Session(engine) as session, session.begin():
        # The last event and the head both taken back, as by a tail cut with its head: the
        # process still remembers the head it left, which is no longer the row's.
        second = session.execute(
            select(AuditEvent.sequence, AuditEvent.hash).where(
                AuditEvent.chain == chain, AuditEvent.sequence == 2
            )
        ).one()
        session.execute(AuditEvent.__table__.delete().where(AuditEvent.sequence == 3))
        session.execute(
            AuditChain.__table__.update()
            .where(AuditChain.id == chain)
            .values(sequence=second.sequence, hash=second.hash)
        )
    append(process, 1, tag="test:after")
    assert sequences(engine) == [(chain, 1), (chain, 2), (chain, 3)]
    assert verify(engine).intact


def test_a_rolled_back_transaction_leaves_the_next_append_correct(engine, process):
    append(process, 2)
    with Session(process) as session:
        # A change first: SQLite's driver begins its transaction only at a first change, and a
        # savepoint before one would be a transaction of its own.
        session.execute(delete(AuditCheckpoint).where(false()))
        trail.record(session, "test:rolled-back")
        with session.begin_nested():  # written at once, so the head row moves...
            trail.record(session, "test:rolled-back-too")
        session.rollback()  # ...and moves back
    with counted(process) as statements:
        append(process, 1, tag="test:after")
    # The head the rolled-back transaction left was forgotten: read first, not guessed.
    assert len(statements) == 1 + WRITE[engine.dialect.name], statements
    with Session(engine) as session:
        tags = session.scalars(select(AuditEvent.tag).order_by(AuditEvent.sequence)).all()
    assert tags == ["test:event", "test:event", "test:after"]
    result = verify(engine)
    assert result.intact
    assert result.count == 3


def test_a_savepoint_rolled_back_after_appending_leaves_the_rest_of_its_transaction_correct(
    engine, process
):
    append(process, 1)
    with Session(process) as session, session.begin():
        with session.begin_nested():
            trail.record(session, "test:kept")
        savepoint = session.begin_nested()
        trail.record(session, "test:rolled-back")
        savepoint.rollback()
        with session.begin_nested():
            trail.record(session, "test:kept-too")
        trail.record(session, "test:at-commit")
    with Session(engine) as session:
        tags = session.scalars(select(AuditEvent.tag).order_by(AuditEvent.sequence)).all()
    assert tags == ["test:event", "test:kept", "test:kept-too", "test:at-commit"]
    assert verify(engine).intact
    with counted(process) as statements:
        append(process, 2)  # the committed head is remembered again
    assert len(statements) == WRITE[engine.dialect.name]
