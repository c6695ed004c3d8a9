from datetime import date

import pytest

from digital_id.registry.records import InvalidRecordError, RecordValidator
from digital_id.registry.regions import load_regions
from tests.factories import citizen_row

validator = RecordValidator(load_regions(), today=date(2026, 11, 27))


def rejection(row=None, **overrides) -> InvalidRecordError:
    row = {**(row or citizen_row()), **overrides}
    with pytest.raises(InvalidRecordError) as error:
        validator.validate(row)
    return error.value


def test_a_valid_row_becomes_a_record():
    validated = validator.validate(citizen_row())
    assert validated.record.nik.startswith("327305")
    assert validated.record.birth_date == date(1990, 10, 20)
    assert validated.unknown_region is False


def test_values_are_normalised_to_the_card_s_spelling():
    record = validator.validate(
        citizen_row(
            religion=" katolik ",
            sex="l",
            rt="3",
            rw=12,
            blood_type="",
            status="",
            full_name="ANI  PUTRI",
        )
    ).record
    assert (record.religion, record.sex, record.rt, record.rw) == ("KATOLIK", "L", "003", "012")
    assert (record.blood_type, record.status, record.full_name) == ("-", "active", "ANI PUTRI")


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"kk_number": "12345"}, "kk_number", "must be exactly 16 digits"),
        ({"kk_number": "0" * 16}, "kk_number", "must not be all zeros"),
        ({"full_name": ""}, "full_name", "is required"),
        ({"full_name": "R2-D2"}, "full_name", "may hold only letters, spaces and ' . , -"),
        ({"full_name": "A" * 121}, "full_name", "is longer than 120 characters"),
        ({"birth_place": "BANDUNG\x00"}, "birth_place", "contains control characters"),
        ({"birth_date": "20-10-1990"}, "birth_date", "'20-10-1990' is not a date as YYYY-MM-DD"),
        ({"blood_type": "Z"}, "blood_type", "'Z' is not one of"),
        ({"religion": "JEDI"}, "religion", "'JEDI' is not one of"),
        ({"marital_status": "SINGLE"}, "marital_status", "'SINGLE' is not one of"),
        ({"nationality": "ID"}, "nationality", "'ID' is not one of"),
        ({"street": " "}, "street", "is required"),
        ({"rt": "1234"}, "rt", "must be a number of 1 to 3 digits"),
        ({"rw": "A1"}, "rw", "must be a number of 1 to 3 digits"),
        ({"village": None}, "village", "is required"),
        ({"district_code": "329999"}, "district_code", "'329999' is not a known district code"),
        ({"status": "missing"}, "status", "'missing' is not one of"),
        ({"occupation": ["list"]}, "occupation", "must be text"),
    ],
)
def test_each_field_rule_names_its_field(overrides, field, reason):
    error = rejection(**overrides)
    assert error.field == field
    assert error.reason.startswith(reason)


def test_birth_date_in_the_future_is_rejected():
    error = rejection(citizen_row(birth_date=date(2026, 12, 1)))
    assert (error.field, error.reason) == ("birth_date", "2026-12-01 is in the future")


def test_birth_date_before_1900_is_rejected():
    error = rejection(citizen_row(birth_date=date(1899, 12, 31)))
    assert (error.field, error.reason) == ("birth_date", "1899-12-31 is before 1900-01-01")


def test_nik_must_agree_with_the_row_s_birth_date():
    row = citizen_row(birth_date=date(1990, 10, 20))
    row["birth_date"] = "1990-10-21"
    with pytest.raises(InvalidRecordError) as error:
        validator.validate(row)
    assert error.value.field == "nik"
    assert "1990-10-21" in error.value.reason
    assert row["nik"] not in error.value.reason


def test_unknown_address_district_is_accepted_and_flagged_when_allowed():
    lenient = RecordValidator(load_regions(), allow_unknown_region=True)
    assert lenient.validate(citizen_row(district_code="329999")).unknown_region is True
    with pytest.raises(InvalidRecordError):
        lenient.validate(citizen_row(**{"district_code": "32999"}))
