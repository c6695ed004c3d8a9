"""The message catalogue: every text a page shows, in Bahasa Indonesia and English.

A JSON file per language (the keys are the same in both; a test holds them to that), read
once. No gettext toolchain: two languages and a few dozen messages do not need compiled
catalogues, and JSON is what translators' tools export.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Final

LANGUAGES: Final = ("id", "en")
DEFAULT_LANGUAGE: Final = "id"


@cache
def catalogue(language: str) -> dict[str, str]:
    source = resources.files("digital_id.web").joinpath(f"locales/{language}.json")
    messages: dict[str, str] = json.loads(source.read_text(encoding="utf-8"))
    return messages


class Translator:
    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self._messages = catalogue(self.language)

    def __call__(self, key: str, **values: Any) -> str:
        return self._messages[key].format(**values)

    def has(self, key: str) -> bool:
        return key in self._messages


def negotiate(*, chosen: str | None, ui_locales: str | None, accept_language: str | None) -> str:
    """The page language: the visible switch (a cookie), then the agency's ``ui_locales``,
    then the browser's Accept-Language, else Bahasa Indonesia."""
    if chosen in LANGUAGES:
        return chosen
    for tag in (ui_locales or "").split():
        if (language := tag.split("-")[0].lower()) in LANGUAGES:
            return language
    ranked = []
    for index, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if quality > 0:  # q=0 means "not acceptable" (RFC 9110, section 12.4.2)
            ranked.append((-quality, index, tag.split("-")[0].lower()))
    for _, _, language in sorted(ranked):
        if language in LANGUAGES:
            return language
    return DEFAULT_LANGUAGE
