"""A running provider (the real app over HTTP, on SQLite and PostgreSQL) and a way to drive it
as an agency and a citizen's browser would."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy.orm import Session

from digital_id.accounts.activation import set_pin
from digital_id.accounts.pins import PinHasher
from digital_id.app import create_app
from digital_id.clients import service as clients
from digital_id.config import load_settings
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RejectReport
from tests.conftest import TEST_PASSPHRASE
from tests.factories import citizen_row

ISSUER = "http://127.0.0.1:8000"
PIN = "246810"
REDIRECT_URI = "https://pajak.example.go.id/callback"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode()
    return verifier, challenge.rstrip("=")


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden field {name} in page"
    return html.unescape(match.group(1))


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class Agency:
    client_id: str
    secret: str | None
    private_key: RSAKey | ECKey | None
    method: str
    redirect_uri: str = REDIRECT_URI
    issued: list[str] = field(default_factory=list)

    def assertion(self, **overrides: Any) -> str:
        assert self.private_key is not None
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": ISSUER,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
            **overrides,
        }
        claims = {name: value for name, value in claims.items() if value is not None}
        header = {"alg": self.private_key.alg or "RS256", "kid": self.private_key.kid}
        return jwt.encode(header, claims, self.private_key)

    def token_request(self, code: str, verifier: str | None, **extra: str) -> dict[str, Any]:
        """The form and auth for a token request, authenticated as registered."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        if verifier is not None:
            form["code_verifier"] = verifier
        return self.authenticated(form | extra)

    def authenticated(self, form: dict[str, str]) -> dict[str, Any]:
        """``form`` with this client's authentication added, as httpx keyword arguments."""
        form = dict(form)
        auth = None
        if self.method == "client_secret_basic":
            auth = (self.client_id, self.secret or "")
        elif self.method == "client_secret_post":
            form |= {"client_id": self.client_id, "client_secret": self.secret or ""}
        elif self.method == "private_key_jwt":
            form |= {
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": self.assertion(),
            }
        else:
            form["client_id"] = self.client_id
        return {"data": form, "auth": auth}


