"""Data-sharing agreements (PKS) against the running app, on SQLite and PostgreSQL: the consent
page states the purpose, the legal basis and the agreement in plain words; an expired or
suspended agreement releases nothing (authorization, device authorization, code, refresh,
UserInfo), each answered with a clear error; reinstating lets the agency in again."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.audit.models import AuditEvent
from digital_id.clients import agreements
from digital_id.clients import service as clients
from digital_id.clients.metadata import validate_metadata
from digital_id.clients.metadata_fields import InvalidClientMetadataError
from digital_id.db.types import utc_now
from tests.web.conftest import Provider, pkce_pair, query_of
from tests.web.test_device_authorization_grant import DEVICE_GRANT

NUMBER = "470/1234/DUKCAPIL/PKS/2026"


def agreement(**overrides) -> dict:
    return {
        "number": NUMBER,
        "signed": "2026-01-15",
        "expires": (date.today() + timedelta(days=365)).isoformat(),
        "legal_basis": "public_task",
        "purpose#id": "Verifikasi identitas wajib pajak daerah",
        "purpose#en": "Verifying the identity of regional taxpayers",
        **overrides,
    }


def agency_with(provider: Provider, **overrides):
    return provider.agency(
        agreement=agreement(**overrides),
        grant_types=["authorization_code", "refresh_token"],
        scope="openid profile offline_access",
    )


def lapse(provider: Provider, agency, *, suspend: bool) -> None:
    with Session(provider.engine) as session, session.begin():
        client = clients.get(session, agency.client_id)
        if suspend:
            agreements.suspend(session, client, reason="audit finding 12/2026", now=utc_now())
        else:
            registration = dict(client.registration)
            registration["agreement"] = {
                **registration["agreement"],
                "signed": "2024-01-01",
                "expires": (date.today() - timedelta(days=2)).isoformat(),
            }
            client.registration = registration


def authorize_error(provider: Provider, agency) -> dict[str, str]:
    _, challenge = pkce_pair()
    answer = provider.authorize(agency, code_challenge=challenge, code_challenge_method="S256")
    assert answer.status_code in (302, 303), answer.text[:1000]
    return query_of(answer.headers["location"])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"legal_basis": "because"}, "agreement.legal_basis"),
        ({"expires": "2025-01-01"}, "agreement.expires"),
        ({"signed": "15-01-2026"}, "agreement.signed"),
        ({"number": ""}, "agreement.number"),
        ({"purpose#en": "x" * 501}, "agreement.purpose#en"),
        ({"witness": "someone"}, "agreement.witness"),
    ],
)
def test_a_registrations_agreement_is_checked_field_by_field(overrides, field):
    data = {
        "client_name": "Pajak",
        "redirect_uris": ["https://pajak.example.go.id/cb"],
        "agreement": agreement(**overrides),
    }
    with pytest.raises(InvalidClientMetadataError) as refused:
        validate_metadata(data, production=False)
    assert refused.value.field == field


def test_the_consent_page_states_purpose_legal_basis_and_agreement(provider):
    citizen = provider.citizen()
    agency = agency_with(provider, expires="2028-01-14")
    _, challenge = pkce_pair()
    page = provider.log_in(
        provider.authorize(agency, code_challenge=challenge, code_challenge_method="S256"),
        citizen["nik"],
    )
    assert "Verifikasi identitas wajib pajak daerah" in page.text
    assert "Tugas pelayanan publik instansi" in page.text
    assert f"Nomor {NUMBER}, berlaku sampai 14 Januari 2028" in page.text
    english = provider.authorize(
        agency, code_challenge=challenge, code_challenge_method="S256", ui_locales="en",
        prompt="consent",
    )  # fmt: skip
    assert "Verifying the identity of regional taxpayers" in english.text
    assert "A public task the agency carries out under the law" in english.text
    assert f"No. {NUMBER}, in force until January 14, 2028" in english.text


@pytest.mark.parametrize("suspend", [True, False], ids=["suspended", "expired"])
def test_a_lapsed_agreement_releases_nothing(provider, suspend):
    citizen = provider.citizen()
    agency = agency_with(provider)
    tokens = provider.tokens_for(agency, citizen["nik"], scope="openid profile offline_access")
    assert "refresh_token" in tokens
    code, verifier, _ = provider.code_for(agency, citizen["nik"])

    lapse(provider, agency, suspend=suspend)
    problem = "suspended" if suspend else "expired"

    refused = authorize_error(provider, agency)
    assert refused["error"] == "unauthorized_client"
    assert f"agreement is {problem}" in refused["error_description"]

    refresh = provider.http.post(
        "/token",
        **agency.authenticated(
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        ),
    )
    assert refresh.status_code == 400
    assert refresh.json()["error"] == "unauthorized_client"
    assert problem in refresh.json()["error_description"]

    assert provider.token(agency, code, verifier).json()["error"] == "invalid_grant"
    assert provider.userinfo(tokens["access_token"]).status_code == 401


def test_a_suspension_is_audited_and_lifted_by_reinstating(provider):
    citizen = provider.citizen()
    agency = agency_with(provider)
    lapse(provider, agency, suspend=True)
    assert authorize_error(provider, agency)["error"] == "unauthorized_client"
    with Session(provider.engine) as session, session.begin():
        agreements.reinstate(session, clients.get(session, agency.client_id), now=utc_now())
    with Session(provider.engine) as session:
        events = session.scalars(
            select(AuditEvent.tag).where(AuditEvent.tag.like("client:agreement_%"))
        ).all()
    assert sorted(events) == ["client:agreement_reinstated", "client:agreement_suspended"]
    assert "access_token" in provider.tokens_for(agency, citizen["nik"])


def test_a_kiosk_with_a_lapsed_agreement_gets_no_device_codes(provider):
    kiosk = provider.agency(
        redirect_uris=[], grant_types=[DEVICE_GRANT], scope="openid profile",
        agreement=agreement(),
    )  # fmt: skip
    lapse(provider, kiosk, suspend=True)
    refused = provider.http.post(
        "/device_authorization", **kiosk.authenticated({"scope": "openid profile"})
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"


def test_the_agreement_ends_at_the_end_of_its_day_in_jakarta():
    from datetime import UTC, datetime

    from digital_id.clients.models import Client

    client = Client(registration={"agreement": agreement(expires="2026-12-31")})
    client.suspended_at = None
    # 31 December, 23:30 WIB is still the 31st: in force.
    assert agreements.agreement_problem(client, datetime(2026, 12, 31, 16, 30, tzinfo=UTC)) is None
    # 1 January, 00:30 WIB: ended.
    assert (
        agreements.agreement_problem(client, datetime(2026, 12, 31, 17, 30, tzinfo=UTC))
        == "expired"
    )


def test_agreements_ending_soon_are_listed_soonest_first(provider):
    soon = agency_with(provider, expires=(date.today() + timedelta(days=10)).isoformat())
    later = agency_with(provider, expires=(date.today() + timedelta(days=20)).isoformat())
    agency_with(provider, expires=(date.today() + timedelta(days=90)).isoformat())
    provider.agency()  # no agreement
    with Session(provider.engine) as session:
        found = agreements.expiring(
            clients.all_clients(session), within=timedelta(days=30), now=utc_now()
        )
        assert [client.client_id for client in found] == [soon.client_id, later.client_id]
