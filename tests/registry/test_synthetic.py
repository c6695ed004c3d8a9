from collections import Counter
from datetime import date
from itertools import groupby

from digital_id.registry import synthetic
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions


def test_same_seed_same_file(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    synthetic.write_file(first, synthetic.generate_citizens(500, seed=42), "csv")
    synthetic.write_file(second, synthetic.generate_citizens(500, seed=42), "csv")
    assert first.read_bytes() == second.read_bytes()


def test_different_seeds_give_different_citizens():
    assert list(synthetic.generate_citizens(50, seed=1)) != list(
        synthetic.generate_citizens(50, seed=2)
    )


def test_exactly_count_citizens_all_valid_with_unique_niks():
    records = list(synthetic.generate_citizens(3_000, seed=3))
    assert len(records) == 3_000
    assert len({r.nik for r in records}) == 3_000
    validator = RecordValidator(load_regions(), today=synthetic.REFERENCE_DATE)
    for record in records:
        row = {**record._asdict(), "birth_date": record.birth_date.isoformat()}
        assert validator.validate(row).record == record


def test_families_share_a_kk_number_and_address():
    records = list(synthetic.generate_citizens(2_000, seed=4))
    families = [list(members) for _, members in groupby(records, key=lambda r: r.kk_number)]
    assert len({r.kk_number for r in records}) == len(families), "a family's members are contiguous"
    assert any(len(family) >= 3 for family in families)
    for family in families:
        addresses = {(r.street, r.rt, r.rw, r.village, r.district_code) for r in family}
        assert len(addresses) == 1
        assert family[0].kk_number[:6] == family[0].district_code


def test_ages_are_plausible_and_include_children_and_elders():
    ages = [
        (synthetic.REFERENCE_DATE - r.birth_date).days // 365
        for r in synthetic.generate_citizens(5_000, seed=5)
    ]
    assert min(ages) >= 0
    assert max(ages) <= 100
    assert any(age < 5 for age in ages)
    assert any(age > 70 for age in ages)


def test_districts_are_weighted_towards_the_most_populous_provinces():
    provinces = Counter(r.district_code[:2] for r in synthetic.generate_citizens(20_000, seed=6))
    assert provinces.most_common(1)[0][0] == "32"  # Jawa Barat
    assert provinces["32"] > 10 * provinces.get("65", 0)  # Kalimantan Utara


def test_jsonl_output_matches_the_import_format(tmp_path):
    path = tmp_path / "c.jsonl"
    written = synthetic.write_file(path, synthetic.generate_citizens(10, seed=8), "jsonl")
    assert written == 10
    first = path.read_text().splitlines()[0]
    assert '"birth_date": "' in first
    assert date.fromisoformat(first.split('"birth_date": "')[1][:10]) < synthetic.REFERENCE_DATE
