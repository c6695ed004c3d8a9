"""Values as a citizen reads them in the portal: moments in their own time zone (WIB, WITA or
WIT, from their province) as dates in words in the page's language ("5 Desember 2026, 19.11
WIB", babel), region names instead of codes, levels of assurance and sex in words, and
devices as "Chrome di Android" (ua-parser) instead of a user-agent string. Never ISO."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

import ua_parser
from babel.dates import format_date, format_datetime

from digital_id.registry.regions import RegionTable, time_zone
from digital_id.web.rendering import Page

# The clock's separator each language writes: 19.11 in Indonesian, 19:11 in English.
_MOMENT = {"id": "d MMMM y, HH.mm", "en": "d MMMM y, HH:mm"}
_UNKNOWN_FAMILIES = frozenset({"Other", ""})


class Readable:
    """The portal's words for one citizen (whose district gives the time zone) on one page."""

    def __init__(self, page: Page, district_code: str, regions: RegionTable) -> None:
        self.page = page
        self.zone = time_zone(district_code)
        self.regions = regions

    def moment(self, when: datetime | None) -> str:
        """A moment in the citizen's time zone, in words: "5 Desember 2026, 19.11 WIB"."""
        if when is None:
            return ""
        local = when.astimezone(self.zone.offset)
        language = self.page.language
        text = format_datetime(local, _MOMENT[language], locale=language)
        return f"{text} {self.zone.abbreviation}"

    def day(self, when: date) -> str:
        """A date in words: "20 Oktober 1990"."""
        return str(format_date(when, "d MMMM y", locale=self.page.language))

    def region(self, district_code: str) -> str:
        """A district code as the names of the district, regency and province."""
        resolved = self.regions.resolve(district_code)
        if resolved is None:
            return district_code
        return ", ".join((resolved.district.name, resolved.regency.name, resolved.province.name))

    def sex(self, code: str) -> str:
        return self.page.t(f"sex.{code}") if code in ("L", "P") else code

    def level(self, acr: str) -> str:
        key = f"level.{acr.rsplit(':', 1)[-1]}"
        return self.page.t(key) if self.page.t.has(key) else acr

    def device(self, user_agent: str | None) -> str:
        """A browser's user agent as "Chrome di Android" ("Chrome on Android")."""
        browser, system = _families(user_agent or "")
        if browser is None:
            return self.page.t("portal.unknown_device")
        if system is None:
            return browser
        return self.page.t("portal.device", browser=browser, system=system)


@lru_cache(maxsize=256)
def _families(user_agent: str) -> tuple[str | None, str | None]:
    """The browser's and the operating system's names (cached: a session's agent is read on
    every portal page, and parsing one costs regular expressions)."""
    parsed = ua_parser.parse(user_agent[:500])
    browser = parsed.user_agent.family if parsed.user_agent else None
    system = parsed.os.family if parsed.os else None
    if browser in _UNKNOWN_FAMILIES:
        browser = None
    if system in _UNKNOWN_FAMILIES:
        system = None
    return (browser.removesuffix(" Mobile") if browser else None), system
