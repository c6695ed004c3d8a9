"""Browser sessions on SQLite and PostgreSQL: tokens stored hashed, idle and absolute timeouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from digital_id.registry.importer import CitizenImporter
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RejectReport
from digital_id.registry.service import find_by_nik
from digital_id.sessions import service
from tests.factories import citizen_row

NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
POLICY = service.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))


@pytest.fixture
def citizen_id(engine, session, tmp_path):
    row = citizen_row()
    CitizenImporter(engine).run(
        iter([(2, row)]), RecordValidator(load_regions()), RejectReport(tmp_path / "r.csv")
    )
    citizen = find_by_nik(session, row["nik"])
    assert citizen is not None
    return citizen.id


def start(session, citizen_id, now=NOW):
    browser_session, token = service.start(
        session, citizen_id=citizen_id, acr="urn:digital-id:loa:low", amr=["pin"], now=now
    )
    session.commit()
    return browser_session, token


def test_the_cookie_token_is_stored_only_as_a_hash(session, citizen_id):
    _, token = start(session, citizen_id)
    stored = session.execute(text("SELECT * FROM browser_sessions")).one()
    assert token not in repr(tuple(stored))
    assert service.resume(session, token, policy=POLICY, now=NOW) is not None
    assert service.resume(session, token + "x", policy=POLICY, now=NOW) is None
    assert service.resume(session, None, policy=POLICY, now=NOW) is None


def test_a_session_unused_longer_than_the_idle_timeout_ends(session, citizen_id):
    _, token = start(session, citizen_id)
    assert service.resume(session, token, policy=POLICY, now=NOW + timedelta(minutes=29))
    # Use moved the idle clock on: 29 more minutes is still fine.
    assert service.resume(session, token, policy=POLICY, now=NOW + timedelta(minutes=58))
    assert service.resume(session, token, policy=POLICY, now=NOW + timedelta(minutes=89)) is None
    # Ended for good, even if asked again at a time that would have been fine.
    assert service.resume(session, token, policy=POLICY, now=NOW + timedelta(minutes=59)) is None


def test_a_session_ends_at_the_absolute_timeout_however_busy(session, citizen_id):
    _, token = start(session, citizen_id)
    moment = NOW
    while moment < NOW + timedelta(hours=12):
        assert service.resume(session, token, policy=POLICY, now=moment) is not None
        moment += timedelta(minutes=20)
    assert (
        service.resume(session, token, policy=POLICY, now=NOW + timedelta(hours=12, minutes=1))
        is None
    )


def test_an_ended_session_cannot_be_resumed(session, citizen_id):
    browser_session, token = start(session, citizen_id)
    service.end(session, browser_session, now=NOW)
    session.commit()
    assert service.resume(session, token, policy=POLICY, now=NOW) is None


def test_each_session_has_its_own_public_sid(session, citizen_id):
    first, _ = start(session, citizen_id)
    second, _ = start(session, citizen_id)
    assert first.sid != second.sid
    assert len(first.sid) >= 32
