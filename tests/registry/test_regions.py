from digital_id.registry.regions import load_regions


def test_the_table_holds_every_province_regency_and_district():
    regions = load_regions()
    assert len(regions.provinces) == 38
    assert len(regions.regencies) == 514
    assert len(regions.districts) == 7285


def test_a_district_resolves_to_its_regency_and_province():
    address = load_regions().resolve("327305")
    assert address is not None
    assert (address.district.name, address.regency.name, address.province.name) == (
        "Andir",
        "Kota Bandung",
        "Jawa Barat",
    )


def test_codes_that_are_not_districts_do_not_resolve():
    regions = load_regions()
    assert regions.resolve("3273") is None
    assert regions.resolve("329999") is None
    assert not regions.is_district("32")
