"""What a login leaves in the audit trail: every step, in order, in one intact chain, with the
request id and never a NIK, PIN, code or token."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.audit import verification
from digital_id.audit.models import AuditEvent
from tests.web.conftest import PIN, hidden
from tests.web.test_authorization_endpoint import pkce


def events(provider):
    with Session(provider.engine) as session:
        return session.scalars(select(AuditEvent).order_by(AuditEvent.sequence)).all()


def test_a_login_flow_is_recorded_without_secrets(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.log_in(provider.authorize(agency, **pkce()), citizen["nik"], "135792")  # one failure
    tokens = provider.tokens_for(agency, citizen["nik"])
    provider.userinfo(tokens["access_token"])
    recorded = events(provider)
    tags = [event.tag for event in recorded]
    for tag in (
        "auth:pin:failed",
        "auth:login",
        "consent:granted",
        "token:issued",
        "claims:released",
    ):
        assert tag in tags, tags
    failed = next(e for e in recorded if e.tag == "auth:pin:failed")
    assert failed.details == {"reason": "wrong_pin", "recognised_browser": False}
    assert failed.subject.startswith("citizen:")
    assert failed.request_id
    released = next(e for e in recorded if e.tag == "claims:released")
    assert released.client_id == agency.client_id
    assert released.details["claims"] == ["birthdate", "gender", "name"]
    everything = repr([(e.tag, e.actor, e.subject, e.details, e.client_id) for e in recorded])
    for secret in (citizen["nik"], PIN, tokens["access_token"], tokens["id_token"]):
        assert secret not in everything
    with Session(provider.engine) as session:
        assert verification.verify(session).intact


def test_an_unknown_nik_is_recorded_without_it(provider):
    agency = provider.agency()
    provider.log_in(provider.authorize(agency, **pkce()), "3273052010900999", PIN)
    failed = [e for e in events(provider) if e.tag == "auth:pin:failed"]
    assert len(failed) == 1
    assert failed[0].subject is None
    assert failed[0].details == {"reason": "unknown", "recognised_browser": False}
    assert "3273052010900999" not in repr(failed[0].details)


def test_every_response_carries_a_request_id_that_the_trail_shares(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    page = provider.authorize(agency, **pkce())
    response = provider.http.post(
        "/authorize/login",
        data={
            "csrf_token": hidden(page.text, "csrf_token"),
            "authorization_request": hidden(page.text, "authorization_request"),
            "nik": citizen["nik"],
            "pin": "135792",
        },
        headers={"X-Request-ID": "support-ticket-4711"},
    )
    assert response.headers["x-request-id"] == "support-ticket-4711"
    assert any(e.request_id == "support-ticket-4711" for e in events(provider))
    generated = provider.http.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32


def test_code_reuse_records_the_revocation(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    provider.token(agency, code, verifier)
    provider.token(agency, code, verifier)
    revoked = [e for e in events(provider) if e.tag == "token:revoked"]
    assert [e.details for e in revoked] == [{"reason": "code_reused"}]


def test_claims_released_in_the_id_token_are_in_the_history(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.tokens_for(
        agency, citizen["nik"], scope="openid", claims='{"id_token": {"name": null}}'
    )
    released = [e for e in events(provider) if e.tag == "claims:released"]
    assert [(e.details["endpoint"], e.details["claims"]) for e in released] == [("token", ["name"])]


def test_userinfo_records_a_tokens_release_once_and_a_new_tokens_again(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    first = provider.tokens_for(agency, citizen["nik"])["access_token"]
    for _ in range(3):
        assert provider.userinfo(first).status_code == 200
    second = provider.tokens_for(agency, citizen["nik"])["access_token"]
    assert provider.userinfo(second).status_code == 200
    released = [
        e
        for e in events(provider)
        if e.tag == "claims:released" and e.details["endpoint"] == "userinfo"
    ]
    assert len(released) == 2
    assert [e.details["claims"] for e in released] == [["birthdate", "gender", "name"]] * 2
