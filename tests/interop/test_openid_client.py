"""docs/integrating/openid-client/agency.mjs: the recipe, run by node with openid-client 6 from
npm (tests/interop/node, installed by ``npm ci``), against the provider on a real port; a
citizen's browser logs in through it (with and without a pushed request and DPoP), and presses
Deny."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import ECKey, KeySet

from tests.interop.conftest import RECIPES, Browser, require, which
from tests.web.conftest import Provider, free_port

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
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The recipe, unchanged, beside the installed openid-client, serving on a port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if fapi2:
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
        "AGENCY_REDIRECT_URI": f"{url}/callback",
        "PORT": str(port),
        "AGENCY_PUSH_REQUESTS": "1" if push else "0",
        "AGENCY_DPOP": "1" if dpop else "0",
    }
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
