"""``digital-id registry``: what an operator types and sees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from digital_id.cli import app
from digital_id.registry.models import Citizen
from tests.factories import citizen_row, citizen_rows, write_csv, write_jsonl

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def one_line_error(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_generate_then_import_then_show(engine, cli_env, tmp_path):
    out = tmp_path / "citizens.csv"
    assert (
        invoke("registry", "generate", "--count", "300", "--seed", "7", "--out", str(out)).exit_code
        == 0
    )

    result = invoke("registry", "import", str(out))
    assert result.exit_code == 0, result.output
    assert "inserted" in result.output
    assert "300" in result.output

    nik = out.read_text().splitlines()[1].split(",")[0]
    shown = invoke("registry", "show", nik)
    assert shown.exit_code == 0
    assert nik in shown.output
    assert "Province" in shown.output


def test_import_summary_counts_each_outcome(engine, cli_env, tmp_path):
    rows = citizen_rows(4)
    invoke("registry", "import", str(write_csv(tmp_path / "a.csv", rows[:3])))
    rows[0] = {**rows[0], "occupation": "GURU"}
    rows[1] = {**rows[1], "sex": "X"}

    result = invoke("registry", "import", str(write_csv(tmp_path / "b.csv", rows)))

    assert result.exit_code == 0
    summary = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in result.output.splitlines()
        if line.count("│") == 3
    }
    assert summary["inserted"] == "1"
    assert summary["updated"] == "1"
    assert summary["unchanged"] == "1"
    assert summary["rejected"] == "1"
    assert "b.csv.rejected.csv" in result.output


def test_show_for_an_unknown_nik_says_so_with_the_nik_masked(engine, cli_env):
    result = invoke("registry", "show", "3273052010900001")
    assert result.exit_code == 1
    assert one_line_error(result) == "error: no citizen with NIK ************0001 in the register"


def test_show_rejects_a_malformed_nik_with_exit_code_2(engine, cli_env):
    result = invoke("registry", "show", "12345")
    assert result.exit_code == 2
    assert one_line_error(result) == "error: NIK *2345: must be exactly 16 digits"


def test_missing_file_is_a_one_line_error(engine, cli_env, tmp_path):
    result = invoke("registry", "import", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2
    assert "no such file" in one_line_error(result)


def test_unknown_extension_is_a_one_line_error(engine, cli_env, tmp_path):
    path = tmp_path / "register.xlsx"
    path.write_text("nik\n")
    result = invoke("registry", "import", str(path))
    assert result.exit_code == 2
    assert "--format csv|jsonl" in one_line_error(result)


def test_unknown_column_is_a_one_line_error_and_changes_nothing(engine, cli_env, tmp_path):
    rows = [{**citizen_row(), "shoe_size": "42"}]
    path = write_csv(tmp_path / "register.csv", rows, fields=[*rows[0]])
    result = invoke("registry", "import", str(path))
    assert result.exit_code == 2
    assert "unknown column 'shoe_size'" in one_line_error(result)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Citizen)) == 0


def test_missing_column_is_a_one_line_error(engine, cli_env, tmp_path):
    path = write_csv(tmp_path / "register.csv", [citizen_row()], fields=["nik", "full_name"])
    result = invoke("registry", "import", str(path))
    assert result.exit_code == 2
    assert "missing column 'kk_number'" in one_line_error(result)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("binary.csv", b"\xff\xfe\x00\x01garbage", "not UTF-8 text"),
        ("csv-in-disguise.jsonl", b"nik,full_name\n3273052010900001,BUDI\n", "expected JSON Lines"),
    ],
)
def test_wrong_format_is_a_one_line_error(engine, cli_env, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    result = invoke("registry", "import", str(path))
    assert result.exit_code == 2
    assert message in one_line_error(result)


def test_format_option_overrides_the_extension(engine, cli_env, tmp_path):
    path = write_jsonl(tmp_path / "register.txt", citizen_rows(3))
    result = invoke("registry", "import", "--format", "jsonl", str(path))
    assert result.exit_code == 0, result.output


def test_import_refuses_an_unmigrated_database(empty_database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITAL_ID_DATABASE_URL", empty_database_url)
    path = write_csv(tmp_path / "register.csv", citizen_rows(1))
    result = invoke("registry", "import", str(path))
    assert result.exit_code == 1
    assert (
        one_line_error(result)
        == "error: the database has not been migrated; run `digital-id db upgrade` first"
    )


def test_generate_refuses_an_unknown_extension(tmp_path):
    result = invoke("registry", "generate", "--count", "1", "--out", str(tmp_path / "x.txt"))
    assert result.exit_code == 2
    assert "name it .csv or .jsonl" in one_line_error(result)


def _count(engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Citizen)) or 0


def _start_import(cli_env, tmp_path, rows: int, batch_size: int) -> subprocess.Popen[str]:
    path = tmp_path / "big.csv"
    subprocess.run(
        [sys.executable, "-m", "digital_id", "registry", "generate", "--count", str(rows), "--out", str(path)],
        env=cli_env, check=True, capture_output=True,
    )  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "digital_id", "registry", "import", "--batch-size", str(batch_size), str(path)],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _wait_for_first_batches(engine, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while _count(engine) == 0:
        assert process.poll() is None, "the import finished before it could be interrupted"
        assert time.monotonic() < deadline, "no batch committed within 60 s"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_the_import_at_a_batch_boundary(engine, cli_env, tmp_path, sig):
    batch_size = 500
    process = _start_import(cli_env, tmp_path, rows=60_000, batch_size=batch_size)
    _wait_for_first_batches(engine, process)
    os.kill(process.pid, sig)
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 130, output
    assert "Interrupted" in output
    assert "Traceback" not in output
    committed = _count(engine)
    assert 0 < committed < 60_000
    assert committed % batch_size == 0


def test_a_killed_import_leaves_only_whole_batches(engine, cli_env, tmp_path):
    batch_size = 500
    process = _start_import(cli_env, tmp_path, rows=60_000, batch_size=batch_size)
    _wait_for_first_batches(engine, process)
    process.kill()  # SIGKILL: no handler, no cleanup, as in a power cut of the process
    process.communicate(timeout=60)

    committed = _count(engine)
    assert 0 < committed < 60_000
    assert committed % batch_size == 0


def test_an_import_refuses_an_impossible_family_and_says_so(engine, cli_env, tmp_path):
    from datetime import date

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from digital_id.audit.models import AuditEvent

    kk = "3273050101150009"
    rows = [
        citizen_row(
            birth_date=date(1980, 1, 1), kk_number=kk, family_relationship="KEPALA KELUARGA"
        ),
        citizen_row(
            birth_date=date(1981, 1, 1), kk_number=kk, family_relationship="KEPALA KELUARGA"
        ),
    ]
    result = invoke("registry", "import", str(write_csv(tmp_path / "family.csv", rows)))
    assert result.exit_code == 0, result.output
    assert "two heads of the family" in result.output
    assert kk not in result.output  # the card's number is masked
    with Session(engine) as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.tag == "registry:family_refused")
        ).one()
    assert event.details["reason"] == "two heads of the family"
