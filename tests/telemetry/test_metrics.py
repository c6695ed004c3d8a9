"""The metrics listener: requests by route template, logins by outcome, lockouts, tokens by
grant, the database pool; counted from what really happened, and only once it committed.
Never on the public port, and a failed login is counted without its reason."""

from __future__ import annotations

import secrets
import socket

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from digital_id.app import create_app
from digital_id.audit import trail
from digital_id.cli import app as cli
from tests.factories import citizen_row
from tests.web.conftest import free_port, pkce_pair

FAMILIES = (
    "digital_id_http_requests",
    "digital_id_http_request_duration_seconds",
    "digital_id_logins",
    "digital_id_lockouts",
    "digital_id_tokens_issued",
    "digital_id_second_factor_checks",
    "digital_id_db_pool_size",
    "digital_id_db_pool_checked_out",
    "digital_id_db_pool_overflow",
)


def scrape(metrics_url: str) -> dict[tuple[str, frozenset], float]:
    response = httpx.get(metrics_url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def failed_login(provider, agency, nik: str, pin: str = "000000"):
    _, challenge = pkce_pair()
    page = provider.authorize(agency, code_challenge=challenge, code_challenge_method="S256")
    return provider.log_in(page, nik, pin)


def test_every_family_is_exposed_after_a_login_flow(provider, metrics_url):
    citizen = provider.citizen()
    provider.tokens_for(provider.agency(), citizen["nik"])

    text = httpx.get(metrics_url).text
    names = {family.name for family in text_string_to_metric_families(text)}

    assert set(FAMILIES) <= names
    assert citizen["nik"] not in text


def test_a_failed_login_counts_as_failed_whatever_the_reason(provider, metrics_url):
    """The login page says the same for each of these, so the metrics must too: else anyone
    who can scrape learns whether a NIK exists, is activated or is locked."""
    agency = provider.agency()
    logins = "digital_id_logins_total"
    attempts = {
        "wrong PIN": provider.citizen()["nik"],
        "not activated": provider.citizen(pin=None)["nik"],
        "not in the register": citizen_row()["nik"],
    }
    for reason, nik in attempts.items():
        before = scrape(metrics_url)

        failed_login(provider, agency, nik)

        after = scrape(metrics_url)
        assert (
            value(after, logins, outcome="failed") == value(before, logins, outcome="failed") + 1
        ), reason
    outcomes = {dict(labels)["outcome"] for name, labels in after if name == logins}
    assert outcomes <= {"success", "failed"}


def test_a_lockout_is_counted_once_and_later_attempts_count_as_failed(provider, metrics_url):
    citizen = provider.citizen()
    agency = provider.agency()
    threshold = provider.settings.lockout_threshold
    before = scrape(metrics_url)

    for _ in range(threshold + 1):
        failed_login(provider, agency, citizen["nik"])

    after = scrape(metrics_url)
    logins = "digital_id_logins_total"
    assert (
        value(after, "digital_id_lockouts_total") == value(before, "digital_id_lockouts_total") + 1
    )
    assert (
        value(after, logins, outcome="failed")
        == value(before, logins, outcome="failed") + threshold + 1
    )


def test_a_code_grant_counts_one_login_and_one_authorization_code_token(provider, metrics_url):
    citizen = provider.citizen()
    agency = provider.agency()
    before = scrape(metrics_url)

    provider.tokens_for(agency, citizen["nik"])

    after = scrape(metrics_url)
    tokens = "digital_id_tokens_issued_total"
    logins = "digital_id_logins_total"
    for grant_type, added in (("authorization_code", 1), ("client_credentials", 0)):
        assert (
            value(after, tokens, grant_type=grant_type)
            == value(before, tokens, grant_type=grant_type) + added
        )
    assert value(after, logins, outcome="success") == value(before, logins, outcome="success") + 1


def test_client_credentials_tokens_are_counted_by_their_grant(provider, metrics_url):
    agency = provider.agency(
        grant_types=["client_credentials"], redirect_uris=[], scope="pajak.read"
    )
    before = scrape(metrics_url)

    response = provider.http.post(
        "/token", **agency.authenticated({"grant_type": "client_credentials"})
    )
    refused = provider.http.post(
        "/token", **agency.authenticated({"grant_type": "client_credentials", "scope": "openid"})
    )

    assert response.status_code == 200
    assert refused.status_code == 400
    after = scrape(metrics_url)
    tokens = "digital_id_tokens_issued_total"
    assert (
        value(after, tokens, grant_type="client_credentials")
        == value(before, tokens, grant_type="client_credentials") + 1
    )


def test_requests_are_labelled_by_route_template_never_by_raw_path(provider, metrics_url):
    receipt = secrets.token_hex(8)
    nik_like = "3171011990100001"
    before = scrape(metrics_url)

    provider.http.get(f"/account/receipts/{receipt}.jwt?login_hint={nik_like}")
    provider.http.get(f"/no/such/page/{nik_like}")
    provider.http.get("/healthz?probe=1")

    after = scrape(metrics_url)
    text = httpx.get(metrics_url).text
    assert receipt not in text
    assert nik_like not in text
    requests = "digital_id_http_requests_total"
    assert (
        value(after, requests, method="GET", route="/healthz", status="200")
        == value(before, requests, method="GET", route="/healthz", status="200") + 1
    )
    assert (
        value(after, requests, method="GET", route="unmatched", status="404")
        == value(before, requests, method="GET", route="unmatched", status="404") + 1
    )
    receipt_route = "/account/receipts/{receipt_id}.jwt"
    assert any(
        name == requests and dict(labels)["route"] == receipt_route for name, labels in after
    )
    latency = "digital_id_http_request_duration_seconds_count"
    assert (
        value(after, latency, method="GET", route="/healthz")
        == value(before, latency, method="GET", route="/healthz") + 1
    )


def test_the_pool_gauges_follow_connections_in_use(settings, metrics_url):
    # An app not started, so no background thread of its own uses the pool meanwhile.
    app = create_app(settings)
    engine = app.state.engine
    before = scrape(metrics_url)

    with engine.connect(), engine.connect():
        during = scrape(metrics_url)
    after = scrape(metrics_url)
    engine.dispose()

    checked_out = "digital_id_db_pool_checked_out"
    assert value(during, checked_out) == value(before, checked_out) + 2
    assert value(after, checked_out) == value(before, checked_out)
    assert value(after, "digital_id_db_pool_size") == engine.pool.size()


def test_audit_events_count_when_their_transaction_commits_not_before_nor_after_a_rollback(
    session,
):
    def lockouts() -> float:
        return REGISTRY.get_sample_value("digital_id_lockouts_total") or 0.0

    start = lockouts()
    trail.record(session, "auth:locked")
    assert lockouts() == start
    session.rollback()
    assert lockouts() == start

    trail.record(session, "auth:locked")
    with session.begin_nested():
        trail.record(session, "auth:locked")
    assert lockouts() == start
    session.commit()
    assert lockouts() == start + 2

    session.commit()
    assert lockouts() == start + 2


def test_the_public_app_serves_no_metrics(live_server, metrics_url):
    assert httpx.get(live_server + "/healthz").status_code == 200

    assert httpx.get(live_server + "/metrics").status_code == 404
    assert "digital_id_http_requests_total" in httpx.get(metrics_url).text


def test_serve_refuses_to_start_when_the_metrics_port_is_taken(cli_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = CliRunner().invoke(
            cli, ["serve", "--port", str(free_port()), "--metrics-port", str(port)]
        )

    assert result.exit_code == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.output
