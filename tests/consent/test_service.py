"""Granting consent, on SQLite and PostgreSQL: two approvals of the same agency at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.clients import service as clients
from digital_id.clients.models import Client
from digital_id.consent import service as consent
from digital_id.consent.models import Consent
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.models import Citizen
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RejectReport
from tests.factories import citizen_row

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
AGENCY = {
    "client_name#id": "Layanan Pajak",
    "client_name#en": "Tax Service",
    "redirect_uris": ["https://pajak.example.go.id/callback"],
    "scope": "openid profile nik address",
}


def a_citizen_and_an_agency(engine, tmp_path) -> tuple[int, int]:
    CitizenImporter(engine).run(
        iter([(2, citizen_row(serial=1))]),
        RecordValidator(load_regions()),
        RejectReport(tmp_path / "r.csv"),
    )
    with Session(engine) as session:
        clients.register(session, AGENCY, production=True, active_algorithms={"RS256"})
        session.commit()
        return session.scalar(select(Citizen.id)), session.scalar(select(Client.id))


def test_two_first_approvals_at_once_make_one_consent_with_both_claims(engine, tmp_path):
    """Both transactions read no consent; the second's INSERT waits for the first, finds the
    row it made, and adds its claims to it instead of failing on the unique constraint."""
    citizen_id, client_pk = a_citizen_and_an_agency(engine, tmp_path)
    second_read, first_added = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def approve_second() -> None:
        try:
            with Session(engine) as session:
                known = consent.stored(session, citizen_id=citizen_id, client_pk=client_pk)
                second_read.set()
                first_added.wait(10)
                grant(session, known, ["address"])
                session.commit()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    def grant(session: Session, known: Consent | None, claims: list[str]) -> None:
        assert known is None  # neither has seen the other's row
        consent.grant_onto(
            session, known, citizen_id=citizen_id, client_pk=client_pk, claims=claims, now=NOW
        )

    second = threading.Thread(target=approve_second)
    second.start()
    assert second_read.wait(10)
    with Session(engine) as session:
        grant(
            session,
            consent.stored(session, citizen_id=citizen_id, client_pk=client_pk),
            ["profile"],
        )
        first_added.set()
        second.join(0.5)  # it is now waiting for this transaction's row, or its write lock
        session.commit()
    second.join(30)
    assert failures == []
    with Session(engine) as session:
        (row,) = session.scalars(select(Consent)).all()
        assert row.claims == ["address", "profile"]
        assert row.revoked_at is None
