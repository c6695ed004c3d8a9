"""Families in the register (the family card's SHDK relationships), on SQLite and PostgreSQL:
validated per row, generated consistently, and an impossible family (two heads, a child older
than the head) refused as a whole after an import."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from itertools import islice

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.registry.families import impossible_families, refuse_impossible
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.models import Citizen
from digital_id.registry.records import InvalidRecordError, RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RejectReport
from digital_id.registry.synthetic import generate_citizens
from tests.factories import citizen_row

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
KK = "3273050101150001"


def member(relationship: str, born: date, sex: str = "L", kk: str = KK) -> dict:
    return citizen_row(birth_date=born, sex=sex, kk_number=kk, family_relationship=relationship)


def imported(engine, tmp_path, rows: list[dict]) -> None:
    CitizenImporter(engine).run(
        iter(enumerate(rows, start=2)),
        RecordValidator(load_regions()),
        RejectReport(tmp_path / "rejects.csv"),
    )


def relationships(engine) -> dict[str, str]:
    with Session(engine) as session:
        return dict(session.execute(select(Citizen.nik, Citizen.family_relationship)).all())


def test_a_relationship_is_optional_and_from_the_shdk_vocabulary():
    validator = RecordValidator(load_regions())
    assert validator.validate(member("anak", date(2015, 1, 1))).record.family_relationship == "ANAK"
    row = citizen_row()
    row.pop("family_relationship", None)
    assert validator.validate(row).record.family_relationship == ""
    with pytest.raises(InvalidRecordError) as refused:
        validator.validate(member("SEPUPU JAUH", date(2015, 1, 1)))
    assert refused.value.field == "family_relationship"


def test_generated_households_are_consistent_families():
    cards: dict[str, list] = defaultdict(list)
    for record in islice(generate_citizens(2000, seed=3), 2000):
        cards[record.kk_number].append(record)
    for members in cards.values():
        heads = [m for m in members if m.family_relationship == "KEPALA KELUARGA"]
        assert len(heads) <= 1
        children = [m for m in members if m.family_relationship == "ANAK"]
        if heads:
            assert all(child.birth_date > heads[0].birth_date for child in children)
        spouses = [m for m in members if m.family_relationship in ("SUAMI", "ISTRI")]
        assert all((s.family_relationship == "ISTRI") == (s.sex == "P") for s in spouses)
    assert any(len(members) > 2 for members in cards.values())


def test_a_consistent_family_stands(engine, tmp_path):
    imported(engine, tmp_path, [
        member("KEPALA KELUARGA", date(1980, 5, 1)),
        member("ISTRI", date(1983, 2, 3), "P"),
        member("ANAK", date(2012, 7, 8), "P"),
    ])  # fmt: skip
    with Session(engine) as session, session.begin():
        assert refuse_impossible(session, now=NOW) == []
    assert sorted(relationships(engine).values()) == ["ANAK", "ISTRI", "KEPALA KELUARGA"]


@pytest.mark.parametrize(
    ("family", "reason"),
    [
        (
            [("KEPALA KELUARGA", date(1980, 5, 1)), ("KEPALA KELUARGA", date(1982, 5, 1))],
            "two heads of the family",
        ),
        (
            [("KEPALA KELUARGA", date(1990, 5, 1)), ("ANAK", date(1985, 1, 1))],
            "a child older than the head of the family",
        ),
    ],
)
def test_an_impossible_family_is_refused_whole(engine, tmp_path, family, reason):
    other = "3273050101150002"
    imported(engine, tmp_path, [
        *(member(relationship, born) for relationship, born in family),
        member("KEPALA KELUARGA", date(1970, 1, 1), kk=other),
        member("ANAK", date(2000, 1, 1), kk=other),
    ])  # fmt: skip
    with Session(engine) as session, session.begin():
        (refused,) = impossible_families(session)
        assert refused.reason == reason
        assert refused.masked != KK
        refuse_impossible(session, now=NOW)
    with Session(engine) as session:
        found = dict(session.execute(select(Citizen.kk_number, Citizen.family_relationship)).all())
        cleared = session.scalars(
            select(Citizen.family_relationship).where(Citizen.kk_number == KK)
        ).all()
    assert set(cleared) == {""}
    assert found[other] in ("KEPALA KELUARGA", "ANAK")  # the other family stands
