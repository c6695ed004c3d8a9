"""Realistic, valid synthetic citizens for demos, tests and benchmarks.

Households are drawn district by district, weighted by province population; a household
shares a family card (KK) number and address; every NIK agrees with its holder's birth date
and sex and is unique in the output. Output depends only on ``count`` and ``seed``: ages are
measured from a fixed reference date, never from today.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from datetime import date, timedelta
from itertools import accumulate, islice
from pathlib import Path

from digital_id.registry.nik import Sex, encode_nik
from digital_id.registry.records import RECORD_FIELDS, CitizenRecord
from digital_id.registry.regions import Region, load_regions
from digital_id.registry.register_files import FORMAT_BY_SUFFIX, FileFormat

REFERENCE_DATE = date(2026, 1, 1)

# Population by province, in thousands: BPS mid-2024 estimates, rounded.
PROVINCE_POPULATION = {
    "11": 5_550, "12": 15_590, "13": 5_840, "14": 6_730, "15": 3_720, "16": 8_840,
    "17": 2_110, "18": 9_420, "19": 1_530, "21": 2_180, "31": 10_680, "32": 50_350,
    "33": 37_890, "34": 3_760, "35": 41_810, "36": 12_430, "51": 4_430, "52": 5_650,
    "53": 5_660, "61": 5_620, "62": 2_810, "63": 4_220, "64": 3_960, "65": 730,
    "71": 2_700, "72": 3_160, "73": 9_460, "74": 2_790, "75": 1_210, "76": 1_470,
    "81": 1_940, "82": 1_360, "91": 1_060, "92": 570, "93": 540, "94": 1_470,
    "95": 1_450, "96": 620,
}  # fmt: skip

# Religion shares (per mille) by province where they differ markedly from the national mix.
_NATIONAL_RELIGION = {
    "ISLAM": 930,
    "KRISTEN": 40,
    "KATOLIK": 15,
    "HINDU": 3,
    "BUDDHA": 9,
    "KONGHUCU": 2,
    "KEPERCAYAAN TERHADAP TUHAN YME": 1,
}
_PAPUA_RELIGION = {"KRISTEN": 650, "KATOLIK": 170, "ISLAM": 180}
RELIGION_BY_PROVINCE = {
    "12": {"ISLAM": 635, "KRISTEN": 270, "KATOLIK": 60, "BUDDHA": 30, "KEPERCAYAAN TERHADAP TUHAN YME": 5},
    "31": {"ISLAM": 835, "KRISTEN": 85, "KATOLIK": 40, "BUDDHA": 35, "HINDU": 3, "KONGHUCU": 2},
    "51": {"HINDU": 860, "ISLAM": 100, "KRISTEN": 20, "KATOLIK": 10, "BUDDHA": 10},
    "53": {"KATOLIK": 530, "KRISTEN": 360, "ISLAM": 100, "HINDU": 5, "KEPERCAYAAN TERHADAP TUHAN YME": 5},
    "61": {"ISLAM": 600, "KATOLIK": 230, "KRISTEN": 110, "BUDDHA": 50, "KONGHUCU": 10},
    "71": {"KRISTEN": 640, "ISLAM": 310, "KATOLIK": 45, "HINDU": 5},
    "81": {"ISLAM": 510, "KRISTEN": 420, "KATOLIK": 70},
    **dict.fromkeys(("91", "92", "93", "94", "95", "96"), _PAPUA_RELIGION),
}  # fmt: skip

MALE_NAMES = (
    "Agus", "Ahmad", "Andi", "Arif", "Bambang", "Budi", "Dedi", "Dwi", "Eko", "Fajar", "Hadi",
    "Hendra", "Heru", "Imam", "Irfan", "Joko", "Muhammad", "Rahmat", "Rizki", "Slamet", "Sugeng",
    "Suparman", "Teguh", "Wahyu", "Yusuf", "Yudi", "Bayu", "Dimas", "Gilang", "Aditya", "Reza",
    "Fikri", "Ilham", "Rudi", "Hasan", "Iwan", "Anton", "Bagus", "Dani", "Doni", "Edi", "Faisal",
    "Galih", "Hari", "Indra", "Jefri", "Krisna", "Lukman", "Mulyadi", "Nanang", "Oki", "Pandu",
    "Rendi", "Samsul", "Tono", "Umar", "Wawan", "Yoga", "Zainal", "Arief", "Bima", "Cahyo",
)  # fmt: skip
MALE_SECOND_NAMES = (
    "Setiawan", "Wibowo", "Santoso", "Saputra", "Pratama", "Hidayat", "Nugroho", "Prasetyo",
    "Firmansyah", "Ramadhan", "Putra", "Wijaya", "Gunawan", "Sutrisno", "Suryadi", "Darmawan",
    "Purnomo", "Haryanto", "Kusuma", "Ardiansyah", "Fauzi", "Hakim", "Taufik", "Kurniawan",
    "Syahputra", "Maulana", "Susanto", "Hermawan", "Sanjaya", "Utomo",
)  # fmt: skip
FEMALE_NAMES = (
    "Siti", "Sri", "Dewi", "Rina", "Ayu", "Putri", "Fitri", "Indah", "Maya", "Nurul", "Dian",
    "Yuni", "Ratna", "Sari", "Novita", "Anisa", "Aisyah", "Fatimah", "Kartika", "Eka", "Tri",
    "Endang", "Yulia", "Amalia", "Nabila", "Salsabila", "Aulia", "Zahra", "Intan", "Lina", "Mega",
    "Nia", "Rani", "Tika", "Wulan", "Citra", "Desi", "Erna", "Heni", "Ika", "Lestari", "Nur",
    "Rahma", "Suci", "Tuti", "Vina", "Yanti", "Winda", "Dina", "Kiki",
)  # fmt: skip
FEMALE_SECOND_NAMES = (
    "Lestari", "Rahayu", "Wulandari", "Handayani", "Susanti", "Suryani", "Setyaningsih",
    "Mulyani", "Kurniasih", "Agustina", "Permata", "Safitri", "Wahyuni", "Hartati", "Ningsih",
    "Utami", "Puspita", "Anggraini", "Purnamasari", "Maharani", "Oktaviani", "Pratiwi", "Sartika",
    "Febriani", "Apriliani", "Rahmawati", "Kusumawati", "Fitriani", "Novianti", "Damayanti",
)  # fmt: skip
# Regions where a family name (marga, fam) passes from father to children.
FAMILY_NAMES_BY_PROVINCE = {
    "12": ("Simanjuntak", "Siregar", "Nasution", "Hutapea", "Sitompul", "Harahap", "Lubis", "Sinaga", "Simatupang", "Panjaitan", "Pardede", "Silalahi"),
    "71": ("Wenas", "Rumondor", "Tumbelaka", "Lumowa", "Sondakh", "Pangemanan", "Mandagi", "Tambuwun"),
    "81": ("Latuconsina", "Pattinasarany", "Siahaya", "Tuhumury", "Wattimena", "Pattiasina", "Leiwakabessy"),
    "53": ("Manafe", "Bessie", "Fernandez", "Ndun", "Lay", "Nope", "Tefa", "Kana"),
    **dict.fromkeys(("91", "92", "93", "94", "95", "96"), ("Wenda", "Kogoya", "Rumbiak", "Mandowen", "Wambrauw", "Yikwa", "Tabuni", "Karubaba")),
}  # fmt: skip
# Balinese birth-order names: I Wayan, Ni Made, ...
BALI_BIRTH_ORDER = ("Wayan", "Made", "Nyoman", "Ketut")

VILLAGE_STEMS = ("Suka", "Sumber", "Karang", "Tanjung", "Mekar", "Sido", "Jati", "Banjar", "Tegal", "Margo", "Wono", "Cipta", "Bumi", "Pasir", "Rawa")  # fmt: skip
VILLAGE_ENDINGS = ("maju", "jadi", "rejo", "sari", "mulyo", "asih", "jaya", "makmur", "harjo", "agung", "baru", "indah", "wangi", "luhur", "raharja")  # fmt: skip
STREETS = (
    "Merdeka", "Sudirman", "Diponegoro", "Gatot Subroto", "Ahmad Yani", "Pahlawan", "Veteran",
    "Kartini", "Gajah Mada", "Hayam Wuruk", "Imam Bonjol", "Pemuda", "Mawar", "Melati", "Kenanga",
    "Anggrek", "Flamboyan", "Cendana", "Pattimura", "Teuku Umar", "Cut Nyak Dien", "Hasanuddin",
    "Sisingamangaraja", "Juanda", "Siliwangi", "Pramuka", "Manggis", "Rambutan", "Kelapa", "Nusantara",
)  # fmt: skip
BLOOD_TYPES = {"O": 37, "B": 27, "A": 24, "AB": 7, "-": 5}
ADULT_OCCUPATIONS = {
    "KARYAWAN SWASTA": 20, "WIRASWASTA": 18, "PETANI/PEKEBUN": 16, "BURUH HARIAN LEPAS": 9,
    "PEDAGANG": 7, "PEGAWAI NEGERI SIPIL (PNS)": 4, "GURU": 3, "NELAYAN/PERIKANAN": 2,
    "SOPIR": 2, "BELUM/TIDAK BEKERJA": 6, "TENTARA NASIONAL INDONESIA (TNI)": 1,
    "KEPOLISIAN RI (POLRI)": 1, "PERAWAT": 1, "DOKTER": 1, "TUKANG BATU": 1,
}  # fmt: skip


def format_for(path: Path) -> FileFormat:
    try:
        return FORMAT_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"cannot tell the format of {path}: name it .csv or .jsonl") from None


def generate_citizens(count: int, *, seed: int = 0) -> Iterator[CitizenRecord]:
    """Yield exactly ``count`` citizens, household by household."""
    return islice(_Generator(seed).citizens(), count)


def write_file(path: Path, records: Iterator[CitizenRecord], file_format: FileFormat) -> int:
    """Write ``records`` in the import format; return how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        if file_format == "csv":
            writer = csv.writer(handle)
            writer.writerow(RECORD_FIELDS)
            for record in records:
                writer.writerow(record)
                written += 1
        else:
            for record in records:
                row = record._asdict()
                row["birth_date"] = record.birth_date.isoformat()
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += 1
    return written


