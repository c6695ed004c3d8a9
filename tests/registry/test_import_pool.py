"""The register import validating on every core: the same outcome as validating in-process."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from digital_id.registry.importer import CitizenImporter, ImportSummary
from digital_id.registry.models import Citizen
from digital_id.registry.records import RECORD_FIELDS, RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import ImportFileError, RegisterFile, RejectReport
from tests.factories import citizen_row, citizen_rows, write_csv, write_jsonl

CHUNK_BYTES = 2_000  # about a dozen rows: every file below spans many chunks


def pooled(engine: Engine, **options: Any) -> CitizenImporter:
    return CitizenImporter(engine, workers=2, pool_min_bytes=0, chunk_bytes=CHUNK_BYTES, **options)


def in_process(engine: Engine, **options: Any) -> CitizenImporter:
    return CitizenImporter(engine, workers=1, **options)


def import_with(
    importer: CitizenImporter, path: Path, *, allow_unknown_region: bool = False
) -> tuple[ImportSummary, str]:
    report = RejectReport(path.with_name(path.name + ".rejected.csv"))
    validator = RecordValidator(load_regions(), allow_unknown_region=allow_unknown_region)
    with RegisterFile(path) as source:
        summary = importer.import_file(source, validator, report)
    report.close()
    return summary, report.path.read_text() if report.written else ""


def register(engine: Engine) -> dict[str, tuple[Any, ...]]:
    with Session(engine) as session:
        return {
            c.nik: (*(getattr(c, name) for name in RECORD_FIELDS), c.record_version)
            for c in session.scalars(select(Citizen))
        }


def empty(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(Citizen.__table__.delete())


@pytest.fixture
def postgresql(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("the pool feeds PostgreSQL's COPY; SQLite always validates in-process")
    return engine


def messy_rows() -> list[dict[str, Any]]:
    """Valid rows among every kind of rejection, and a NIK repeated chunks apart."""
    rows = citizen_rows(60)
    bad_serial = citizen_row(serial=1, birth_date=date(2001, 1, 1))
    bad_serial["nik"] = bad_serial["nik"][:12] + "0000"
    wrong_sex = citizen_row(sex="P")
    wrong_sex["sex"] = "L"
    rows[5:5] = [bad_serial, wrong_sex, citizen_row(religion="JEDI")]
    rows[10] = {**rows[10], "street": 'Jl. "Baru" No. 3\\A'}  # quotes and a backslash
    rows[11] = {**rows[11], "street": "Jl. Baru\nGang 2"}  # a CSV row over two lines: rejected
    rows[12] = {**rows[12], "street": "Jl.\tMerdeka"}  # a control character: rejected
    rows.insert(40, {**rows[2], "full_name": "SOMEONE ELSE"})  # same NIK, chunks later
    rows.insert(41, {**rows[41], "nik": " " + rows[41]["nik"] + " "})  # same NIK, spaced
    rows.append(citizen_row(district_code="329999"))  # a retired district
    return rows


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
@pytest.mark.parametrize("allow_unknown_region", [False, True])
def test_the_pool_imports_and_reports_exactly_what_in_process_validation_does(
    postgresql, tmp_path, file_format, allow_unknown_region
):
    rows = messy_rows()
    path = tmp_path / f"register.{file_format}"
    if file_format == "csv":
        write_csv(path, rows)
        with path.open("a", encoding="utf-8") as handle:
            handle.write("3273052010900001,too,few\n")
    else:
        write_jsonl(path, rows)
        with path.open("a", encoding="utf-8") as handle:
            handle.write('{not json}\n\n{"nik": "3273052010900001", "planet": "Mars"}\n')

    expected, expected_report = import_with(
        in_process(postgresql), path, allow_unknown_region=allow_unknown_region
    )
    expected_register = register(postgresql)
    empty(postgresql)
    summary, report = import_with(
        pooled(postgresql, batch_size=7), path, allow_unknown_region=allow_unknown_region
    )

    assert summary.rejected >= 7
    assert (summary.rows_read, summary.inserted, summary.rejected, summary.unknown_region) == (
        expected.rows_read,
        expected.inserted,
        expected.rejected,
        expected.unknown_region,
    )
    assert report == expected_report
    assert register(postgresql) == expected_register
    assert summary.batches == -(-summary.inserted // 7)


def test_the_pool_upserts_reimports_and_withdraws_like_the_row_by_row_import(postgresql, tmp_path):
    rows = citizen_rows(80)
    first, _ = import_with(pooled(postgresql), write_csv(tmp_path / "a.csv", rows))
    before = register(postgresql)
    again, _ = import_with(pooled(postgresql), write_csv(tmp_path / "a.csv", rows))
    assert (first.inserted, again.inserted, again.updated, again.unchanged) == (80, 0, 0, 80)
    assert register(postgresql) == before

    rows[3] = {**rows[3], "occupation": "GURU"}
    rows[50] = {**rows[50], "status": "blocked"}
    withdrawn: list[list[int]] = []
    importer = pooled(postgresql, on_withdrawn=lambda _session, ids: withdrawn.append(ids))
    changed, _ = import_with(importer, write_csv(tmp_path / "b.csv", rows))

    assert (changed.inserted, changed.updated, changed.unchanged) == (0, 2, 78)
    after = register(postgresql)
    assert {nik for nik in after if after[nik] != before[nik]} == {rows[3]["nik"], rows[50]["nik"]}
    assert after[rows[3]["nik"]][-1] == 2
    with Session(postgresql) as session:
        blocked = session.scalars(select(Citizen.id).where(Citizen.status == "blocked")).one()
    assert withdrawn == [[blocked]]


def test_a_byte_order_mark_opening_a_json_lines_file_is_not_part_of_its_first_row(
    postgresql, tmp_path
):
    path = tmp_path / "register.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in citizen_rows(30)).encode()
    )
    summary, report = import_with(pooled(postgresql), path)
    assert (summary.inserted, summary.rejected, report) == (30, 0, "")


def test_text_that_is_not_utf8_midway_stops_the_pool_import_and_keeps_earlier_batches(
    postgresql, tmp_path
):
    path = write_csv(tmp_path / "register.csv", citizen_rows(100))
    with path.open("ab") as handle:
        handle.write(b"\xff\xfe broken\n")
    with pytest.raises(ImportFileError, match="not UTF-8 text"):
        import_with(pooled(postgresql, batch_size=10), path)
    assert 0 < len(register(postgresql)) <= 100


def test_small_files_sqlite_and_one_core_validate_in_process(engine, tmp_path):
    small = write_csv(tmp_path / "small.csv", citizen_rows(3))
    with RegisterFile(small) as source:
        on_postgresql = engine.dialect.name == "postgresql"
        assert (
            CitizenImporter(engine, workers=2, pool_min_bytes=0).uses_pool(source) is on_postgresql
        )
        assert not CitizenImporter(engine, workers=2, pool_min_bytes=source.size + 1).uses_pool(
            source
        )
        assert not CitizenImporter(engine, workers=1, pool_min_bytes=0).uses_pool(source)


def test_raw_chunks_end_at_row_ends_even_inside_quoted_newlines(tmp_path):
    rows = [{**row, "street": "Jl. A\nBlok B"} for row in citizen_rows(40)]
    path = write_csv(tmp_path / "register.csv", rows)
    with RegisterFile(path) as source:
        chunks = list(source.raw_chunks(100))
    assert len(chunks) == 40
    parsed = [list(csv.reader(chunk.decode().splitlines(keepends=True))) for chunk in chunks]
    assert [len(rows_in_chunk) for rows_in_chunk in parsed] == [1] * 40
