"""The running server keeps to its committed OpenAPI document under generated traffic.

Schemathesis generates requests from ``openapi/openapi.json`` (valid ones, and ones that break
the documented schemas) and they are sent over HTTP, redirects not followed, to a real server
on a seeded database: an agency, an activated citizen with a browser session and consent, and
a live access token. About half of the requests carry those credentials (the session and
browser cookies, the agency's client authentication, the bearer token) and most of the real
values their fields take (CSRF token, client_id, redirect_uri, NIK, a valid authorization
request), so the authenticated and deeper paths are reached too; a request that ends the
session is followed by a fresh one. Every response must be no 5xx and must match the
document: status code, content type, body schema and required headers.

Bounded and reproducible: a fixed number of derandomized examples and a seeded choice of
credentials (the same requests on every run), generated once for the module and sent to each
database's server in turn; at least MIN_REQUESTS must be sent, so the run cannot silently
shrink, and the credentials must be seen to work.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from digital_id.accounts.operator_actions import unlock
from digital_id.db.types import utc_now
from digital_id.levels import LOA_LOW, METHODS
from digital_id.registry import service as registry
from digital_id.sessions import service as sessions
from digital_id.web.services import BROWSER_COOKIE, SESSION_COOKIE
from tests.web.conftest import hidden, pkce_pair

OPENAPI_DOCUMENT = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
MIN_REQUESTS = 5000
# Valid requests are cheap to generate and reach the deepest code; schema-breaking ones cost
# three times as much to generate, and the server reads every field as text anyway.
EXAMPLES = {
    schemathesis.GenerationMode.POSITIVE: 4600,
    schemathesis.GenerationMode.NEGATIVE: 600,
}
SEED = 20261128
# A request to these with the real session and CSRF token ends the session; a new one follows.
SESSION_ENDING = ("/logout", "/account/sessions/end")
# These check the session citizen's PIN or code: generated ones fail, and enough failures lock
# the citizen, whose session then counts for nothing (accounts.standing). The operator's unlock
# follows each, so the rest of the run still has a logged-in browser.
CREDENTIAL_CHECKING = ("/account/pin", "/account/otp", "/account/otp/enrol", "/account/otp/remove")
# Only checks of the response against the document. Not `negative_data_rejection` or
# `positive_data_acceptance`: whether a form is acceptable depends on server state the
# document cannot express (a registered client, this browser's CSRF token, the citizen's
# PIN), and the pages answer a refused form with a 200 page that says why, as browsers need.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def generated_cases() -> list[Any]:
    """Every generated request, for both databases' servers (generation is most of the cost)."""
    schema = schemathesis.openapi.from_path(OPENAPI_DOCUMENT)
    cases: list[Any] = []

    def keep(case: Any) -> None:
        cases.append(case)

    for mode, examples in EXAMPLES.items():
        collect = settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(given(case=schema.as_strategy(generation_mode=mode))(keep))
        collect()
    return cases


def test_generated_requests_get_documented_answers_and_no_server_error(
    provider, live_server, generated_cases
):
    credentials = Credentials(provider, live_server)
    choices = random.Random(SEED)
    http = requests.Session()
    sent: Counter[str] = Counter()
    answers: Counter[tuple[str, int | str]] = Counter()
    failures: dict[str, str] = {}
    started = time.monotonic()
    examples = Counter(case.operation.label for case in generated_cases)
    requests_to_send = [
        (case, with_credentials)
        for case in generated_cases
        for with_credentials in (
            # An operation without parameters has one case: send it both ways.
            (False, True) if examples[case.operation.label] < 4 else (choices.random() < 0.5,)
        )
    ]
    for case, with_credentials in requests_to_send:
        http.cookies.clear()  # each request is a browser of its own
        sent[case.operation.label] += 1
        with credentials.applied(case, choices) if with_credentials else nullcontext({}) as extra:
            try:
                response = case.call_and_validate(
                    base_url=live_server, session=http, checks=CHECKS, **extra
                )
                answers[case.operation.label, response.status_code] += 1
                if "code=" in response.headers.get("location", [""])[0]:
                    answers[case.operation.label, "code issued"] += 1
            except (FailureGroup, requests.RequestException) as exc:
                # One report per operation; the other operations still run.
                failures.setdefault(case.operation.label, str(exc))
    elapsed = time.monotonic() - started
    print(f"fuzz: {sum(sent.values())} requests in {elapsed:.1f} s over {len(sent)} operations")

    assert not failures, "\n\n".join(f"{label}:\n{report}" for label, report in failures.items())
    assert sum(sent.values()) >= MIN_REQUESTS
    documented = {
        f"{method.upper()} {path}"
        for path, operations in generated_cases[0].operation.schema.raw_schema["paths"].items()
        for method in operations
    }
    assert documented <= set(sent), f"never exercised: {sorted(documented - set(sent))}"
    # The credentials worked, so the authenticated paths were exercised too.
    for reached in [
        ("GET /userinfo", 200),
        ("POST /introspect", 200),
        ("POST /revoke", 200),
        ("GET /account/data.json", 200),
        ("GET /authorize", "code issued"),
        ("POST /authorize/consent", 303),
    ]:
        assert answers[reached], f"{reached} never answered: {sorted(answers.items(), key=str)}"


