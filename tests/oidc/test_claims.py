from datetime import date

from digital_id.oidc.claims import SCOPE_CLAIMS, claim_values, claims_of_scopes
from digital_id.registry.models import Citizen
from digital_id.registry.regions import load_regions
from digital_id.registry.service import age_on


def citizen(**overrides) -> Citizen:
    values = {
        "nik": "3273056010900001", "kk_number": "3273050101150001", "full_name": "SITI RAHAYU",
        "birth_place": "BANDUNG", "birth_date": date(1990, 10, 20), "sex": "P", "blood_type": "O",
        "religion": "ISLAM", "marital_status": "KAWIN", "occupation": "GURU", "nationality": "WNI",
        "street": "Jl. Merdeka No. 10", "rt": "003", "rw": "007", "village": "Ciroyom",
        "district_code": "327305", "status": "active",
    }  # fmt: skip
    values.update(overrides)
    return Citizen(**values)


TODAY = date(2026, 11, 27)


def test_scopes_release_only_their_claims():
    assert claims_of_scopes(["openid"]) == ()
    assert claims_of_scopes(["openid", "profile"]) == ("name", "gender", "birthdate")
    assert "nik" not in claims_of_scopes(["profile", "address", "age", "family", "birth"])
    assert set(SCOPE_CLAIMS) == {"openid", "profile", "nik", "birth", "address", "family", "age"}


def test_profile_claims_use_oidc_spellings():
    values = claim_values(
        citizen(), ["name", "gender", "birthdate"], regions=load_regions(), today=TODAY
    )
    assert values == {"name": "SITI RAHAYU", "gender": "female", "birthdate": "1990-10-20"}


def test_address_follows_oidc_with_indonesian_levels():
    address = claim_values(citizen(), ["address"], regions=load_regions(), today=TODAY)["address"]
    assert address["country"] == "ID"
    assert address["locality"] == "Kota Bandung"
    assert address["region"] == "Jawa Barat"
    assert (address["rt"], address["rw"], address["village"], address["district"]) == (
        "003",
        "007",
        "Ciroyom",
        "Andir",
    )
    assert (
        address["formatted"]
        == "Jl. Merdeka No. 10, RT 003/RW 007, Ciroyom, Andir, Kota Bandung, Jawa Barat"
    )


def test_age_claims_are_booleans_and_never_the_birth_date():
    teenager = citizen(birth_date=date(2008, 11, 28))
    values = claim_values(teenager, claims_of_scopes(["age"]), regions=load_regions(), today=TODAY)
    assert values == {
        "age_over_17": True,
        "age_over_18": False,
        "age_over_21": False,
        "age_over_60": False,
    }
    assert "birthdate" not in values


def test_age_turns_on_the_birthday():
    assert age_on(date(2008, 11, 27), TODAY) == 18
    assert age_on(date(2008, 11, 28), TODAY) == 17
    assert age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17


def test_claims_outside_the_contract_are_ignored():
    assert (
        claim_values(
            citizen(), ["religion", "blood_type", "age_over_5"], regions=load_regions(), today=TODAY
        )
        == {}
    )
