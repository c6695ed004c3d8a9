"""Relying parties built on authlib's own client library, against the provider over real HTTP.

Two of them: authlib's OAuth2 client used directly (the way an agency's backend would), and the
demo agency app in ``examples/agency_app`` (authlib's Starlette client), each driven through
discovery, the authorization code flow with PKCE S256 and a nonce, the citizen's login and
consent in a browser, the token request, ID token validation and UserInfo.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidClaimError
from joserfc.jwk import KeySet

from examples.agency_app import AgencyConfig
from examples.agency_app import create_app as create_agency_app
from examples.agency_app.keys import generate_client_key, public_jwks
from tests.web.conftest import Agency, Browser, free_port, query_of, serving

SCOPE = "openid profile"


@pytest.fixture
def browser() -> Iterator[Browser]:
    with httpx.Client(timeout=30) as http:
        yield Browser(http)


def discover(issuer: str) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0, section 4: the issuer in the document must be ours."""
    metadata: dict[str, Any] = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
    assert metadata["issuer"] == issuer
    return metadata


def relying_party(agency: Agency, metadata: dict[str, Any]) -> OAuth2Client:
    """authlib's OAuth2 client for ``agency``, authenticating as it registered."""
    if agency.method == "private_key_jwt":
        assert agency.private_key is not None
        client = OAuth2Client(
            agency.client_id,
            agency.private_key,  # authlib's PrivateKeyJWT signs with the "client secret"
            token_endpoint_auth_method="private_key_jwt",
            scope=SCOPE,
            redirect_uri=agency.redirect_uri,
            code_challenge_method="S256",
        )
        # Digital ID takes assertions that expire within five minutes (README); authlib's
        # PrivateKeyJWT signs exp = iat + 3600 unless the claims say otherwise (see the test
        # below). authlib also writes its jti into this dict: one client, one assertion. Its
        # first argument is the audience: the issuer (RFC 7523bis), not the token endpoint.
        client.register_client_auth_method(
            PrivateKeyJWT(metadata["issuer"], claims={"exp": int(time.time()) + 60})
        )
        return client
    return OAuth2Client(
        agency.client_id,
        agency.secret,
        token_endpoint_auth_method=agency.method,
        scope=SCOPE,
        redirect_uri=agency.redirect_uri,
        code_challenge_method="S256",
    )


def verified_id_token(
    id_token: str, *, metadata: dict[str, Any], client_id: str, nonce: str, access_token: str
) -> CodeIDToken:
    """OpenID Connect Core 1.0, section 3.1.3.7, as authlib's OIDC client does it: the
    signature against the published JWKS, then authlib's claims validation."""
    keys = KeySet.import_key_set(httpx.get(metadata["jwks_uri"]).json())
    token = jwt.decode(id_token, keys, algorithms=metadata["id_token_signing_alg_values_supported"])
    claims = CodeIDToken(
        token.claims,
        token.header,
        {
            "iss": {"essential": True, "value": metadata["issuer"]},
            "aud": {"essential": True, "value": client_id},
        },
        {"nonce": nonce, "client_id": client_id, "access_token": access_token},
    )
    claims.validate(leeway=10)
    return claims


@pytest.mark.parametrize("method", ["private_key_jwt", "client_secret_basic"])
def test_authlib_oauth2_client_logs_a_citizen_in(provider, issuer, browser, method):
    citizen = provider.citizen()
    agency = provider.agency(method)
    metadata = discover(issuer)
    assert method in metadata["token_endpoint_auth_methods_supported"]
    nonce = secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(48)

    with relying_party(agency, metadata) as client:
        url, state = client.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        redirect = browser.log_in_and_consent(url, citizen["nik"])
        assert redirect.startswith(agency.redirect_uri + "?")
        assert query_of(redirect)["iss"] == issuer  # RFC 9207; authlib leaves this to us
        token = client.fetch_token(
            metadata["token_endpoint"],
            authorization_response=redirect,
            state=state,
            code_verifier=verifier,
        )
        userinfo = client.get(metadata["userinfo_endpoint"])

    assert token["token_type"] == "Bearer"
    assert set(token["scope"].split()) == set(SCOPE.split())
    checks = {
        "metadata": metadata,
        "client_id": agency.client_id,
        "nonce": nonce,
        "access_token": token["access_token"],
    }
    claims = verified_id_token(token["id_token"], **checks)
    assert claims["nonce"] == nonce
    assert "at_hash" in claims
    # The checks bite: another login's nonce, or an access token it was not issued with.
    for name, value in [("nonce", "another-nonce"), ("access_token", token["access_token"] + "x")]:
        with pytest.raises(InvalidClaimError):
            verified_id_token(token["id_token"], **{**checks, name: value})
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == claims["sub"]
    assert userinfo.json()["name"] == citizen["full_name"]


def test_authlib_default_assertion_lifetime_is_refused_with_the_reason(provider, issuer):
    """authlib's PrivateKeyJWT, left at its defaults, asks for an hour; the provider answers
    invalid_client and names its five-minute limit, before it looks at the code."""
    agency = provider.agency("private_key_jwt")
    metadata = discover(issuer)

    with OAuth2Client(
        agency.client_id, agency.private_key, token_endpoint_auth_method="private_key_jwt"
    ) as client:
        client.register_client_auth_method(PrivateKeyJWT(metadata["issuer"]))
        with pytest.raises(OAuthError) as refused:
            client.fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code="never-issued",
                redirect_uri=agency.redirect_uri,
                code_verifier=secrets.token_urlsafe(48),
            )

    assert refused.value.error == "invalid_client"
    assert refused.value.description == "the assertion's exp is more than 300 seconds ahead"


def test_demo_agency_app_logs_a_citizen_in(provider, issuer, browser):
    citizen = provider.citizen()
    port = free_port()
    agency_url = f"http://127.0.0.1:{port}"
    private_jwk = generate_client_key()
    agency = provider.agency(
        "private_key_jwt",
        jwks=public_jwks(private_jwk),
        redirect_uris=[f"{agency_url}/callback"],
    )
    config = AgencyConfig(
        name="Kantor Pajak Daerah (demo)",
        issuer=issuer,
        client_id=agency.client_id,
        private_jwk=private_jwk,
        base_url=agency_url,
        scope=SCOPE,
        session_secret=secrets.token_urlsafe(32),
    )

    with serving(create_agency_app(config), port):
        start = browser.http.get(f"{agency_url}/login")
        assert start.status_code == 302, start.text[:2000]
        assert start.headers["location"].startswith(f"{issuer}/authorize?")
        redirect = browser.log_in_and_consent(start.headers["location"], citizen["nik"])
        assert redirect.startswith(f"{agency_url}/callback?")
        callback = browser.http.get(redirect)
        assert callback.status_code == 303, callback.text[:2000]
        home = browser.http.get(urljoin(redirect, callback.headers["location"]))

    assert home.status_code == 200, home.text[:2000]
    assert "Signed in with Digital ID" in home.text
    rows = re.findall(r'<th scope="row"><code>(\w+)</code></th><td><pre>([^<]*)</pre>', home.text)
    claims = {name: html.unescape(value) for name, value in rows}
    shown = re.search(r'<pre class="json">([^<]*)</pre>', home.text)
    assert shown, home.text[:2000]
    userinfo = json.loads(html.unescape(shown.group(1)))
    assert userinfo["name"] == citizen["full_name"]
    assert userinfo["sub"] == claims["sub"]
    assert claims["iss"] == issuer
    assert claims["aud"] == agency.client_id
    assert {"nonce", "at_hash"} <= claims.keys()  # the demo checked both
