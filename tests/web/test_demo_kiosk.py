"""The demo kiosk (examples/kiosk_app) against a live provider: it shows a QR code of the
verification URI and the user code, the citizen approves on their phone, and the kiosk's
poll (authlib's client, private_key_jwt) welcomes them by name, once; a denial and an
expiry end the wait."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import update

from digital_id.db.types import utc_now
from digital_id.grants.models import DeviceAuthorization
from examples.agency_app.keys import generate_client_key, public_jwks
from examples.kiosk_app.app import KioskConfig, create_app
from tests.web.test_device_authorization_grant import DEVICE_GRANT, PLACE, approve


def kiosk_app(provider, issuer: str) -> TestClient:
    private_jwk = generate_client_key()
    agency = provider.agency(
        "private_key_jwt",
        redirect_uris=[],
        grant_types=[DEVICE_GRANT],
        device_location=PLACE,
        jwks=public_jwks(private_jwk),
        scope="openid profile",
    )
    config = KioskConfig(
        name="Anjungan Pajak (demo)",
        issuer=issuer,
        client_id=agency.client_id,
        private_jwk=private_jwk,
    )
    return TestClient(create_app(config), base_url="http://kiosk.test")


def start(kiosk: TestClient) -> tuple[str, httpx.Response]:
    page = kiosk.post("/start")
    assert page.status_code == 200, page.text
    screen = str(page.url).rsplit("/", 1)[1]
    return screen, page


def status(kiosk: TestClient, screen: str) -> dict:
    app = kiosk.app
    waiting = app.state.kiosk.waiting[screen]
    waiting.next_poll = 0  # the test does not wait out the interval
    return kiosk.get(f"/session/{screen}/status").json()


def test_the_kiosk_shows_a_qr_code_and_welcomes_the_citizen_after_approval(provider, issuer):
    citizen = provider.citizen()
    kiosk = kiosk_app(provider, issuer)
    screen, page = start(kiosk)
    user_code = re.search(r'id="user-code">([A-Z]{4}-[A-Z]{4})<', page.text).group(1)
    assert "<svg" in page.text
    assert f"{issuer}/device?user_code={user_code}" in page.text
    assert status(kiosk, screen) == {"state": "pending", "name": None}

    with httpx.Client(base_url=issuer) as phone:
        approve(phone, user_code, citizen["nik"])
    welcome = status(kiosk, screen)
    assert welcome["state"] == "welcome"
    assert welcome["name"] == citizen["full_name"]
    assert kiosk.app.state.kiosk.client.token is None  # nothing kept once welcomed


def test_the_kiosk_learns_of_a_denial(provider, issuer):
    citizen = provider.citizen()
    kiosk = kiosk_app(provider, issuer)
    screen, page = start(kiosk)
    user_code = re.search(r'id="user-code">([A-Z]{4}-[A-Z]{4})<', page.text).group(1)
    with httpx.Client(base_url=issuer) as phone:
        approve(phone, user_code, citizen["nik"], decision="deny")
    assert status(kiosk, screen)["state"] == "denied"


def test_the_kiosk_stops_waiting_when_the_code_expires(provider, issuer):
    kiosk = kiosk_app(provider, issuer)
    screen, _ = start(kiosk)
    with provider.engine.begin() as connection:
        connection.execute(
            update(DeviceAuthorization).values(expires_at=utc_now() - timedelta(seconds=1))
        )
    assert status(kiosk, screen)["state"] == "expired"


def test_the_kiosk_paces_its_polls_whatever_the_page_does(provider, issuer):
    kiosk = kiosk_app(provider, issuer)
    screen, _ = start(kiosk)
    for _ in range(5):
        assert kiosk.get(f"/session/{screen}/status").json()["state"] == "pending"
    # Five page polls inside the first interval sent nothing to Digital ID: no slow_down.
    assert kiosk.app.state.kiosk.waiting[screen].interval == 5
