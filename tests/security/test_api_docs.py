"""/docs, /redoc and /openapi.json: a map of every endpoint, served in development and, in
production, only when the operator turns it on (DIGITAL_ID_API_DOCS)."""

from __future__ import annotations

import httpx

from digital_id.app import create_app
from digital_id.config import load_settings
from tests.conftest import TEST_PASSPHRASE
from tests.web.conftest import free_port, serving

PATHS = ("/docs", "/redoc", "/openapi.json")


def answers(settings, **update) -> dict[str, int]:
    with serving(create_app(settings.model_copy(update=update)), free_port()) as url:
        return {path: httpx.get(url + path).status_code for path in PATHS}


def test_production_serves_no_api_docs_unless_turned_on(provider):
    production = {"env": "production", "issuer": "https://id.example.go.id"}

    assert set(answers(provider.settings, **production).values()) == {404}
    assert set(answers(provider.settings, **production, api_docs=True).values()) == {200}
    assert set(answers(provider.settings).values()) == {200}  # development


def test_the_setting_defaults_to_off_in_production_only():
    production = load_settings(
        env="production", issuer="https://id.example.go.id", keys_passphrase=TEST_PASSPHRASE
    )
    assert production.serves_api_docs is False
    assert load_settings(env="development").serves_api_docs is True
