"""Validating one incoming register row into a :class:`CitizenRecord`.

Hand-written rather than a pydantic model: an import checks a million rows, each rejection
must name its field and rule in the operator's terms, and this runs several times faster.
"""

from __future__ import annotations

from datetime import date
from typing import Any, NamedTuple

from digital_id.registry import vocabulary
from digital_id.registry.nik import InvalidNikError, check_nik_matches, parse_nik
from digital_id.registry.regions import RegionTable

EARLIEST_BIRTH_DATE = date(1900, 1, 1)


class CitizenRecord(NamedTuple):
    """A validated register row, in the column order of the ``citizens`` table."""

    nik: str
    kk_number: str
    full_name: str
    birth_place: str
    birth_date: date
    sex: str
    blood_type: str
    religion: str
    marital_status: str
    occupation: str
    nationality: str
    street: str
    rt: str
    rw: str
    village: str
    district_code: str
    status: str
    family_relationship: str


RECORD_FIELDS: tuple[str, ...] = CitizenRecord._fields
OPTIONAL_FIELDS: dict[str, str] = {"status": "active", "family_relationship": ""}
REQUIRED_FIELDS: tuple[str, ...] = tuple(f for f in RECORD_FIELDS if f not in OPTIONAL_FIELDS)


class InvalidRecordError(ValueError):
    """A row broke a rule; ``reason`` names it and never contains the NIK in full."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ValidatedRow(NamedTuple):
    record: CitizenRecord
    unknown_region: bool


class RecordValidator:
    def __init__(
        self, regions: RegionTable, *, allow_unknown_region: bool = False, today: date | None = None
    ) -> None:
        self.regions = regions
        self.allow_unknown_region = allow_unknown_region
        self.today = today or date.today()

    def validate(self, row: dict[str, Any]) -> ValidatedRow:
        raw_nik = _text(row, "nik")
        try:
            nik = parse_nik(
                raw_nik, regions=self.regions, allow_unknown_region=self.allow_unknown_region
            )
        except InvalidNikError as exc:
            raise InvalidRecordError("nik", exc.reason) from None

        birth_date = self._birth_date(_text(row, "birth_date"))
        sex = _choice(row, "sex", vocabulary.SEXES)
        try:
            check_nik_matches(nik, birth_date=birth_date, sex=sex)
        except InvalidNikError as exc:
            raise InvalidRecordError("nik", exc.reason) from None

        district_code = _text(row, "district_code")
        district_known = self.regions.is_district(district_code)
        if not district_known and not (
            self.allow_unknown_region and len(district_code) == 6 and district_code.isdigit()
        ):
            raise InvalidRecordError(
                "district_code", f"{district_code!r} is not a known district code"
            )

        record = CitizenRecord(
            nik=nik.value,
            kk_number=_digits(row, "kk_number", 16),
            full_name=_name(row, "full_name", 120),
            birth_place=_free_text(row, "birth_place", 80),
            birth_date=birth_date,
            sex=sex,
            blood_type=_choice(row, "blood_type", vocabulary.BLOOD_TYPES, empty="-"),
            religion=_choice(row, "religion", vocabulary.RELIGIONS),
            marital_status=_choice(row, "marital_status", vocabulary.MARITAL_STATUSES),
            occupation=_free_text(row, "occupation", 80),
            nationality=_choice(row, "nationality", vocabulary.NATIONALITIES),
            street=_free_text(row, "street", 200),
            rt=_neighbourhood(row, "rt"),
            rw=_neighbourhood(row, "rw"),
            village=_free_text(row, "village", 80),
            district_code=district_code,
            status=_status(row),
            family_relationship=_relationship(row),
        )
        return ValidatedRow(record, not (nik.region_known and district_known))

    def _birth_date(self, value: str) -> date:
        try:
            birth_date = date.fromisoformat(value)
        except ValueError:
            raise InvalidRecordError(
                "birth_date", f"{value!r} is not a date as YYYY-MM-DD"
            ) from None
        if len(value) != 10:
            raise InvalidRecordError("birth_date", f"{value!r} is not a date as YYYY-MM-DD")
        if birth_date > self.today:
            raise InvalidRecordError("birth_date", f"{value} is in the future")
        if birth_date < EARLIEST_BIRTH_DATE:
            raise InvalidRecordError(
                "birth_date", f"{value} is before {EARLIEST_BIRTH_DATE.isoformat()}"
            )
        return birth_date


def _text(row: dict[str, Any], field: str) -> str:
    """The field as text with surrounding space removed and inner runs of spaces collapsed."""
    value = row.get(field)
    if type(value) is not str:  # the fast path is plain text; JSON may also give numbers
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidRecordError(field, "must be text")
        value = str(value)
    value = value.strip()
    return " ".join(value.split()) if "  " in value else value


def _free_text(row: dict[str, Any], field: str, max_length: int) -> str:
    value = _text(row, field)
    if not value:
        raise InvalidRecordError(field, "is required")
    if len(value) > max_length:
        raise InvalidRecordError(field, f"is longer than {max_length} characters")
    if not value.isprintable():
        raise InvalidRecordError(field, "contains control characters")
    return value


_WITHOUT_NAME_PUNCTUATION = str.maketrans("", "", " '.,-")


def _name(row: dict[str, Any], field: str, max_length: int) -> str:
    value = _free_text(row, field, max_length)
    if not value.translate(_WITHOUT_NAME_PUNCTUATION).isalpha():
        raise InvalidRecordError(field, "may hold only letters, spaces and ' . , -")
    return value


def _digits(row: dict[str, Any], field: str, length: int) -> str:
    value = _text(row, field)
    if len(value) != length or not value.isascii() or not value.isdigit():
        raise InvalidRecordError(field, f"must be exactly {length} digits")
    if value.count("0") == length:
        raise InvalidRecordError(field, "must not be all zeros")
    return value


def _choice(
    row: dict[str, Any], field: str, allowed: tuple[str, ...], empty: str | None = None
) -> str:
    value = _text(row, field).upper()
    if not value and empty is not None:
        return empty
    if value not in allowed:
        raise InvalidRecordError(field, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _neighbourhood(row: dict[str, Any], field: str) -> str:
    """RT and RW numbers, printed on the card as three digits (``003``)."""
    value = _text(row, field)
    if not 1 <= len(value) <= 3 or not value.isascii() or not value.isdigit():
        raise InvalidRecordError(field, "must be a number of 1 to 3 digits")
    return value.zfill(3)


def _relationship(row: dict[str, Any]) -> str:
    """The member's relationship within the family card (SHDK), or "" when the register
    does not say."""
    value = _text(row, "family_relationship").upper()
    if value and value not in vocabulary.RELATIONSHIPS:
        raise InvalidRecordError(
            "family_relationship",
            f"{value!r} is not one of {', '.join(vocabulary.RELATIONSHIPS)}",
        )
    return value


def _status(row: dict[str, Any]) -> str:
    value = _text(row, "status").lower() or OPTIONAL_FIELDS["status"]
    if value not in vocabulary.CITIZEN_STATUSES:
        raise InvalidRecordError(
            "status", f"{value!r} is not one of {', '.join(vocabulary.CITIZEN_STATUSES)}"
        )
    return value
