"""``python -m examples.demo setup`` registers each demo agency for logging in and out."""

from __future__ import annotations

import json
import secrets
from datetime import date

import pytest

from digital_id.accounts.delegation import children_in_care
from digital_id.accounts.pins import PinHasher
from digital_id.clients import service as clients
from digital_id.registry import synthetic
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RegisterFile, RejectReport
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


def test_the_social_aid_demo_accepts_a_parent_acting_for_a_child(session, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path)
    (aid,) = [agency for agency in demo.AGENCIES if agency.slug == "aid"]
    with session.begin():
        demo._register(session, aid, "http://127.0.0.1:8000")
    written = json.loads((tmp_path / "aid.json").read_text())
    assert clients.get(session, written["client_id"]).registration["accepts_delegation"] is True


def test_the_third_demo_citizen_is_a_parent_with_a_child_in_care(engine, session, tmp_path):
    path = tmp_path / "citizens.csv"
    synthetic.write_file(path, synthetic.generate_citizens(2000, seed=1), "csv")
    with RegisterFile(path, None) as source:
        CitizenImporter(engine).import_file(
            source, RecordValidator(load_regions()), RejectReport(tmp_path / "rejects.csv")
        )
    hasher = PinHasher(b"p" * 32, memory_kib=8, time_cost=1)
    with session.begin():
        chosen = demo._demo_citizens(session, hasher)
    today = date.today()
    assert [children == "-" for _, _, children in chosen] == [True, True, False]
    parent = chosen[2][0]
    (first, *_) = children_in_care(session, parent, today)
    assert first.full_name in chosen[2][2]