class Credentials:
    """What a real agency and a logged-in citizen's browser would send."""

    def __init__(self, provider: Any, base_url: str) -> None:
        self.provider = provider
        self.base_url = base_url
        self.citizen = provider.citizen()
        # The forms carry another real citizen's NIK: the generated PINs lock that one, and a
        # locked citizen's session is no session (accounts.standing), which would leave the
        # rest of the run without a logged-in browser.
        self.other_citizen = provider.citizen()
        self.agency = provider.agency()
        tokens = provider.tokens_for(self.agency, self.citizen["nik"])
        self.access_token = tokens["access_token"]
        account = provider.http.get("/account")  # the login for the tokens left a session
        assert self.citizen["full_name"] in account.text
        self.csrf = hidden(account.text, "csrf_token")
        self.cookies = {
            name: provider.http.cookies[name] for name in (BROWSER_COOKIE, SESSION_COOKIE)
        }
        _, challenge = pkce_pair()
        request = {
            "response_type": "code",
            "client_id": self.agency.client_id,
            "redirect_uri": self.agency.redirect_uri,
            "scope": "openid profile",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        self.authorization = request
        # Field by field, so a case can be a valid request with some generated values.
        self.known = {
            **request,
            "csrf_token": self.csrf,
            "nik": self.other_citizen["nik"],
            "authorization_request": urlencode(request),
        }

    @contextmanager
    def applied(self, case: Any, choices: random.Random) -> Iterator[dict[str, Any]]:
        """``case`` with the real values in most of the fields that take them, and the call's
        extras; the generated values come back afterwards, for the next database's server."""
        path = case.operation.path
        generated = {"query": case.query, "body": case.body}
        for location, container in generated.items():
            if not isinstance(container, dict):
                continue
            filled = dict(container)
            for name in sorted(container.keys() & self.known.keys()):
                if choices.random() < 0.8:
                    filled[name] = self.known[name]
            # An authorization request gets most of the parameters a valid one needs.
            carries_request = location == ("query" if case.method.upper() == "GET" else "body")
            if path == "/authorize" and carries_request:
                for name in sorted(self.authorization.keys() - container.keys()):
                    if choices.random() < 0.8:
                        filled[name] = self.known[name]
            if filled != container:
                setattr(case, location, filled)
        if path in ("/token", "/revoke", "/introspect"):
            extra: dict[str, Any] = {"auth": (self.agency.client_id, self.agency.secret)}
        elif path == "/userinfo":
            extra = {"headers": {"Authorization": f"Bearer {self.access_token}"}}
        else:
            extra = {"cookies": dict(self.cookies)}
        try:
            yield extra
        finally:
            for location, container in generated.items():
                if getattr(case, location) is not container:
                    setattr(case, location, container)
            if path in SESSION_ENDING:
                self._renew_session()
            if path in CREDENTIAL_CHECKING:
                with Session(self.provider.engine) as session, session.begin():
                    unlock(session, self.citizen["nik"])

    def _renew_session(self) -> None:
        """A fresh session for the same browser (its CSRF token stays valid), made directly,
        as a login would leave it."""
        with Session(self.provider.engine) as session, session.begin():
            citizen = registry.find_by_nik(session, self.citizen["nik"])
            assert citizen is not None
            _, token = sessions.start(
                session, citizen_id=citizen.id, acr=LOA_LOW, amr=METHODS[LOA_LOW], now=utc_now()
            )
        self.cookies[SESSION_COOKIE] = token
        # CSRF tokens are bound to the session cookie too: take the new session's.
        account = requests.get(f"{self.base_url}/account", cookies=self.cookies, timeout=30)
        self.csrf = self.known["csrf_token"] = hidden(account.text, "csrf_token")