def _weights(table: dict[str, int]) -> tuple[tuple[str, ...], list[int]]:
    return tuple(table), list(accumulate(table.values()))


# A household member's role as the family card names it (SHDK).
_RELATIONSHIP = {"head": "KEPALA KELUARGA", "child": "ANAK", "parent": "ORANG TUA"}


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 (synthetic data, reproducible by design)
        regions = load_regions()
        self.districts: list[Region] = []
        district_weights: list[float] = []
        for province, population in PROVINCE_POPULATION.items():
            in_province = regions.districts_of(province)
            self.districts.extend(in_province)
            district_weights.extend([population / len(in_province)] * len(in_province))
        self.district_cum_weights = list(accumulate(district_weights))
        self.regency_names = {
            r.code: r.name.removeprefix("Kabupaten ")
            .removeprefix("Kota ")
            .removeprefix("Administrasi ")
            for r in regions.regencies
        }
        self.religions = {code: _weights(shares) for code, shares in RELIGION_BY_PROVINCE.items()}
        self.national_religion = _weights(_NATIONAL_RELIGION)
        self.blood_types = _weights(BLOOD_TYPES)
        self.occupations = _weights(ADULT_OCCUPATIONS)
        self.last_serial: dict[
            int, int
        ] = {}  # first twelve digits of a NIK or KK -> last serial used

    def citizens(self) -> Iterator[CitizenRecord]:
        while True:
            yield from self._household()

    def _pick(self, weighted: tuple[tuple[str, ...], list[int]]) -> str:
        values, cum_weights = weighted
        return self.rng.choices(values, cum_weights=cum_weights)[0]

    def _serial(self, prefix: str) -> int:
        key = int(prefix)
        serial = self.last_serial.get(key, 0) + 1
        self.last_serial[key] = serial
        return serial

    def _household(self) -> Iterator[CitizenRecord]:
        rng = self.rng
        district = rng.choices(self.districts, cum_weights=self.district_cum_weights)[0]
        province = district.code[:2]
        religion = self._pick(self.religions.get(province, self.national_religion))
        family_names = FAMILY_NAMES_BY_PROVINCE.get(province)
        family_name = rng.choice(family_names) if family_names and rng.random() < 0.8 else None
        address = {
            "street": f"{rng.choice(('Jl.', 'Jl.', 'Jl.', 'Gg.'))} {rng.choice(STREETS)} No. {rng.randint(1, 250)}",
            "rt": f"{rng.randint(1, 15):03d}",
            "rw": f"{rng.randint(1, 12):03d}",
            "village": rng.choice(VILLAGE_STEMS) + rng.choice(VILLAGE_ENDINGS),
            "district_code": district.code,
        }
        issued = REFERENCE_DATE - timedelta(days=rng.randint(30, 20 * 365))
        kk_prefix = f"{district.code}{issued:%d%m%y}"
        kk_number = f"{kk_prefix}{self._serial(kk_prefix):04d}"

        head_age = rng.randint(19, 80)
        head_sex: Sex = "L" if rng.random() < 0.85 else "P"
        married = head_age >= 22 and rng.random() < 0.82
        members: list[tuple[Sex, int, str]] = [(head_sex, head_age, "head")]
        if married:
            spouse_age = max(18, min(95, head_age + rng.randint(-8, 4 if head_sex == "L" else 8)))
            members.append(("P" if head_sex == "L" else "L", spouse_age, "spouse"))
        if head_age >= 21:
            for _ in range(rng.choice((0, 1, 1, 2, 2, 2, 3, 3, 4, 5))):
                child_age = rng.randint(0, min(head_age - 19, 45))
                members.append(("L" if rng.random() < 0.51 else "P", child_age, "child"))
        if 35 <= head_age <= 60 and rng.random() < 0.12:
            members.append(
                (
                    "P" if rng.random() < 0.6 else "L",
                    min(100, head_age + rng.randint(22, 35)),
                    "parent",
                )
            )

        for order, (sex, age, role) in enumerate(members):
            yield self._citizen(
                sex=sex,
                age=age,
                role=role,
                order=order,
                married=married,
                religion=religion,
                family_name=family_name,
                district=district,
                kk_number=kk_number,
                address=address,
            )

    def _citizen(
        self,
        *,
        sex: Sex,
        age: int,
        role: str,
        order: int,
        married: bool,
        religion: str,
        family_name: str | None,
        district: Region,
        kk_number: str,
        address: dict[str, str],
    ) -> CitizenRecord:
        rng = self.rng
        birth_date = REFERENCE_DATE - timedelta(days=age * 365 + rng.randint(1, 364))
        nik_prefix = encode_nik(district.code, birth_date, sex, 1)[:12]
        nik = encode_nik(district.code, birth_date, sex, self._serial(nik_prefix))
        province = district.code[:2]
        birth_regency = (
            district.code[:4] if rng.random() < 0.85 else rng.choice(self.districts).code[:4]
        )
        return CitizenRecord(
            nik=nik,
            kk_number=kk_number,
            full_name=self._name(
                sex, province, family_name if role in ("head", "child") else None, order
            ),
            birth_place=self.regency_names[birth_regency].upper(),
            birth_date=birth_date,
            sex=sex,
            blood_type=self._pick(self.blood_types),
            religion=religion,
            marital_status=self._marital_status(age, role, married),
            occupation=self._occupation(age, sex, role),
            nationality="WNA" if rng.random() < 0.0005 else "WNI",
            status=self._status(age),
            family_relationship=_RELATIONSHIP[role]
            if role != "spouse"
            else ("ISTRI" if sex == "P" else "SUAMI"),
            **address,
        )

    def _name(self, sex: Sex, province: str, family_name: str | None, order: int) -> str:
        rng = self.rng
        first = rng.choice(MALE_NAMES if sex == "L" else FEMALE_NAMES)
        if province == "51" and rng.random() < 0.8:
            parts = ["I" if sex == "L" else "Ni", BALI_BIRTH_ORDER[order % 4], first]
        elif rng.random() < 0.25:
            parts = [first]  # a single name, common among older Javanese
        else:
            parts = [first, rng.choice(MALE_SECOND_NAMES if sex == "L" else FEMALE_SECOND_NAMES)]
        if family_name:
            parts.append(family_name)
        return " ".join(parts).upper()

    def _marital_status(self, age: int, role: str, married: bool) -> str:
        if role in ("head", "spouse"):
            if married:
                return "KAWIN"
            return (
                "BELUM KAWIN"
                if self.rng.random() < 0.5
                else self.rng.choice(("CERAI HIDUP", "CERAI MATI"))
            )
        if role == "parent":
            return "CERAI MATI" if self.rng.random() < 0.7 else "KAWIN"
        return "BELUM KAWIN" if age < 22 or self.rng.random() < 0.7 else "KAWIN"

    def _occupation(self, age: int, sex: Sex, role: str) -> str:
        if age < 5:
            return "BELUM/TIDAK BEKERJA"
        if age < 22:
            return "PELAJAR/MAHASISWA"
        if age >= 65:
            return "PENSIUNAN" if self.rng.random() < 0.3 else "BELUM/TIDAK BEKERJA"
        if sex == "P" and role == "spouse" and self.rng.random() < 0.5:
            return "MENGURUS RUMAH TANGGA"
        return self._pick(self.occupations)

    def _status(self, age: int) -> str:
        draw = self.rng.random()
        if draw < (0.02 if age >= 75 else 0.002):
            return "deceased"
        return "blocked" if draw > 0.9995 else "active"
