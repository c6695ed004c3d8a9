"""The register import, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from digital_id.registry.importer import CitizenImporter, ImportSummary
from digital_id.registry.models import Citizen
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RegisterFile, RejectReport
from tests.factories import citizen_row, citizen_rows, write_csv, write_jsonl


def run_import(
    engine: Engine,
    path: Path,
    *,
    batch_size: int = 100,
    allow_unknown_region: bool = False,
) -> tuple[ImportSummary, Path]:
    report_path = path.with_name(path.name + ".rejected.csv")
    report = RejectReport(report_path)
    validator = RecordValidator(load_regions(), allow_unknown_region=allow_unknown_region)
    with RegisterFile(path) as source:
        summary = CitizenImporter(engine, batch_size=batch_size).run(
            source.rows(), validator, report
        )
    report.close()
    return summary, report_path


def citizen_count(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Citizen)) or 0


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_valid_rows_are_inserted_with_version_one(engine, tmp_path):
    rows = citizen_rows(250)
    summary, report = run_import(engine, write_csv(tmp_path / "register.csv", rows))

    assert (summary.inserted, summary.updated, summary.unchanged, summary.rejected) == (
        250,
        0,
        0,
        0,
    )
    assert summary.batches == 3
    assert not report.exists()
    with Session(engine) as session:
        citizen = session.scalars(select(Citizen).where(Citizen.nik == rows[0]["nik"])).one()
        assert citizen.record_version == 1
        assert citizen.birth_date == date(1950, 1, 1)
        assert citizen.full_name == "BUDI SANTOSO"
        assert citizen.rt == "003"
        assert citizen.updated_at.tzinfo is not None


def test_reimporting_the_same_file_changes_nothing(engine, tmp_path):
    path = write_csv(tmp_path / "register.csv", citizen_rows(120))
    run_import(engine, path)
    with Session(engine) as session:
        before = {c.nik: (c.record_version, c.updated_at) for c in session.scalars(select(Citizen))}

    summary, _ = run_import(engine, path)

    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 0, 120)
    with Session(engine) as session:
        after = {c.nik: (c.record_version, c.updated_at) for c in session.scalars(select(Citizen))}
    assert after == before


def test_a_changed_row_bumps_record_version_and_only_that_row(engine, tmp_path):
    rows = citizen_rows(10)
    run_import(engine, write_csv(tmp_path / "first.csv", rows))
    rows[3] = {**rows[3], "street": "Jl. Sudirman No. 1", "marital_status": "CERAI HIDUP"}

    summary, _ = run_import(engine, write_csv(tmp_path / "second.csv", rows))

    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 1, 9)
    with Session(engine) as session:
        versions = {c.nik: c.record_version for c in session.scalars(select(Citizen))}
        changed = session.scalars(select(Citizen).where(Citizen.nik == rows[3]["nik"])).one()
    assert versions.pop(rows[3]["nik"]) == 2
    assert set(versions.values()) == {1}
    assert changed.street == "Jl. Sudirman No. 1"
    assert changed.marital_status == "CERAI HIDUP"
    assert changed.updated_at > changed.created_at


def test_normalised_spelling_is_not_a_change(engine, tmp_path):
    row = citizen_row()
    run_import(engine, write_csv(tmp_path / "a.csv", [row]))
    respelled = {
        **row,
        "religion": "islam",
        "rt": "3",
        "full_name": "  BUDI   SANTOSO ",
        "status": "",
    }

    summary, _ = run_import(engine, write_csv(tmp_path / "b.csv", [respelled]))

    assert (summary.updated, summary.unchanged) == (0, 1)


def test_invalid_rows_are_reported_with_masked_nik_and_never_stop_valid_ones(engine, tmp_path):
    good = citizen_rows(5)
    bad_serial = citizen_row(serial=1, birth_date=date(2001, 1, 1))
    bad_serial["nik"] = bad_serial["nik"][:12] + "0000"
    wrong_sex = citizen_row(sex="P")
    wrong_sex["sex"] = "L"
    rows = [
        good[0],
        bad_serial,
        good[1],
        wrong_sex,
        good[2],
        citizen_row(religion="JEDI"),
        *good[3:],
    ]
    path = write_csv(tmp_path / "register.csv", rows)

    summary, report_path = run_import(engine, path)

    assert (summary.inserted, summary.rejected) == (5, 3)
    assert citizen_count(engine) == 5
    report = read_report(report_path)
    assert [r["line"] for r in report] == ["3", "5", "7"]
    assert report[0] == {
        "line": "3",
        "nik": "************0000",
        "field": "nik",
        "reason": "serial 0000 is not allowed",
    }
    assert report[1]["reason"] == "digits 7-8 encode sex P but the record says L"
    assert report[2]["field"] == "religion"
    text = report_path.read_text()
    for row in rows:
        assert row["nik"] not in text, "a full NIK leaked into the error report"


def test_a_second_row_for_the_same_nik_is_rejected_not_silently_applied(engine, tmp_path):
    row = citizen_row()
    path = write_csv(tmp_path / "register.csv", [row, {**row, "full_name": "SOMEONE ELSE"}])

    summary, report_path = run_import(engine, path)

    assert (summary.inserted, summary.rejected) == (1, 1)
    assert read_report(report_path)[0]["reason"] == "appears on an earlier line of this file"
    with Session(engine) as session:
        assert session.scalars(select(Citizen.full_name)).one() == "BUDI SANTOSO"


def test_json_lines_import_gives_the_same_register_as_csv(engine, tmp_path):
    rows = citizen_rows(30)
    jsonl_rows = [{**row, "rt": int(row["rt"])} for row in rows]  # JSON may carry numbers
    summary, _ = run_import(engine, write_jsonl(tmp_path / "register.jsonl", jsonl_rows))
    assert summary.inserted == 30

    summary, _ = run_import(engine, write_csv(tmp_path / "register.csv", rows))
    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 0, 30)


def test_malformed_json_lines_are_rejected_rows(engine, tmp_path):
    path = tmp_path / "register.jsonl"
    write_jsonl(path, citizen_rows(2))
    with path.open("a", encoding="utf-8") as handle:
        handle.write("{not json}\n[1, 2]\n")
        handle.write('{"nik": "3273052010900001", "planet": "Mars"}\n')

    summary, report_path = run_import(engine, path)

    assert (summary.inserted, summary.rejected) == (2, 3)
    reasons = [r["reason"] for r in read_report(report_path)]
    assert reasons[0].startswith("not a JSON object")
    assert reasons[1] == "not a JSON object"
    assert reasons[2] == "unknown field 'planet'"


def test_csv_row_with_wrong_field_count_is_rejected(engine, tmp_path):
    path = write_csv(tmp_path / "register.csv", citizen_rows(2))
    with path.open("a", encoding="utf-8") as handle:
        handle.write("3273052010900001,too,few\n")

    summary, report_path = run_import(engine, path)

    assert (summary.inserted, summary.rejected) == (2, 1)
    assert read_report(report_path)[0]["reason"] == "has 3 fields but the header has 18"


def test_unknown_region_is_accepted_only_when_allowed_and_counted(engine, tmp_path):
    retired_district = "329999"
    rows = [*citizen_rows(3), citizen_row(district_code=retired_district)]
    path = write_csv(tmp_path / "register.csv", rows)

    refused, report_path = run_import(engine, path)
    assert (refused.inserted, refused.rejected, refused.unknown_region) == (3, 1, 0)
    assert "329999" in read_report(report_path)[0]["reason"]

    allowed, _ = run_import(engine, path, allow_unknown_region=True)
    assert (allowed.inserted, allowed.unchanged, allowed.unknown_region) == (1, 3, 1)


def _interrupting(rows: Iterator[tuple[int, dict[str, Any]]], after: int, exc: BaseException):
    for index, item in enumerate(rows):
        if index == after:
            raise exc
        yield item


@pytest.mark.parametrize(
    "exc", [KeyboardInterrupt(), RuntimeError("disk on fire")], ids=["ctrl-c", "crash"]
)
def test_an_interrupted_import_keeps_committed_batches_and_no_half_batch(engine, tmp_path, exc):
    path = write_csv(tmp_path / "register.csv", citizen_rows(100))
    validator = RecordValidator(load_regions())
    importer = CitizenImporter(engine, batch_size=30)
    report = RejectReport(tmp_path / "rejected.csv")

    with RegisterFile(path) as source:
        if isinstance(exc, KeyboardInterrupt):
            summary = importer.run(_interrupting(source.rows(), 75, exc), validator, report)
            assert summary.interrupted
            assert (summary.rows_read, summary.inserted) == (75, 60)
        else:
            with pytest.raises(RuntimeError):
                importer.run(_interrupting(source.rows(), 75, exc), validator, report)

    assert citizen_count(engine) == 60  # two batches of 30; the 15 rows in flight are gone

    resumed, _ = run_import(engine, path)
    assert (resumed.inserted, resumed.unchanged) == (40, 60)
    assert citizen_count(engine) == 100
