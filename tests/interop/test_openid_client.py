"""docs/integrating/openid-client/agency.mjs: the recipe, run by node with openid-client 6 from
npm (tests/interop/node, installed by ``npm ci``), against the provider on a real port; a
citizen's browser logs in through it (with and without a pushed request and DPoP), and presses
Deny; as a kiosk (the device grant), a citizen approves or denies on their own phone."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from joserfc.jwk import ECKey, KeySet

from tests.interop.conftest import RECIPES, Browser, require, which
from tests.web.conftest import PIN, Provider, free_port, hidden
from tests.web.test_device_authorization_grant import DEVICE_GRANT, PLACE

NODE_PROJECT = Path(__file__).resolve().parent / "node"
RECIPE = RECIPES / "openid-client" / "agency.mjs"


@pytest.fixture
def node() -> str:
    binary = which("node")
    require(binary is not None, "node is not installed (apt-get install -y nodejs)")
    require(
        (NODE_PROJECT / "node_modules" / "openid-client").is_dir(),
        f"openid-client is not installed (cd {NODE_PROJECT} && npm ci)",
    )
    assert binary is not None
    return binary


@pytest.fixture
def settings(settings):
    """Kiosks told to poll every second, not every five, so openid-client's poller (which
    waits the interval before each poll) finishes soon."""
    return settings.model_copy(update={"device_poll_interval_seconds": 1})


@contextmanager
def agency_app(
    node: str,
    provider: Provider,
    issuer: str,
    tmp_path: Path,
    *,
    push: bool = False,
    dpop: bool = False,
    fapi2: bool = False,
    encryption_key: ECKey | None = None,
    device: bool = False,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The recipe, unchanged, beside the installed openid-client, serving on a port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if device:
        agency = provider.agency(
            "client_secret_basic",
            redirect_uris=[],
            grant_types=[DEVICE_GRANT],
            device_location=PLACE,
            scope="openid profile",
        )
    elif fapi2:
        agency = provider.agency(
            "private_key_jwt",
            alg="ES256",
            redirect_uris=[f"{url}/callback"],
            scope="openid profile",
            fapi2_security_profile=True,
            token_endpoint_auth_signing_alg="ES256",
            id_token_signed_response_alg="ES256",
        )
    elif encryption_key is not None:
        agency = provider.agency(
            "client_secret_basic",
            redirect_uris=[f"{url}/callback"],
            scope="openid profile",
            jwks=KeySet([encryption_key]).as_dict(private=False),
            id_token_encrypted_response_alg="ECDH-ES",
            id_token_encrypted_response_enc="A256GCM",
        )
    else:
        agency = provider.agency(
            "client_secret_basic", redirect_uris=[f"{url}/callback"], scope="openid profile"
        )
    app = tmp_path / "agency"
    app.mkdir()
    (app / "agency.mjs").write_text(RECIPE.read_text())
    (app / "node_modules").symlink_to(NODE_PROJECT / "node_modules")
    environment = {
        **os.environ,
        "DIGITAL_ID_ISSUER": issuer,
        "AGENCY_CLIENT_ID": agency.client_id,
        "AGENCY_CLIENT_SECRET": agency.secret or "",
        "PORT": str(port),
        "AGENCY_PUSH_REQUESTS": "1" if push else "0",
        "AGENCY_DPOP": "1" if dpop else "0",
        "AGENCY_DEVICE": "1" if device else "0",
    }
    if not device:  # a kiosk has no redirect URI
        environment["AGENCY_REDIRECT_URI"] = f"{url}/callback"
    if agency.private_key is not None:
        environment["AGENCY_PRIVATE_KEY"] = json.dumps(agency.private_key.as_dict(private=True))
    if encryption_key is not None:
        environment["AGENCY_ENCRYPTION_KEY"] = json.dumps(encryption_key.as_dict(private=True))
    log = tmp_path / "agency.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [node, str(app / "agency.mjs")],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "agency listening" not in log.read_text():
            assert process.poll() is None, f"node stopped:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"node did not start:\n{log.read_text()}"
            time.sleep(0.1)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_citizen_logs_in_through_openid_client(
    node, provider, issuer, browser: Browser, tmp_path
):
    citizen = provider.citizen()
    with agency_app(node, provider, issuer, tmp_path) as (url, _):
        login = browser.http.get(f"{url}/")
        assert str(login.url).startswith(f"{issuer}/authorize?")
        assert "code_challenge_method=S256" in str(login.url)
        consent = browser.log_in(login, citizen["nik"])
        answer = browser.decide(consent, "approve")

        assert answer.status_code == 200, (tmp_path / "agency.log").read_text()
        assert str(answer.url).startswith(f"{url}/callback?code=")
        result = json.loads(answer.text)
        assert result["userinfo"]["name"] == citizen["full_name"]
        assert result["userinfo"]["sub"] == result["sub"]
        assert result["id_token_encrypted"] is False
        assert result["sub"] != citizen["nik"]


def test_deny_reaches_the_agency_as_access_denied(
    node, provider, issuer, browser: Browser, tmp_path
):
    citizen = provider.citizen()
    with agency_app(node, provider, issuer, tmp_path) as (url, _):
        consent = browser.log_in(browser.http.get(f"{url}/"), citizen["nik"])
        answer = browser.decide(consent, "deny")

        assert answer.status_code == 403, (tmp_path / "agency.log").read_text()
        assert json.loads(answer.text)["error"] == "access_denied"


def test_a_citizen_logs_in_through_openid_client_with_a_pushed_request(
    node, provider, issuer, browser: Browser, tmp_path
):
    """openid-client's own PAR (buildAuthorizationUrlWithPAR): the browser reaches /authorize
    with client_id and request_uri alone, and the login completes as before."""
    citizen = provider.citizen()
    with agency_app(node, provider, issuer, tmp_path, push=True) as (url, _):
        login = browser.http.get(f"{url}/")
        assert str(login.url).startswith(f"{issuer}/authorize?")
        assert set(parse_qs(urlsplit(str(login.url)).query)) == {"client_id", "request_uri"}
        consent = browser.log_in(login, citizen["nik"])
        answer = browser.decide(consent, "approve")

        assert answer.status_code == 200, (tmp_path / "agency.log").read_text()
        result = json.loads(answer.text)
        assert result["userinfo"]["name"] == citizen["full_name"]


def test_openid_client_binds_the_tokens_to_its_key_with_dpop_and_par(
    node, provider, issuer, browser: Browser, tmp_path
):
    """openid-client's DPoP handle through PAR, the token endpoint (learning our nonce from a
    use_dpop_nonce refusal and retrying) and UserInfo (the DPoP scheme, with ath)."""
    citizen = provider.citizen()
    with agency_app(node, provider, issuer, tmp_path, push=True, dpop=True) as (url, _):
        consent = browser.log_in(browser.http.get(f"{url}/"), citizen["nik"])
        answer = browser.decide(consent, "approve")

        assert answer.status_code == 200, (tmp_path / "agency.log").read_text()
        result = json.loads(answer.text)
        assert result["token_type"].lower() == "dpop"
        assert result["userinfo"]["name"] == citizen["full_name"]


def test_a_fapi2_agency_logs_a_citizen_in_through_openid_client(
    node, provider, issuer, browser: Browser, tmp_path
):
    """docs/integrating/fapi2.md: a client registered under the FAPI 2.0 profile, through
    openid-client with private_key_jwt (ES256), PAR and DPoP together."""
    citizen = provider.citizen()
    with agency_app(node, provider, issuer, tmp_path, push=True, dpop=True, fapi2=True) as (
        url,
        _,
    ):
        login = browser.http.get(f"{url}/")
        assert set(parse_qs(urlsplit(str(login.url)).query)) == {"client_id", "request_uri"}
        answer = browser.decide(browser.log_in(login, citizen["nik"]), "approve")

        assert answer.status_code == 200, (tmp_path / "agency.log").read_text()
        result = json.loads(answer.text)
        assert result["token_type"].lower() == "dpop"
        assert result["userinfo"]["name"] == citizen["full_name"]


def test_openid_client_decrypts_an_encrypted_id_token(
    node, provider, issuer, browser: Browser, tmp_path
):
    """An agency registered for encrypted ID tokens (ECDH-ES, A256GCM): openid-client's
    enableDecryptingResponses opens the token and checks the signed one inside."""
    key = ECKey.generate_key("P-256", parameters={"use": "enc", "alg": "ECDH-ES"}, auto_kid=True)
    citizen = provider.citizen()
    with agency_app(node, provider, issuer, tmp_path, encryption_key=key) as (url, _):
        consent = browser.log_in(browser.http.get(f"{url}/"), citizen["nik"])
        answer = browser.decide(consent, "approve")

        assert answer.status_code == 200, (tmp_path / "agency.log").read_text()
        result = json.loads(answer.text)
        assert result["id_token_encrypted"] is True
        assert result["sub"] == result["userinfo"]["sub"]
        assert result["userinfo"]["name"] == citizen["full_name"]


# --- the kiosk (AGENCY_DEVICE=1): the device authorization grant ----------------------------


def start_kiosk(url: str) -> dict[str, Any]:
    started = httpx.post(f"{url}/kiosk/start", timeout=30)
    assert started.status_code == 200, started.text
    body: dict[str, Any] = started.json()
    return body


def decide_on_phone(
    browser: Browser, verification_uri_complete: str, nik: str, decision: str
) -> httpx.Response:
    """The citizen's phone: open the kiosk's link (a QR code, on a real kiosk), confirm the
    code it fills in, log in with NIK and PIN, and approve or deny."""
    page = browser.http.get(verification_uri_complete)
    assert page.status_code == 200, page.text[:2000]
    user_code = parse_qs(urlsplit(verification_uri_complete).query)["user_code"][0]
    assert f'value="{user_code}"' in page.text
    for action, fields in [
        ("/device", {"user_code": user_code}),
        ("/device/login", {"nik": nik, "pin": PIN}),
        ("/device/consent", {"decision": decision}),
    ]:
        assert f'action="{action}"' in page.text, page.text[:2000]
        page = browser.http.post(
            urljoin(str(page.url), action),
            data={"csrf_token": hidden(page.text, "csrf_token"), **fields},
        )
        assert page.status_code == 200, page.text[:2000]
    return page


def kiosk_outcome(url: str, kiosk_id: str, log: Path) -> dict[str, Any]:
    """The kiosk's screen, asking until openid-client's poller has settled."""
    deadline = time.monotonic() + 60
    while True:
        status = httpx.get(f"{url}/kiosk/status", params={"id": kiosk_id}, timeout=30)
        assert status.status_code == 200, status.text
        body: dict[str, Any] = status.json()
        if body["status"] != "pending":
            return body
        assert time.monotonic() < deadline, f"the kiosk is still waiting:\n{log.read_text()}"
        time.sleep(0.2)


def test_a_citizen_signs_in_at_a_kiosk_through_openid_client(
    node, provider, issuer, browser: Browser, tmp_path
):
    """openid-client's initiateDeviceAuthorization and pollDeviceAuthorizationGrant: the
    kiosk shows a code, the citizen approves on their phone, the poller gets the tokens."""
    citizen = provider.citizen()
    with agency_app(node, provider, issuer, tmp_path, device=True) as (url, _):
        started = start_kiosk(url)
        assert started["verification_uri"] == f"{issuer}/device"
        assert started["verification_uri_complete"] == (
            f"{issuer}/device?user_code={started['user_code']}"
        )
        waiting = httpx.get(f"{url}/kiosk/status", params={"id": started["id"]}, timeout=30)
        assert waiting.json() == {"status": "pending"}
        done = decide_on_phone(
            browser, started["verification_uri_complete"], citizen["nik"], "approve"
        )
        assert "Kantor Pajak Daerah" in done.text

        result = kiosk_outcome(url, started["id"], tmp_path / "agency.log")
        assert result["status"] == "approved", (tmp_path / "agency.log").read_text()
        assert result["sub"] != citizen["nik"]
        assert result["acr"] == "urn:digital-id:loa:low"
        assert result["token_type"].lower() == "bearer"
        assert result["userinfo"]["sub"] == result["sub"]
        assert result["userinfo"]["name"] == citizen["full_name"]
        # The outcome is told once.
        gone = httpx.get(f"{url}/kiosk/status", params={"id": started["id"]}, timeout=30)
        assert gone.status_code == 404


def test_deny_on_the_phone_reaches_the_kiosk_as_access_denied(
    node, provider, issuer, browser: Browser, tmp_path
):
    citizen = provider.citizen()
    with agency_app(node, provider, issuer, tmp_path, device=True) as (url, _):
        started = start_kiosk(url)
        decide_on_phone(browser, started["verification_uri_complete"], citizen["nik"], "deny")

        result = kiosk_outcome(url, started["id"], tmp_path / "agency.log")
        assert result["status"] == "failed"
        assert result["error"] == "access_denied"
        assert "sub" not in result


def test_a_kiosk_binds_its_tokens_with_dpop_through_openid_client(
    node, provider, issuer, browser: Browser, tmp_path
):
    """The poller with a DPoP handle: each poll carries a proof (openid-client retries with
    Digital ID's nonce when asked), and the tokens come out bound to the kiosk's key."""
    citizen = provider.citizen()
    with agency_app(node, provider, issuer, tmp_path, device=True, dpop=True) as (url, _):
        started = start_kiosk(url)
        decide_on_phone(browser, started["verification_uri_complete"], citizen["nik"], "approve")

        result = kiosk_outcome(url, started["id"], tmp_path / "agency.log")
        assert result["status"] == "approved", (tmp_path / "agency.log").read_text()
        assert result["token_type"].lower() == "dpop"
        assert result["userinfo"]["name"] == citizen["full_name"]
