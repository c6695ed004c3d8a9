"""Acting for a child (issue 18) against the running app, on SQLite and PostgreSQL: a parent on
the family card logs in to an agency that accepts delegation, answers "For whom are you using
this service?", consents for their child, and the agency receives the child's pairwise ``sub``
and claims with ``act`` naming the parent, in the ID token, the access token, introspection and
UserInfo. Every way round it is refused."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from digital_id.accounts.activation import set_pin
from digital_id.accounts.delegation_ending import end_lapsed_delegations
from digital_id.accounts.models import CitizenAccount
from digital_id.audit.models import AuditEvent
from digital_id.cli import app as cli
from digital_id.consent.models import Consent, ConsentReceipt
from digital_id.db.types import WIB
from digital_id.grants.models import AuthorizationGrant
from digital_id.registry.models import Citizen
from digital_id.sessions.models import LogoutDelivery
from tests.conftest import TEST_PASSPHRASE
from tests.factories import write_csv
from tests.web.conftest import PIN, Agency, Provider, hidden, pkce_pair, query_of

CHILD_BORN = date(2015, 3, 9)


def family(provider: Provider) -> tuple[dict, dict]:
    """A parent (the head of the card, activated) and their child of 11 (never activated), on a
    family card of their own."""
    kk_number = "327301" + "".join(secrets.choice("0123456789") for _ in range(10))
    parent = provider.citizen(
        kk_number=kk_number, family_relationship="KEPALA KELUARGA", marital_status="KAWIN"
    )
    child = provider.citizen(
        pin=None,
        kk_number=kk_number,
        family_relationship="ANAK",
        marital_status="BELUM KAWIN",
        birth_date=CHILD_BORN,
        full_name="ADI SANTOSO",
    )
    return parent, child


def start(provider: Provider, agency: Agency, **params) -> httpx.Response:
    """The authorization request, with PKCE, as the agency sends it."""
    _, challenge = pkce_pair()
    return provider.authorize(
        agency, code_challenge=challenge, code_challenge_method="S256", **params
    )


def delegating_agency(provider: Provider, **metadata) -> Agency:
    return provider.agency(accepts_delegation=True, **metadata)


def choices(page: httpx.Response) -> dict[str, str]:
    """The acting page's choices: the label's name (or ``self``) by the value that picks it."""
    assert 'action="/authorize/acting"' in page.text, page.text[:2000]
    found = re.findall(r'name="acting_for" value="([^"]+)"[^>]*> ([^<]+)</label>', page.text)
    return {label.strip(): value for value, label in found}


def choose(provider: Provider, page: httpx.Response, value: str, **override) -> httpx.Response:
    return provider.http.post(
        "/authorize/acting",
        data={
            "csrf_token": hidden(page.text, "csrf_token"),
            "authorization_request": hidden(page.text, "authorization_request"),
            "login_proof": hidden(page.text, "login_proof"),
            "acting_for": value,
            **override,
        },
        follow_redirects=False,
    )


def child_choice(page: httpx.Response) -> str:
    (value,) = [value for label, value in choices(page).items() if "ADI SANTOSO" in label]
    return value


def log_in_for(
    provider: Provider, agency: Agency, parent: dict, *, child: bool, **params
) -> tuple[httpx.Response, str]:
    """Log the parent in to ``agency`` and answer the question: the next page, and the PKCE
    verifier."""
    verifier, challenge = pkce_pair()
    page = provider.authorize(
        agency, code_challenge=challenge, code_challenge_method="S256", **params
    )
    if 'name="pin"' in page.text:  # else the session's single sign-on: asked all the same
        page = provider.log_in(page, parent["nik"])
    assert page.status_code == 200, page.text[:2000]
    return choose(provider, page, child_choice(page) if child else "self"), verifier


def tokens_for_child(provider: Provider, agency: Agency, parent: dict, **params) -> dict:
    page, verifier = log_in_for(provider, agency, parent, child=True, **params)
    assert "ADI SANTOSO" in page.text
    answer = provider.decide(page)
    assert answer.status_code == 303, answer.text[:2000]
    code = query_of(answer.headers["location"])["code"]
    response = provider.token(agency, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def own_sub(provider: Provider, agency: Agency, parent: dict) -> str:
    page, verifier = log_in_for(provider, agency, parent, child=False)
    if 'name="decision"' in page.text:
        page = provider.decide(page)
    code = query_of(page.headers["location"])["code"]
    tokens = provider.token(agency, code, verifier).json()
    return provider.verify(tokens["id_token"])["sub"]


def access_token_claims(provider: Provider, token: str) -> dict:
    keys = KeySet.import_key_set(provider.http.get("/jwks").json())
    return jwt.decode(token, keys, algorithms=["RS256", "PS256", "ES256"]).claims


def introspect(provider: Provider, agency: Agency, token: str) -> dict:
    response = provider.http.post("/introspect", **agency.authenticated({"token": token}))
    assert response.status_code == 200, response.text
    return response.json()


def test_parent_is_asked_for_whom_and_the_agency_receives_the_child_with_act(provider):
    parent, child = family(provider)
    agency = delegating_agency(provider)
    parent_sub = own_sub(provider, agency, parent)
    tokens = tokens_for_child(
        provider, agency, parent, scope="openid profile", claims='{"id_token":{"name":null}}'
    )

    id_token = provider.verify(tokens["id_token"])
    assert id_token["name"] == "ADI SANTOSO"
    assert id_token["act"] == {"sub": parent_sub}
    assert id_token["sub"] != parent_sub
    assert parent["nik"] not in str(id_token)
    assert child["nik"] not in str(id_token)

    access = access_token_claims(provider, tokens["access_token"])
    assert access["sub"] == id_token["sub"]
    assert access["act"] == {"sub": parent_sub}

    introspected = introspect(provider, agency, tokens["access_token"])
    assert introspected["active"] is True
    assert introspected["act"] == {"sub": parent_sub}

    userinfo = provider.userinfo(tokens["access_token"])
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == id_token["sub"]
    assert userinfo.json()["act"] == {"sub": parent_sub}
    assert userinfo.json()["name"] == "ADI SANTOSO"


def test_acting_page_offers_the_parent_and_each_child_by_name_and_age(provider):
    parent, _ = family(provider)
    page = provider.log_in(start(provider, delegating_agency(provider)), parent["nik"])
    offered = choices(page)
    assert next(iter(offered.values())) == "self"
    assert any("ADI SANTOSO" in label and "tahun" in label for label in offered)
    assert "Untuk siapa Anda menggunakan layanan ini?" in page.text
    # The page names the child, never their NIK; the value is the child's pairwise sub.
    assert all(len(value) < 64 for value in offered.values())


def test_parent_choosing_themselves_gets_their_own_tokens_without_act(provider):
    parent, _ = family(provider)
    agency = delegating_agency(provider)
    page, verifier = log_in_for(provider, agency, parent, child=False)
    assert "ADI SANTOSO" not in page.text
    answer = provider.decide(page)
    tokens = provider.token(agency, query_of(answer.headers["location"])["code"], verifier).json()
    assert "act" not in provider.verify(tokens["id_token"])
    assert "act" not in access_token_claims(provider, tokens["access_token"])
    assert "act" not in provider.userinfo(tokens["access_token"]).json()


def test_an_agency_not_accepting_delegation_never_asks(provider):
    parent, _ = family(provider)
    page = provider.log_in(start(provider, provider.agency()), parent["nik"])
    assert 'name="decision"' in page.text
    assert 'action="/authorize/acting"' not in page.text
    assert "ADI SANTOSO" not in page.text


def test_a_citizen_without_children_in_care_is_not_asked(provider):
    citizen = provider.citizen()
    page = provider.log_in(start(provider, delegating_agency(provider)), citizen["nik"])
    assert 'name="decision"' in page.text
    assert 'action="/authorize/acting"' not in page.text


def test_a_choice_naming_someone_else_is_asked_again(provider):
    parent, _ = family(provider)
    agency = delegating_agency(provider)
    # Another family's child, by the pairwise sub this agency knows them by.
    other_parent, _ = family(provider)
    foreign = child_choice(provider.log_in(start(provider, agency), other_parent["nik"]))
    provider.http.cookies.clear()
    page = provider.log_in(start(provider, agency), parent["nik"])
    assert foreign not in choices(page).values()
    for value in (foreign, "x" * 43, ""):
        again = choose(provider, page, value)
        assert again.status_code == 200
        assert 'action="/authorize/acting"' in again.text
    with Session(provider.engine) as session:
        assert session.scalars(select(Consent)).all() == []


def test_a_consent_form_cannot_switch_to_another_child(provider):
    parent, _ = family(provider)
    agency = delegating_agency(provider)
    page, _ = log_in_for(provider, agency, parent, child=True)
    answer = provider.http.post(
        "/authorize/consent",
        data={
            "csrf_token": hidden(page.text, "csrf_token"),
            "authorization_request": hidden(page.text, "authorization_request"),
            "login_proof": hidden(page.text, "login_proof"),
            "acting_for": "not-a-child-of-theirs",
            "decision": "approve",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 200
    assert 'action="/authorize/acting"' in answer.text
    with Session(provider.engine) as session:
        assert session.scalars(select(AuthorizationGrant)).all() == []


def test_the_acting_form_needs_its_csrf_token(provider):
    parent, _ = family(provider)
    page = provider.log_in(start(provider, delegating_agency(provider)), parent["nik"])
    refused = choose(provider, page, child_choice(page), csrf_token="forged")
    assert refused.status_code == 400


def test_prompt_none_answers_account_selection_required_for_a_guardian(provider):
    parent, _ = family(provider)
    agency = delegating_agency(provider)
    tokens_for_child(provider, agency, parent)
    answer = start(provider, agency, prompt="none")
    assert answer.status_code in (302, 303)
    assert query_of(answer.headers["location"])["error"] == "account_selection_required"


def test_consent_is_recorded_as_given_by_the_parent_and_the_receipt_names_both(provider):
    parent, child = family(provider)
    agency = delegating_agency(provider)
    parent_sub = own_sub(provider, agency, parent)
    tokens_for_child(provider, agency, parent)
    with Session(provider.engine) as session:
        parent_id = session.scalar(select(Citizen.id).where(Citizen.nik == parent["nik"]))
        child_id = session.scalar(select(Citizen.id).where(Citizen.nik == child["nik"]))
        consent = session.scalars(select(Consent).where(Consent.citizen_id == child_id)).one()
        assert consent.given_by_citizen_id == parent_id
        receipt = session.scalars(
            select(ConsentReceipt).where(ConsentReceipt.citizen_id == child_id)
        ).one()
        assert receipt.actor_citizen_id == parent_id
        grant = session.scalars(
            select(AuthorizationGrant).where(AuthorizationGrant.citizen_id == child_id)
        ).one()
        assert grant.actor_citizen_id == parent_id
        events = session.scalars(
            select(AuthorizationGrant.id).where(AuthorizationGrant.citizen_id == parent_id)
        ).all()
        assert len(events) == 1  # the parent's own login, made by own_sub
        granted = session.scalars(
            select(AuditEvent.details).where(
                AuditEvent.tag == "consent:granted", AuditEvent.subject == f"citizen:{child_id}"
            )
        ).one()
        assert granted["guardian"] == f"citizen:{parent_id}"
    claims = access_token_claims(provider, receipt.token)
    assert claims["act"] == {"sub": parent_sub}
    assert claims["sub"] != parent_sub


def _set_child(provider: Provider, child: dict, **values) -> None:
    with Session(provider.engine) as session, session.begin():
        session.execute(update(Citizen).where(Citizen.nik == child["nik"]).values(**values))


def test_everything_stops_when_the_child_turns_17(provider):
    """At each place the one rule is asked for tokens: code redemption, refresh,
    introspection (of the access and the refresh token) and UserInfo."""
    parent, child = family(provider)
    agency = delegating_agency(
        provider,
        grant_types=["authorization_code", "refresh_token"],
        scope="openid profile offline_access",
    )
    tokens = tokens_for_child(provider, agency, parent, scope="openid profile offline_access")
    assert provider.userinfo(tokens["access_token"]).status_code == 200
    assert "act" in introspect(provider, agency, tokens["refresh_token"])
    page, verifier = log_in_for(provider, agency, parent, child=True)
    answer = provider.decide(page) if 'name="decision"' in page.text else page
    code = query_of(answer.headers["location"])["code"]

    _set_child(provider, child, birth_date=date(2008, 1, 1))

    assert provider.token(agency, code, verifier).json()["error"] == "invalid_grant"
    refreshed = provider.http.post(
        "/token",
        **agency.authenticated(
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        ),
    )
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert introspect(provider, agency, tokens["access_token"]) == {"active": False}
    assert introspect(provider, agency, tokens["refresh_token"]) == {"active": False}
    assert provider.userinfo(tokens["access_token"]).status_code == 401
    # Nor is the parent asked about the child any more.
    again = start(provider, agency)
    assert 'action="/authorize/acting"' not in again.text


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"kk_number": "3273010000000000"}, id="moved-to-another-family"),
        pytest.param({"marital_status": "KAWIN"}, id="married"),
        pytest.param({"status": "deceased"}, id="died"),
    ],
)
def test_tokens_stop_and_the_child_is_not_offered_when_the_register_changes(provider, change):
    parent, child = family(provider)
    agency = delegating_agency(provider)
    tokens = tokens_for_child(provider, agency, parent)
    _set_child(provider, child, **change)
    assert provider.userinfo(tokens["access_token"]).status_code == 401
    page = start(provider, agency)
    assert 'action="/authorize/acting"' not in page.text


def test_a_blocked_parent_stops_the_childs_tokens(provider):
    parent, _ = family(provider)
    agency = delegating_agency(provider)
    tokens = tokens_for_child(provider, agency, parent)
    # The block alone, without the sessions it ends: the rule asks about the parent.
    with Session(provider.engine) as session, session.begin():
        parent_id = session.scalar(select(Citizen.id).where(Citizen.nik == parent["nik"]))
        session.execute(
            update(CitizenAccount)
            .where(CitizenAccount.citizen_id == parent_id)
            .values(blocked_at=datetime.now(UTC))
        )
    assert provider.userinfo(tokens["access_token"]).status_code == 401


def sweep(provider: Provider, now: datetime | None = None) -> int:
    return end_lapsed_delegations(
        provider.engine,
        lambda: (provider.key_store.snapshot(), provider.key_store.secret("pairwise_subject")),
        issuer=provider.settings.issuer,
        now=now or datetime.now(UTC),
    )


def test_the_17th_birthday_withdraws_the_parents_consent_and_logs_the_agency_out(provider):
    parent, child = family(provider)
    agency = delegating_agency(provider, backchannel_logout_uri="https://pajak.example.go.id/bcl")
    tokens = tokens_for_child(provider, agency, parent)
    child_sub = provider.verify(tokens["id_token"])["sub"]
    assert sweep(provider) == 0  # still in their care: nothing ends

    # The day before the birthday in western Indonesia the delegation holds; on it, it ends.
    turns_17 = datetime(2032, 3, 9, tzinfo=WIB)
    assert sweep(provider, turns_17 - timedelta(seconds=1)) == 0
    assert sweep(provider, turns_17) == 1
    assert sweep(provider, turns_17) == 0  # once

    with Session(provider.engine) as session:
        child_id = session.scalar(select(Citizen.id).where(Citizen.nik == child["nik"]))
        parent_id = session.scalar(select(Citizen.id).where(Citizen.nik == parent["nik"]))
        consent = session.scalars(select(Consent).where(Consent.citizen_id == child_id)).one()
        assert consent.revoked_at is not None
        grant = session.scalars(
            select(AuthorizationGrant).where(AuthorizationGrant.citizen_id == child_id)
        ).one()
        assert grant.revoked_at is not None
        (logout,) = session.scalars(select(LogoutDelivery)).all()
        assert logout.sub == child_sub
        decisions = session.scalars(
            select(ConsentReceipt.decision).where(ConsentReceipt.citizen_id == child_id)
        ).all()
        assert sorted(decisions) == ["granted", "withdrawn"]
        ended = session.scalars(
            select(AuditEvent).where(AuditEvent.tag == "delegation:ended")
        ).one()
        assert ended.subject == f"citizen:{child_id}"
        assert ended.details == {"guardian": f"citizen:{parent_id}"}


def test_a_consent_the_parent_gave_does_not_cover_the_child_come_of_age(provider):
    parent, child = family(provider)
    agency = delegating_agency(provider)
    tokens_for_child(provider, agency, parent)
    # The child is 17 now, activated, and logs in for themselves: they decide afresh.
    _set_child(provider, child, birth_date=date(2008, 1, 1))
    with Session(provider.engine) as session, session.begin():
        set_pin(session, provider.hasher, nik=child["nik"], pin=PIN)
    provider.http.cookies.clear()
    page = provider.log_in(start(provider, agency), child["nik"])
    assert 'name="decision"' in page.text
    assert "atas nama" not in page.text
    provider.decide(page)
    with Session(provider.engine) as session:
        consent = session.scalars(
            select(Consent)
            .join(Citizen, Citizen.id == Consent.citizen_id)
            .where(Citizen.nik == child["nik"])
        ).one()
        assert consent.given_by_citizen_id is None


def test_discovery_lists_the_act_claim(provider):
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    assert "act" in metadata["claims_supported"]


def test_a_huge_choice_is_refused_and_changes_nothing(provider):
    parent, _ = family(provider)
    page = provider.log_in(start(provider, delegating_agency(provider)), parent["nik"])
    refused = choose(provider, page, "a" * 100_000)
    assert refused.status_code == 400
    with Session(provider.engine) as session:
        assert session.scalars(select(Consent)).all() == []


def test_without_a_session_the_acting_form_asks_for_the_login(provider):
    parent, _ = family(provider)
    page = provider.log_in(start(provider, delegating_agency(provider)), parent["nik"])
    value = child_choice(page)
    provider.http.cookies.delete("dgid_session")
    answer = choose(provider, page, value)
    assert 'action="/authorize/acting"' not in answer.text
    with Session(provider.engine) as session:
        assert session.scalars(select(Consent)).all() == []


def test_every_release_for_the_child_names_the_parent_in_the_audit_trail(provider):
    parent, child = family(provider)
    agency = delegating_agency(provider)
    tokens = tokens_for_child(provider, agency, parent, claims='{"id_token":{"name":null}}')
    provider.userinfo(tokens["access_token"])
    with Session(provider.engine) as session:
        child_id = session.scalar(select(Citizen.id).where(Citizen.nik == child["nik"]))
        parent_id = session.scalar(select(Citizen.id).where(Citizen.nik == parent["nik"]))
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.subject == f"citizen:{child_id}")
        ).all()
    tagged = {(event.tag, event.details.get("endpoint")): event.details for event in events}
    for key in [
        ("consent:granted", None),
        ("token:issued", None),
        ("claims:released", "token"),
        ("claims:released", "userinfo"),
    ]:
        assert tagged[key]["guardian"] == f"citizen:{parent_id}", key


def test_an_import_that_moves_the_child_ends_the_delegation_at_once(
    provider, database_url, keys_dir, monkeypatch, tmp_path
):
    parent, child = family(provider)
    agency = delegating_agency(provider)
    tokens_for_child(provider, agency, parent)
    for name, value in {
        "DIGITAL_ID_DATABASE_URL": database_url,
        "DIGITAL_ID_KEYS_DIR": str(keys_dir),
        "DIGITAL_ID_KEYS_PASSPHRASE": TEST_PASSPHRASE,
        "DIGITAL_ID_ISSUER": provider.settings.issuer,
        "DIGITAL_ID_ENV": "development",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    moved = tmp_path / "moved.csv"
    write_csv(moved, [{**child, "kk_number": "3273010000000001"}])
    result = CliRunner().invoke(cli, ["registry", "import", str(moved)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "1 consent(s) a parent gave for a child ended" in result.output
    with Session(provider.engine) as session:
        ended = session.scalars(
            select(AuditEvent).where(AuditEvent.tag == "delegation:ended")
        ).all()
        assert len(ended) == 1
        assert session.scalars(select(LogoutDelivery)).all() == []  # no logout URI registered
        assert session.scalars(select(Consent)).one().revoked_at is not None


def test_a_login_proof_with_any_characters_is_just_not_a_proof(provider):
    parent, _ = family(provider)
    page = provider.log_in(start(provider, delegating_agency(provider)), parent["nik"])
    answer = choose(provider, page, child_choice(page), login_proof="·Ê𼇨-yE")
    assert answer.status_code == 200
    assert 'name="decision"' in answer.text
    assert hidden(answer.text, "login_proof") == ""
