"""What the browser tests share: Debian's Chromium driven by Playwright, Digital ID's settings
for a provider on a real port, a citizen with a PIN, an agency's registration."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from digital_id.accounts.activation import set_pin
from digital_id.accounts.pins import PinHasher
from digital_id.clients import service as clients
from digital_id.config import Settings, load_settings
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RejectReport
from tests.conftest import TEST_PASSPHRASE
from tests.factories import citizen_row

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PIN = "246810"

# Each browser test module is marked with this.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's Chromium is not installed (apt-get install -y chromium); CI installs it",
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


def provider_settings(
    database_url: str, keys_dir: Path, key_store: Any, issuer: str, **overrides: Any
) -> Settings:
    """Settings for a provider at ``issuer``, with its signing keys (RS256 for ID tokens,
    ES256 for access tokens) and a cheap argon2id."""
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")
    return load_settings(
        database_url=database_url,
        keys_dir=keys_dir,
        keys_passphrase=TEST_PASSPHRASE,
        issuer=issuer,
        pin_argon2_memory_kib=64,
        pin_argon2_time_cost=1,
        **overrides,
    )


def citizen_with_pin(engine: Any, key_store: Any, tmp_path: Path, **row: Any) -> dict[str, Any]:
    """A citizen in the register, born as ``row`` says, with the PIN ``PIN``."""
    record = citizen_row(**{"birth_date": date(1985, 4, 12), **row})
    CitizenImporter(engine).run(
        iter([(2, record)]), RecordValidator(load_regions()), RejectReport(tmp_path / "r.csv")
    )
    hasher = PinHasher(key_store.secret("pin_pepper"), memory_kib=64, time_cost=1)
    with Session(engine) as session, session.begin():
        set_pin(session, hasher, nik=record["nik"], pin=PIN)
    return record


def registered(engine: Any, metadata: dict[str, Any]) -> str:
    """An agency registered with ``metadata``; its client_id."""
    with Session(engine) as session, session.begin():
        return clients.register(
            session, metadata, production=False, active_algorithms={"RS256"}
        ).client.client_id


@contextmanager
def running_demo(
    database_url: str,
    engine: Any,
    keys_dir: Path,
    key_store: Any,
    tmp_path: Path,
    *,
    provider_host: str = "127.0.0.1",
    scope: str = "openid profile nik address",
    accepts_delegation: bool = False,
    **citizen: Any,
) -> Iterator[dict[str, Any]]:
    """Digital ID at ``provider_host`` and one demo agency (authlib, private_key_jwt), each a
    real HTTP server; a citizen with a PIN. ``accepts_delegation``: the agency lets a parent
    log in for their child."""
    from digital_id.app import create_app
    from examples.agency_app import AgencyConfig
    from examples.agency_app import create_app as create_agency_app
    from examples.agency_app.keys import generate_client_key, public_jwks
    from tests.web.conftest import free_port, serving

    provider_port, agency_port = free_port(), free_port()
    issuer = f"http://{provider_host}:{provider_port}"
    agency_url = f"http://127.0.0.1:{agency_port}"
    settings = provider_settings(database_url, keys_dir, key_store, issuer)
    row = citizen_with_pin(engine, key_store, tmp_path, **citizen)
    private_jwk = generate_client_key("RS256")
    client_id = registered(
        engine,
        {
            "client_name#id": "Badan Pendapatan Daerah",
            "client_name#en": "Regional Tax Office",
            "redirect_uris": [f"{agency_url}/callback"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": public_jwks(private_jwk),
            "scope": scope,
            "accepts_delegation": accepts_delegation,
        },
    )
    agency = create_agency_app(
        AgencyConfig(
            name="Badan Pendapatan Daerah (demo)",
            issuer=issuer,
            client_id=client_id,
            private_jwk=private_jwk,
            base_url=agency_url,
            scope=scope,
            session_secret="a-test-session-secret-of-some-length",
        )
    )
    with serving(create_app(settings), provider_port), serving(agency, agency_port):
        yield {"agency": agency_url, "agency_issuer": issuer, "issuer": issuer, "citizen": row}
