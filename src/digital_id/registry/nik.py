"""The NIK (Nomor Induk Kependudukan): parsing and validation.

A NIK is 16 digits, as set by Permendagri on the population register:

* digits 1-6: the district (kecamatan) code where the resident was first registered;
* digits 7-12: date of birth as DDMMYY, with 40 added to the day for women;
* digits 13-16: a serial among residents sharing the first twelve digits, never ``0000``.

No library validates NIKs, so this module is the project's own. Every rejection names the
rule that failed, so an operator can fix the row without guessing.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal

from digital_id.registry.regions import RegionTable, load_regions

Sex = Literal["L", "P"]  # laki-laki, perempuan: as printed on the e-KTP

NIK_LENGTH = 16
FEMALE_DAY_OFFSET = 40


class NikRule(StrEnum):
    FORMAT = "format"
    REGION = "region"
    BIRTH_DATE = "birth_date"
    SERIAL = "serial"
    MATCHES_BIRTH_DATE = "matches_birth_date"
    MATCHES_SEX = "matches_sex"


class InvalidNikError(ValueError):
    """A NIK broke one of its rules; ``reason`` says which, without repeating the NIK."""

    def __init__(self, nik: str, rule: NikRule, reason: str) -> None:
        super().__init__(f"NIK {nik}: {reason}")
        self.nik = nik
        self.rule = rule
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Nik:
    value: str
    district_code: str
    birth_day: int
    birth_month: int
    birth_year_2d: int
    sex: Sex
    serial: str
    region_known: bool

    def matches_birth_date(self, birth_date: date) -> bool:
        return (
            birth_date.day == self.birth_day
            and birth_date.month == self.birth_month
            and birth_date.year % 100 == self.birth_year_2d
        )

    def birth_date_candidates(self, today: date | None = None) -> tuple[date, ...]:
        """The past dates this NIK can stand for: the two-digit year leaves the century open."""
        today = today or date.today()
        candidates = []
        for century in (1900, 2000):
            year = century + self.birth_year_2d
            if self.birth_day <= calendar.monthrange(year, self.birth_month)[1]:
                candidate = date(year, self.birth_month, self.birth_day)
                if candidate <= today:
                    candidates.append(candidate)
        return tuple(candidates)

    def __str__(self) -> str:
        return self.value


def parse_nik(
    value: str, *, regions: RegionTable | None = None, allow_unknown_region: bool = False
) -> Nik:
    """Parse ``value`` or raise :class:`InvalidNikError` naming the first rule it breaks.

    Region codes change as regencies split, so with ``allow_unknown_region`` a district code
    that is well-formed but no longer in the table is accepted (and flagged in the result).
    """
    if len(value) != NIK_LENGTH or not value.isascii() or not value.isdigit():
        raise InvalidNikError(value, NikRule.FORMAT, "must be exactly 16 digits")

    district_code = value[:6]
    table = regions if regions is not None else load_regions()
    region_known = table.is_district(district_code)
    if not region_known and (not allow_unknown_region or district_code[:2] == "00"):
        raise InvalidNikError(
            value,
            NikRule.REGION,
            f"district code {district_code} (digits 1-6) is not a known district",
        )

    encoded_day, month, year_2d = int(value[6:8]), int(value[8:10]), int(value[10:12])
    sex: Sex = "P" if encoded_day > FEMALE_DAY_OFFSET else "L"
    day = encoded_day - FEMALE_DAY_OFFSET if sex == "P" else encoded_day
    if not _is_possible_date(day, month, year_2d):
        raise InvalidNikError(
            value,
            NikRule.BIRTH_DATE,
            f"digits 7-12 ({value[6:12]}) are not a birth date as DDMMYY (day + 40 for women)",
        )

    serial = value[12:]
    if serial == "0000":
        raise InvalidNikError(value, NikRule.SERIAL, "serial 0000 is not allowed")

    return Nik(value, district_code, day, month, year_2d, sex, serial, region_known)


def check_nik_matches(nik: Nik, *, birth_date: date, sex: str) -> None:
    """A record is invalid when its NIK disagrees with its own birth date or sex."""
    if nik.sex != sex:
        raise InvalidNikError(
            nik.value,
            NikRule.MATCHES_SEX,
            f"digits 7-8 encode sex {nik.sex} but the record says {sex}",
        )
    if not nik.matches_birth_date(birth_date):
        raise InvalidNikError(
            nik.value,
            NikRule.MATCHES_BIRTH_DATE,
            f"digits 7-12 encode birth date {nik.value[6:12]} (DDMMYY) "
            f"but the record says {birth_date.isoformat()}",
        )


def encode_nik(district_code: str, birth_date: date, sex: Sex, serial: int) -> str:
    """Build the NIK for a resident; the inverse of :func:`parse_nik`."""
    if not 1 <= serial <= 9999:
        raise ValueError(f"serial must be 1-9999, got {serial}")
    day = birth_date.day + (FEMALE_DAY_OFFSET if sex == "P" else 0)
    return f"{district_code}{day:02d}{birth_date.month:02d}{birth_date.year % 100:02d}{serial:04d}"


def mask_nik(value: str) -> str:
    """Keep only the last four characters, for reports and messages that may be shared."""
    return "*" * max(len(value) - 4, 0) + value[-4:]


_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_possible_date(day: int, month: int, year_2d: int) -> bool:
    if not 1 <= month <= 12 or day < 1:
        return False
    # 29 February needs a leap year in either century: 19YY or 20YY is one exactly when YY
    # is a multiple of 4 (for YY=00, 1900 is not but 2000 is).
    if month == 2 and year_2d % 4 != 0:
        return day <= 28
    return day <= _DAYS_IN_MONTH[month]
