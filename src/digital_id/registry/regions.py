"""Indonesia's province, regency and district codes, and name resolution for addresses.

The table is reference data that ships with the code (see ``data/README.md`` for its source
and licence), so every process reads the same version without a database round trip.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import timedelta, timezone
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    level: int  # 1 province, 2 regency or city, 3 district (kecamatan)
    name: str


@dataclass(frozen=True, slots=True)
class DistrictAddress:
    """A district with the regency and province it belongs to."""

    district: Region
    regency: Region
    province: Region


class RegionTable:
    def __init__(self, regions: list[Region]) -> None:
        self._by_code = {region.code: region for region in regions}
        self.districts = tuple(r for r in regions if r.level == 3)
        self.regencies = tuple(r for r in regions if r.level == 2)
        self.provinces = tuple(r for r in regions if r.level == 1)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def get(self, code: str) -> Region | None:
        return self._by_code.get(code)

    def is_district(self, code: str) -> bool:
        region = self._by_code.get(code)
        return region is not None and region.level == 3

    def resolve(self, district_code: str) -> DistrictAddress | None:
        """District → regency → province, or None for a code not in the table."""
        district = self._by_code.get(district_code)
        if district is None or district.level != 3:
            return None
        regency = self._by_code[district_code[:4]]
        province = self._by_code[district_code[:2]]
        return DistrictAddress(district, regency, province)

    def districts_of(self, province_code: str) -> tuple[Region, ...]:
        return tuple(r for r in self.districts if r.code.startswith(province_code))


@cache
def load_regions() -> RegionTable:
    source = resources.files("digital_id.registry").joinpath("data/regions.csv")
    lines = source.read_text(encoding="utf-8").splitlines()
    rows = [
        Region(row["code"], int(row["level"]), " ".join(row["name"].split()))
        for row in csv.DictReader(lines)
    ]
    return RegionTable(rows)


@dataclass(frozen=True)
class TimeZone:
    """One of Indonesia's three time zones: its abbreviation and its fixed offset (none of
    them keeps daylight saving time)."""

    abbreviation: str
    offset: timezone


WIB = TimeZone("WIB", timezone(timedelta(hours=7), "WIB"))
WITA = TimeZone("WITA", timezone(timedelta(hours=8), "WITA"))
WIT = TimeZone("WIT", timezone(timedelta(hours=9), "WIT"))
# Keppres 41/1987, by province (the first two digits of a region code); the rest keep WIB.
_WITA_PROVINCES = frozenset(
    {"51", "52", "53", "63", "64", "65", "71", "72", "73", "74", "75", "76"}
)
_WIT_PROVINCES = frozenset({"81", "82", "91", "92", "93", "94", "95", "96"})


def time_zone(region_code: str) -> TimeZone:
    """The time zone of the province a region code (a citizen's district, say) lies in."""
    province = region_code[:2]
    if province in _WIT_PROVINCES:
        return WIT
    if province in _WITA_PROVINCES:
        return WITA
    return WIB
