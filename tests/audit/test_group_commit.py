"""The group commit of event-only transactions (audit.group_commit), on SQLite and PostgreSQL:
the events of transactions that changed nothing else are written together in one
transaction, each transaction's commit returns only once its events are in the database, an
event that cannot be written fails only its own transaction, and a transaction that read or
wrote anything still writes its events itself, with its changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from digital_id.audit import trail, verification
from digital_id.audit.group_commit import GroupCommitter
from digital_id.audit.models import AuditEvent
from digital_id.registry.models import Citizen

WRITERS = 16


@pytest.fixture
def committer(engine: Engine) -> Iterator[GroupCommitter]:
    committer = GroupCommitter(engine)
    committer.start()
    yield committer
    committer.stop()


def record_alone(engine: Engine, tag: str = "test:event", **details: object) -> None:
    """A transaction whose only change is its event (as a client_credentials token's)."""
    with Session(engine) as session, session.begin():
        trail.record(session, tag, details=dict(details))


def events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def in_threads(count: int, work) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            work(index)
        except BaseException as exc:  # surfaced to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class HeldWriteLock:
    """Another connection holding the lock the committer's next write needs, until
    released: PostgreSQL's lock on the events table, SQLite's one write lock."""

    def __init__(self, engine: Engine) -> None:
        self.connection = engine.connect()
        if engine.dialect.name == "postgresql":
            self.connection.execute(text("LOCK TABLE audit_events IN EXCLUSIVE MODE"))
        else:
            self.connection.exec_driver_sql("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.connection.dialect.name == "sqlite":
            self.connection.exec_driver_sql("ROLLBACK")
        else:
            self.connection.rollback()
        self.connection.close()


def test_events_of_transactions_that_changed_nothing_else_are_committed_together(engine, committer):
    lock = HeldWriteLock(engine)
    first = threading.Thread(target=record_alone, args=(engine, "test:first"))
    first.start()
    wait_for(lambda: committer.taken == 1)  # its batch now waits for the lock; the rest queue
    waiters = threading.Thread(
        target=lambda: in_threads(WRITERS, lambda n: record_alone(engine, number=n))
    )
    waiters.start()
    wait_for(lambda: committer.waiting() == WRITERS)
    lock.release()
    first.join()
    waiters.join()

    assert committer.batches == 2  # the first alone, then the sixteen that waited together
    written = events(engine)
    assert len(written) == WRITERS + 1
    assert {event.chain for event in written[1:]} == {written[1].chain}
    with Session(engine) as session:
        assert verification.verify(session).intact


def test_a_commit_returns_only_once_its_events_are_in_the_database(engine, committer):
    lock = HeldWriteLock(engine)
    done = threading.Event()

    def commit() -> None:
        record_alone(engine, "test:held")
        done.set()

    thread = threading.Thread(target=commit)
    thread.start()
    assert not done.wait(0.3)  # still waiting for its batch, blocked on the lock
    lock.release()
    thread.join()
    assert done.is_set()
    assert [event.tag for event in events(engine)] == ["test:held"]


def test_an_event_that_cannot_be_written_fails_only_its_own_transaction(engine, committer):
    lock = HeldWriteLock(engine)
    first = threading.Thread(target=record_alone, args=(engine, "test:first"))
    first.start()
    wait_for(lambda: committer.taken == 1)
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        if number == 3:
            # A value JSON cannot carry: the batch fails, then each is tried on its own.
            try:
                record_alone(engine, "test:poisoned", when=datetime.now())
            except TypeError as exc:
                failures.append(exc)
        else:
            record_alone(engine, "test:fine", number=number)

    waiters = threading.Thread(target=lambda: in_threads(8, writer))
    waiters.start()
    wait_for(lambda: committer.waiting() == 8)
    lock.release()
    first.join()
    waiters.join()

    assert len(failures) == 1
    tags = [event.tag for event in events(engine)]
    assert tags.count("test:fine") == 7
    assert "test:poisoned" not in tags
    with Session(engine) as session:
        assert verification.verify(session).intact


def test_a_transaction_that_read_something_writes_its_events_itself(engine, committer):
    with Session(engine) as session, session.begin():
        session.scalar(select(func.count()).select_from(Citizen))
        trail.record(session, "test:after-a-read")
    assert committer.batches == 0
    assert [event.tag for event in events(engine)] == ["test:after-a-read"]


def test_a_transaction_that_wrote_commits_its_event_with_its_change(engine, committer):
    with Session(engine) as session, session.begin():
        trail.record(session, "test:with-a-change")
        session.execute(text("UPDATE audit_chains SET sequence = sequence WHERE id = -1"))
    assert committer.batches == 0
    assert [event.tag for event in events(engine)] == ["test:with-a-change"]


def test_a_rolled_back_transaction_submits_nothing(engine, committer):
    with Session(engine) as session:
        session.begin()
        trail.record(session, "test:never")
        session.rollback()
    assert committer.batches == 0
    assert events(engine) == []


def test_once_stopped_a_transaction_writes_its_events_itself(engine):
    committer = GroupCommitter(engine)
    committer.start()
    committer.stop()
    record_alone(engine, "test:after-stop")
    assert committer.batches == 0
    assert [event.tag for event in events(engine)] == ["test:after-stop"]


def test_stopping_writes_what_was_waiting(engine):
    committer = GroupCommitter(engine)
    committer.start()
    lock = HeldWriteLock(engine)
    errors: list[list[BaseException]] = []
    waiters = threading.Thread(
        target=lambda: errors.append(in_threads(4, lambda n: record_alone(engine, number=n)))
    )
    waiters.start()
    wait_for(lambda: committer.taken + committer.waiting() == 4)
    stopping = threading.Thread(target=committer.stop)
    stopping.start()
    lock.release()
    stopping.join()
    waiters.join()
    assert errors == [[]]
    assert len(events(engine)) == 4
