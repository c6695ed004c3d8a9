"""The audit trail on SQLite and PostgreSQL: one unbroken chain that shows any edit, deletion
or insertion, appended in the recording transaction (as it commits), by any number of writers
at once."""

from __future__ import annotations

import threading

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from digital_id.audit import trail, verification
from digital_id.audit.models import AuditEvent
from digital_id.cli import app


def append(engine, count, tag="test:event"):
    with Session(engine) as session, session.begin():
        for index in range(count):
            trail.record(session, tag, subject=f"citizen:{index}", details={"n": index})


def verify(engine):
    with Session(engine) as session:
        return verification.verify(session)


def test_an_untouched_chain_verifies(engine):
    append(engine, 5)
    result = verify(engine)
    assert result.intact
    assert result.count == 5
    assert len(result.head) == 64


def test_an_edited_event_breaks_the_chain_there(engine):
    append(engine, 5)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET tag = 'auth:forged' WHERE sequence = 3"))
    result = verify(engine)
    assert not result.intact
    assert result.broken_at == 3


def test_edited_details_break_the_chain(engine):
    append(engine, 3)
    with Session(engine) as session, session.begin():
        event = session.query(AuditEvent).filter_by(sequence=2).one()
        event.details = {"n": 99}
    assert verify(engine).broken_at == 2


def test_a_deleted_event_breaks_the_chain(engine):
    append(engine, 5)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE sequence = 2"))
    result = verify(engine)
    assert result.broken_at == 2


def test_a_deleted_tail_is_noticed(engine):
    append(engine, 5)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE sequence = 5"))
    assert verify(engine).broken_at == 5


def test_an_inserted_event_breaks_the_chain(engine):
    append(engine, 3)
    with Session(engine) as session:
        events = session.query(AuditEvent).order_by(AuditEvent.sequence).all()
        forged = AuditEvent(
            chain=events[-1].chain,
            sequence=4,
            occurred_at=events[-1].occurred_at,
            tag="consent:granted",
            actor="forger",
            details={},
            previous_hash="f" * 64,
        )
        forged.hash = trail.event_hash(forged)
        session.add(forged)
        session.commit()
    assert verify(engine).broken_at == 4


def test_an_event_is_only_kept_with_the_change_it_records(engine):
    with Session(engine) as session:
        trail.record(session, "consent:granted")
        session.rollback()
        session.commit()  # the same session, later: the rolled-back event stays gone
    append(engine, 1)
    result = verify(engine)
    assert result.intact
    assert result.count == 1


def test_an_event_is_written_as_its_transaction_commits(engine):
    with Session(engine) as session:
        trail.record(session, "consent:granted", subject="citizen:1")
        session.flush()
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0
        session.commit()
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1
    assert verify(engine).count == 1


def test_a_savepoint_rolled_back_takes_its_events_and_leaves_the_others(engine):
    with Session(engine) as session, session.begin():
        trail.record(session, "test:before")
        savepoint = session.begin_nested()
        trail.record(session, "test:in-savepoint")
        savepoint.rollback()
        with session.begin_nested():
            trail.record(session, "test:in-kept-savepoint")
        trail.record(session, "test:after")
    with Session(engine) as session:
        tags = session.scalars(select(AuditEvent.tag).order_by(AuditEvent.sequence)).all()
    assert tags == ["test:in-kept-savepoint", "test:before", "test:after"]
    assert verify(engine).intact


def test_the_database_links_events_exactly_as_verification_recomputes_them(engine):
    # On PostgreSQL the hash is computed by the database; verify recomputes it in Python.
    awkward = {
        "name": 'Siti Nurhaliza \u00e9\u4e2d\U0001f600 "quoted" \\ back',
        "sequence": 0,  # a field named like the top-level one, inside details
        "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
    }
    with Session(engine) as session, session.begin():
        trail.record(session, "test:awkward", actor="client", client_id="dgid_é", details=awkward)
        trail.record(session, "test:plain")
    result = verify(engine)
    assert result.intact
    assert result.count == 2


def test_four_concurrent_writers_keep_one_unbroken_chain(engine):
    errors = []

    def writer():
        try:
            for count in (1, 3, 1, 2, 1, 1, 1):  # transactions of one and of several events
                append(engine, count)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    result = verify(engine)
    assert result.intact
    assert result.count == 40


def test_the_cli_verifies_and_exports(engine, cli_env, tmp_path):
    append(engine, 3)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "3 events" in ok.output
    out = tmp_path / "audit.jsonl"
    exported = runner.invoke(app, ["audit", "export", "--since", "2000-01-01", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    lines = out.read_text().splitlines()
    assert len(lines) == 3
    assert '"hash"' in lines[0]
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET actor = 'x' WHERE sequence = 2"))
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "event 2" in broken.output
