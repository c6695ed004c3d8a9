from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digital_id.registry import synthetic
from digital_id.registry.nik import (
    InvalidNikError,
    NikRule,
    check_nik_matches,
    encode_nik,
    mask_nik,
    parse_nik,
)
from digital_id.registry.regions import load_regions


def test_nik_parses_into_district_birth_date_sex_and_serial():
    nik = parse_nik("3273052010900001")
    assert nik.district_code == "327305"
    assert (nik.birth_day, nik.birth_month, nik.birth_year_2d) == (20, 10, 90)
    assert nik.sex == "L"
    assert nik.serial == "0001"
    assert nik.birth_date_candidates() == (date(1990, 10, 20),)


def test_forty_is_added_to_the_day_for_women():
    nik = parse_nik("3273056010900001")
    assert nik.sex == "P"
    assert nik.birth_day == 20


def test_two_digit_year_leaves_the_century_open_but_not_the_future():
    nik = parse_nik("3273050101100001")
    assert nik.birth_date_candidates(today=date(2026, 1, 1)) == (date(1910, 1, 1), date(2010, 1, 1))
    assert nik.birth_date_candidates(today=date(2009, 1, 1)) == (date(1910, 1, 1),)


@pytest.mark.parametrize(
    "value", ["327305201090001", "32730520109000011", "3273O52010900001", "", "٣٢٧٣٠٥٢٠١٠٩٠٠٠٠١"]
)
def test_nik_must_be_exactly_16_ascii_digits(value):
    with pytest.raises(InvalidNikError) as error:
        parse_nik(value)
    assert error.value.rule == NikRule.FORMAT
    assert str(error.value) == f"NIK {value}: must be exactly 16 digits"


def test_district_code_must_be_a_known_district():
    with pytest.raises(InvalidNikError) as error:
        parse_nik("3299992010900001")
    assert error.value.rule == NikRule.REGION
    assert (
        str(error.value)
        == "NIK 3299992010900001: district code 329999 (digits 1-6) is not a known district"
    )


def test_regency_code_alone_is_not_a_district():
    with pytest.raises(InvalidNikError, match="is not a known district"):
        parse_nik("3273002010900001")


def test_unknown_district_is_accepted_only_when_allowed_and_flagged():
    nik = parse_nik("3299992010900001", allow_unknown_region=True)
    assert nik.region_known is False
    assert parse_nik("3273052010900001").region_known is True


def test_province_00_is_never_a_district_even_when_unknown_regions_are_allowed():
    with pytest.raises(InvalidNikError) as error:
        parse_nik("0099992010900001", allow_unknown_region=True)
    assert error.value.rule == NikRule.REGION


@pytest.mark.parametrize(
    "ddmmyy",
    [
        "001090",
        "321090",
        "401090",
        "721090",
        "201390",
        "200090",
        "310490",
        "300290",
        "290201",
        "690201",
    ],
)
def test_digits_7_to_12_must_be_a_possible_birth_date(ddmmyy):
    value = f"327305{ddmmyy}0001"
    with pytest.raises(InvalidNikError) as error:
        parse_nik(value)
    assert error.value.rule == NikRule.BIRTH_DATE
    assert f"digits 7-12 ({ddmmyy})" in error.value.reason


@pytest.mark.parametrize("ddmmyy", ["290200", "290204", "690296", "310190", "711290"])
def test_leap_days_and_month_ends_are_possible(ddmmyy):
    parse_nik(f"327305{ddmmyy}0001")


def test_serial_0000_is_not_allowed():
    with pytest.raises(InvalidNikError) as error:
        parse_nik("3273056010900000")
    assert error.value.rule == NikRule.SERIAL
    assert str(error.value) == "NIK 3273056010900000: serial 0000 is not allowed"


def test_a_record_whose_nik_disagrees_with_its_sex_is_invalid():
    with pytest.raises(InvalidNikError) as error:
        check_nik_matches(parse_nik("3273056010900001"), birth_date=date(1990, 10, 20), sex="L")
    assert error.value.rule == NikRule.MATCHES_SEX
    assert error.value.reason == "digits 7-8 encode sex P but the record says L"


@pytest.mark.parametrize("birth_date", [date(1990, 10, 21), date(1990, 11, 20), date(1991, 10, 20)])
def test_a_record_whose_nik_disagrees_with_its_birth_date_is_invalid(birth_date):
    with pytest.raises(InvalidNikError) as error:
        check_nik_matches(parse_nik("3273052010900001"), birth_date=birth_date, sex="L")
    assert error.value.rule == NikRule.MATCHES_BIRTH_DATE


def test_either_century_matches_the_two_digit_year():
    nik = parse_nik("3273052010900001")
    check_nik_matches(nik, birth_date=date(1990, 10, 20), sex="L")
    check_nik_matches(nik, birth_date=date(2090, 10, 20), sex="L")


def test_mask_keeps_only_the_last_four_digits():
    assert mask_nik("3273052010900001") == "************0001"
    assert mask_nik("12") == "12"


def test_encode_refuses_serials_outside_1_to_9999():
    with pytest.raises(ValueError, match="serial"):
        encode_nik("327305", date(1990, 1, 1), "L", 0)


_DISTRICTS = [region.code for region in load_regions().districts]


@given(
    district=st.sampled_from(_DISTRICTS),
    birth_date=st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    sex=st.sampled_from(["L", "P"]),
    serial=st.integers(min_value=1, max_value=9999),
)
def test_every_encoded_nik_parses_back(district, birth_date, sex, serial):
    nik = parse_nik(encode_nik(district, birth_date, sex, serial))
    assert nik.district_code == district
    assert nik.sex == sex
    assert int(nik.serial) == serial
    assert birth_date in nik.birth_date_candidates(today=date(2099, 12, 31))


@given(seed=st.integers(min_value=0, max_value=2**32), count=st.integers(min_value=1, max_value=60))
def test_every_synthetic_nik_parses_back_to_its_record(seed, count):
    for record in synthetic.generate_citizens(count, seed=seed):
        nik = parse_nik(record.nik)
        assert nik.district_code == record.district_code
        assert nik.sex == record.sex
        assert nik.matches_birth_date(record.birth_date)
        check_nik_matches(nik, birth_date=record.birth_date, sex=record.sex)
