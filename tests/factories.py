"""Builders for valid register rows and files; override only what a test is about."""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from digital_id.registry.nik import Sex, encode_nik
from digital_id.registry.records import RECORD_FIELDS

_serials = itertools.count(1)

BANDUNG_ANDIR = "327305"  # Kecamatan Andir, Kota Bandung, Jawa Barat


def citizen_row(
    *,
    district_code: str = BANDUNG_ANDIR,
    birth_date: date = date(1990, 10, 20),
    sex: Sex = "L",
    serial: int | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid row as an import file holds it (all text), with a fresh NIK unless one is given."""
    nik = encode_nik(
        district_code, birth_date, sex, serial if serial is not None else next(_serials) % 9999 + 1
    )
    row: dict[str, Any] = {
        "nik": nik,
        "kk_number": f"{district_code}0101150001",
        "full_name": "BUDI SANTOSO" if sex == "L" else "SITI RAHAYU",
        "birth_place": "BANDUNG",
        "birth_date": birth_date.isoformat(),
        "sex": sex,
        "blood_type": "O",
        "religion": "ISLAM",
        "marital_status": "KAWIN",
        "occupation": "KARYAWAN SWASTA",
        "nationality": "WNI",
        "street": "Jl. Merdeka No. 10",
        "rt": "003",
        "rw": "007",
        "village": "Ciroyom",
        "district_code": district_code,
        "status": "active",
    }
    row.update(overrides)
    return row


def citizen_rows(count: int, **overrides: Any) -> list[dict[str, Any]]:
    """``count`` valid rows with distinct NIKs (distinct birth dates, one serial each)."""
    start = date(1950, 1, 1).toordinal()
    return [
        citizen_row(birth_date=date.fromordinal(start + i * 3), serial=1, **overrides)
        for i in range(count)
    ]


def write_csv(
    path: Path, rows: Iterable[dict[str, Any]], fields: Iterable[str] = RECORD_FIELDS
) -> Path:
    fields = list(fields)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path