class Provider:
    def __init__(
        self, http: TestClient, engine: Any, key_store: Any, settings: Any, tmp_path: Path
    ) -> None:
        self.tmp_path = tmp_path
        self.http = http
        self.engine = engine
        self.key_store = key_store
        self.settings = settings
        self.hasher = PinHasher(
            key_store.secret("pin_pepper"),
            memory_kib=settings.pin_argon2_memory_kib,
            time_cost=settings.pin_argon2_time_cost,
        )

    # --- arranging -------------------------------------------------------------------------

    def citizen(self, *, pin: str | None = PIN, **overrides: Any) -> dict[str, Any]:
        row = citizen_row(**{"birth_date": date(1990, 10, 20), **overrides})
        CitizenImporter(self.engine).run(
            iter([(2, row)]),
            RecordValidator(load_regions()),
            RejectReport(self.tmp_path / "rejects.csv"),
        )
        if pin is not None:
            with Session(self.engine) as session, session.begin():
                set_pin(session, self.hasher, nik=row["nik"], pin=pin)
        return row

    def agency(
        self, method: str = "client_secret_basic", *, alg: str = "RS256", **metadata: Any
    ) -> Agency:
        private_key: RSAKey | ECKey | None = None
        data: dict[str, Any] = {
            "client_name#id": "Kantor Pajak Daerah",
            "client_name#en": "Regional Tax Office",
            "redirect_uris": [REDIRECT_URI],
            "scope": "openid profile nik address",
            "token_endpoint_auth_method": method,
        }
        if method == "private_key_jwt" and not {"jwks", "jwks_uri"} & metadata.keys():
            private_key = (
                ECKey.generate_key("P-256", parameters={"alg": "ES256"}, auto_kid=True)
                if alg == "ES256"
                else RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)
            )
            data["jwks"] = KeySet([private_key]).as_dict(private=False)
        data |= metadata
        with Session(self.engine) as session, session.begin():
            registered = clients.register(
                session, data, production=False, active_algorithms={"RS256", "PS256", "ES256"}
            )
            client_id = registered.client.client_id
        return Agency(
            client_id,
            registered.client_secret,
            private_key,
            method,
            redirect_uri=(data["redirect_uris"] or [""])[0],
        )

    # --- acting as the browser -------------------------------------------------------------

    def authorize(self, agency: Agency, *, method: str = "GET", **params: Any) -> httpx.Response:
        query = {
            "response_type": "code",
            "client_id": agency.client_id,
            "redirect_uri": agency.redirect_uri,
            "scope": "openid profile",
            "state": "state-123",
            "nonce": secrets.token_urlsafe(12),
            **params,
        }
        query = {name: value for name, value in query.items() if value is not None}
        if method == "POST":
            return self.http.post("/authorize", data=query, follow_redirects=False)
        return self.http.get("/authorize?" + urlencode(query), follow_redirects=False)

    def log_in(self, page: httpx.Response, nik: str, pin: str = PIN) -> httpx.Response:
        assert 'name="pin"' in page.text, page.text[:2000]
        return self.http.post(
            "/authorize/login",
            data={
                "csrf_token": hidden(page.text, "csrf_token"),
                "authorization_request": hidden(page.text, "authorization_request"),
                "nik": nik,
                "pin": pin,
            },
            follow_redirects=False,
        )

    def decide(self, page: httpx.Response, decision: str = "approve") -> httpx.Response:
        assert 'name="decision"' in page.text, page.text[:2000]
        return self.http.post(
            "/authorize/consent",
            data={
                "csrf_token": hidden(page.text, "csrf_token"),
                "authorization_request": hidden(page.text, "authorization_request"),
                "login_proof": hidden(page.text, "login_proof"),
                "acting_for": hidden(page.text, "acting_for"),
                "decision": decision,
            },
            follow_redirects=False,
        )

    def code_for(self, agency: Agency, nik: str, **params: Any) -> tuple[str, str, dict[str, str]]:
        """Log in and consent; the code, the PKCE verifier and the whole redirect query."""
        verifier, challenge = pkce_pair()
        page = self.authorize(
            agency, code_challenge=challenge, code_challenge_method="S256", **params
        )
        if page.status_code == 200 and 'name="pin"' in page.text:
            page = self.log_in(page, nik)
        if page.status_code == 200 and 'name="decision"' in page.text:
            page = self.decide(page)
        assert page.status_code in (302, 303), page.text[:2000]
        answer = query_of(page.headers["location"])
        assert "code" in answer, answer
        return answer["code"], verifier, answer

    def token(
        self, agency: Agency, code: str, verifier: str | None, **extra: str
    ) -> httpx.Response:
        return self.http.post("/token", **agency.token_request(code, verifier, **extra))

    def tokens_for(self, agency: Agency, nik: str, **params: Any) -> dict[str, Any]:
        code, verifier, _ = self.code_for(agency, nik, **params)
        response = self.token(agency, code, verifier)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def userinfo(self, access_token: str) -> httpx.Response:
        return self.http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})

    def verify(self, token: str) -> dict[str, Any]:
        keys = KeySet.import_key_set(self.http.get("/jwks").json())
        claims: dict[str, Any] = jwt.decode(
            token, keys, algorithms=["RS256", "PS256", "ES256"]
        ).claims
        return claims


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1:``port`` in a thread, for the ``with`` block."""
    # log_config=None: uvicorn's records go to the root logger, so the run's log scan sees them.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "server stopped while starting"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def settings(database_url, keys_dir):
    return load_settings(
        database_url=database_url,
        keys_dir=keys_dir,
        keys_passphrase=TEST_PASSPHRASE,
        issuer=ISSUER,
        pin_argon2_memory_kib=64,
        pin_argon2_time_cost=1,
        backchannel_logout_retry_seconds=0.2,
        # These tests change an agency and look at once; the default bound (1 s) has a test
        # of its own (test_client_cache.py).
        clients_reload_seconds=0,
    )


@pytest.fixture
def provider(settings, engine, key_store, tmp_path):
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")  # access tokens
    with TestClient(create_app(settings), base_url=ISSUER) as http:
        yield Provider(http, engine, key_store, settings, tmp_path)


@pytest.fixture
def issuer(provider: Provider) -> Iterator[str]:
    """A live provider whose issuer is its own URL, so what discovery names can be reached. It
    shares ``provider``'s database and keys: citizens and agencies arranged there exist here."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(create_app(provider.settings.model_copy(update={"issuer": url})), port):
        yield url


class Browser:
    """A citizen's browser over real HTTP: one cookie jar for every site, forms filled in by
    hand as a person would (each with its CSRF token and the request it carries)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def log_in(self, page: httpx.Response, nik: str) -> httpx.Response:
        assert page.status_code == 200, page.text[:2000]
        return self.submit(page, "/authorize/login", nik=nik, pin=PIN)

    def decide(self, page: httpx.Response, decision: str) -> httpx.Response:
        assert page.status_code == 200, page.text[:2000]
        return self.submit(
            page,
            "/authorize/consent",
            login_proof=hidden(page.text, "login_proof"),
            decision=decision,
        )

    def log_in_and_consent(self, authorization_url: str, nik: str) -> str:
        """Open the authorization URL, log in with NIK and PIN, approve; where the provider
        then sends the browser (the agency's redirect URI, with the code). For a browser
        that does not follow redirects."""
        answer = self.decide(self.log_in(self.http.get(authorization_url), nik), "approve")
        assert answer.status_code == 303, answer.text[:2000]
        return answer.headers["location"]

    def submit(self, page: httpx.Response, action: str, **fields: str) -> httpx.Response:
        assert all(f'name="{name}"' in page.text for name in fields), page.text[:2000]
        return self.http.post(
            urljoin(str(page.url), action),
            data={
                "csrf_token": hidden(page.text, "csrf_token"),
                "authorization_request": hidden(page.text, "authorization_request"),
                **fields,
            },
        )


@pytest.fixture
def live_server(provider):
    """A second, real server process-alike (its own app, same database and keys) on a port."""
    with serving(create_app(provider.settings), free_port()) as url:
        yield url
