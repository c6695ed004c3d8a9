"""Who may act for whom, from the family card, on SQLite and PostgreSQL: a parent (head,
husband or wife) for an unmarried child under 17 on the same card; nobody else, and not once
the child turns 17, marries, or the card's relationships are refused."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.accounts.delegation import children_in_care, may_act_for
from digital_id.registry.families import refuse_impossible
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.models import Citizen
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RejectReport
from tests.factories import citizen_row

TODAY = date(2026, 12, 7)
KK, OTHER_KK = "3273050101150001", "3273050101150002"


@pytest.fixture
def family(engine, tmp_path):
    rows = {
        "father": citizen_row(birth_date=date(1980, 5, 1), kk_number=KK, family_relationship="KEPALA KELUARGA", marital_status="KAWIN"),
        "mother": citizen_row(birth_date=date(1983, 2, 3), sex="P", kk_number=KK, family_relationship="ISTRI", marital_status="KAWIN"),
        "child": citizen_row(birth_date=date(2014, 7, 8), sex="P", kk_number=KK, family_relationship="ANAK", marital_status="BELUM KAWIN"),
        "teen": citizen_row(birth_date=date(2009, 12, 7), kk_number=KK, family_relationship="ANAK", marital_status="BELUM KAWIN"),
        "married": citizen_row(birth_date=date(2010, 1, 1), sex="P", kk_number=KK, family_relationship="ANAK", marital_status="KAWIN"),
        "grandchild": citizen_row(birth_date=date(2020, 1, 1), kk_number=KK, family_relationship="CUCU", marital_status="BELUM KAWIN"),
        "in_law": citizen_row(birth_date=date(1999, 1, 1), kk_number=KK, family_relationship="MENANTU", marital_status="KAWIN"),
        "neighbour": citizen_row(birth_date=date(1979, 1, 1), kk_number=OTHER_KK, family_relationship="KEPALA KELUARGA", marital_status="KAWIN"),
    }  # fmt: skip
    CitizenImporter(engine).run(
        iter(enumerate(rows.values(), start=2)),
        RecordValidator(load_regions(), today=TODAY),
        RejectReport(tmp_path / "r.csv"),
    )
    return {name: row["nik"] for name, row in rows.items()}


def people(session, family) -> dict[str, Citizen]:
    by_nik = {c.nik: c for c in session.scalars(select(Citizen))}
    return {name: by_nik[nik] for name, nik in family.items()}


def test_a_parent_may_act_for_an_unmarried_child_under_17(engine, family):
    with Session(engine) as session:
        p = people(session, family)
        assert may_act_for(p["father"], p["child"], TODAY)
        assert may_act_for(p["mother"], p["child"], TODAY)
        assert [c.nik for c in children_in_care(session, p["mother"], TODAY)] == [family["child"]]


def test_nobody_else_and_not_for_anyone_else(engine, family):
    with Session(engine) as session:
        p = people(session, family)
        assert not may_act_for(p["father"], p["teen"], TODAY)  # 17 today
        assert may_act_for(p["father"], p["teen"], date(2026, 12, 6))  # the day before
        assert not may_act_for(p["father"], p["married"], TODAY)
        assert not may_act_for(p["father"], p["grandchild"], TODAY)  # CUCU, not ANAK
        assert not may_act_for(p["in_law"], p["child"], TODAY)  # MENANTU is not a parent
        assert not may_act_for(p["neighbour"], p["child"], TODAY)  # another card
        assert not may_act_for(p["child"], p["child"], TODAY)
        assert children_in_care(session, p["child"], TODAY) == []


def test_a_refused_family_card_lets_nobody_act(engine, family, tmp_path):
    second_head = citizen_row(
        birth_date=date(1975, 1, 1), kk_number=KK, family_relationship="KEPALA KELUARGA"
    )
    CitizenImporter(engine).run(
        iter([(2, second_head)]), RecordValidator(load_regions()), RejectReport(tmp_path / "s")
    )
    with Session(engine) as session, session.begin():
        refuse_impossible(session, now=datetime(2026, 12, 7, tzinfo=UTC))
    with Session(engine) as session:
        p = people(session, family)
        assert children_in_care(session, p["father"], TODAY) == []
