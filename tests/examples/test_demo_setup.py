"""``python -m examples.demo setup`` registers each demo agency for logging in and out."""

from __future__ import annotations

import json
import secrets

import pytest

from digital_id.clients import service as clients
from examples.agency_app.app import AgencyConfig
from examples.agency_app.keys import generate_client_key
from examples.demo import __main__ as demo


@pytest.mark.parametrize("agency", demo.AGENCIES, ids=lambda agency: agency.slug)
def test_each_agency_is_registered_with_the_uris_its_app_uses(
    agency, session, tmp_path, monkeypatch
):
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path)
    issuer = "http://127.0.0.1:8000"

    with session.begin():
        demo._register(session, agency, issuer)
    with session.begin():
        demo._register(session, agency, issuer)  # a second setup updates, registers nothing new

    written = json.loads((tmp_path / f"{agency.slug}.json").read_text())
    registration = clients.get(session, written["client_id"]).registration
    app = AgencyConfig(
        name=written["name"],
        issuer=issuer,
        client_id=written["client_id"],
        private_jwk=generate_client_key(),
        base_url=written["base_url"],
        scope=written["scope"],
        session_secret=secrets.token_urlsafe(32),
    )
    assert len(clients.all_clients(session)) == 1
    assert registration["redirect_uris"] == [app.redirect_uri]
    assert registration["post_logout_redirect_uris"] == [app.post_logout_redirect_uri]
    assert registration["backchannel_logout_uri"] == app.backchannel_logout_uri


def test_the_kiosk_is_registered_for_the_device_grant_with_its_place(
    session, tmp_path, monkeypatch
):
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path)
    with session.begin():
        demo._register(session, demo.KIOSK, "http://127.0.0.1:8000")
    with session.begin():
        demo._register(session, demo.KIOSK, "http://127.0.0.1:8000")

    written = json.loads((tmp_path / "kiosk.json").read_text())
    registration = clients.get(session, written["client_id"]).registration
    assert len(clients.all_clients(session)) == 1
    assert registration["grant_types"] == ["urn:ietf:params:oauth:grant-type:device_code"]
    assert registration["redirect_uris"] == []
    assert registration["device_location"] == demo.KIOSK_LOCATION
    assert written["base_url"] == "http://127.0.0.1:8003"
