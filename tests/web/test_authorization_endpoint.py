"""The authorization endpoint, login and consent, end to end over HTTP on both databases."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from digital_id.consent.models import Consent
from digital_id.db.types import utc_now
from digital_id.registry.models import Citizen
from digital_id.sessions.models import BrowserSession
from tests.web.conftest import ISSUER, PIN, hidden, pkce_pair, query_of


def pkce() -> dict[str, str]:
    return {"code_challenge": pkce_pair()[1], "code_challenge_method": "S256"}


def redirected(response) -> dict[str, str]:
    assert response.status_code in (302, 303), response.text[:1000]
    return query_of(response.headers["location"])


def test_discovery_describes_what_the_server_does(provider):
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    assert metadata["issuer"] == ISSUER
    assert metadata["authorization_endpoint"] == ISSUER + "/authorize"
    assert metadata["token_endpoint"] == ISSUER + "/token"
    assert metadata["jwks_uri"] == ISSUER + "/jwks"
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "private_key_jwt", "client_secret_basic", "client_secret_post", "none"
    }  # fmt: skip
    assert metadata["response_modes_supported"] == ["query", "form_post"]
    assert "nik" in metadata["scopes_supported"]
    assert "age_over_18" in metadata["claims_supported"]


def test_a_citizen_logs_in_consents_and_the_agency_gets_a_code_with_state_and_iss(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    page = provider.authorize(agency, **pkce())
    assert page.status_code == 200
    assert "Kantor Pajak Daerah" in page.text
    consent = provider.log_in(page, citizen["nik"])
    assert consent.status_code == 200
    assert "Nama lengkap" in consent.text  # plain words, not "name"
    assert "given_name" not in consent.text
    answer = redirected(provider.decide(consent))
    assert answer["state"] == "state-123"
    assert answer["iss"] == ISSUER
    assert len(answer["code"]) >= 40


def test_an_unregistered_redirect_uri_shows_an_error_page_and_never_redirects(provider):
    agency = provider.agency()
    response = provider.authorize(agency, redirect_uri="https://evil.example/cb", **pkce())
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "evil.example/cb" in response.text  # the technical detail names the URI


def test_a_redirect_uri_differing_in_one_character_is_refused(provider):
    agency = provider.agency()
    response = provider.authorize(agency, redirect_uri=agency.redirect_uri + "/", **pkce())
    assert response.status_code == 400
    assert "location" not in response.headers


def test_an_unknown_or_disabled_client_shows_an_error_page(provider):
    agency = provider.agency()
    agency.client_id = "dgid_unknown"
    response = provider.authorize(agency, **pkce())
    assert response.status_code == 400
    assert "location" not in response.headers


def test_redirect_uri_is_required_when_several_are_registered(provider):
    agency = provider.agency(
        redirect_uris=["https://pajak.example.go.id/callback", "https://pajak.example.go.id/cb2"]
    )
    response = provider.authorize(agency, redirect_uri=None, **pkce())
    assert response.status_code == 400
    assert "location" not in response.headers


def test_the_only_registered_redirect_uri_is_used_when_none_is_given(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    code, _, answer = provider.code_for(agency, citizen["nik"], redirect_uri=None)
    assert code
    assert answer["iss"] == ISSUER


@pytest.mark.parametrize(
    ("challenge", "why"),
    [
        ({}, "missing"),
        ({"code_challenge": pkce_pair()[1], "code_challenge_method": "plain"}, "plain"),
        ({"code_challenge": pkce_pair()[1]}, "method defaults to plain"),
    ],
)
def test_pkce_s256_is_required(provider, challenge, why):
    agency = provider.agency()
    answer = redirected(provider.authorize(agency, **challenge))
    assert answer["error"] == "invalid_request", why
    assert answer["state"] == "state-123"
    assert answer["iss"] == ISSUER


def test_only_the_code_response_type_is_supported(provider):
    agency = provider.agency()
    answer = redirected(provider.authorize(agency, response_type="token", **pkce()))
    assert answer["error"] == "unsupported_response_type"


@pytest.mark.parametrize("response_type", ["c\u00f8de", "code\x06"])
def test_a_response_type_outside_printable_ascii_is_an_invalid_request(provider, response_type):
    """authlib would quote it in its error and fail on it (found by the fuzz test); the
    parameter rules refuse it first, and the client and redirect URI are good, so it goes back."""
    answer = redirected(
        provider.authorize(provider.agency(), response_type=response_type, **pkce())
    )
    assert answer["error"] == "invalid_request"
    assert "printable ASCII" in answer["error_description"]


def test_a_redirect_uri_outside_printable_ascii_gets_the_error_page(provider):
    """authlib would quote it in its error and fail on it; found by the fuzz test."""
    response = provider.authorize(
        provider.agency(), redirect_uri="https://pajak.example.go.id/c\u00e4llback", **pkce()
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "printable ASCII" in response.text


@pytest.mark.parametrize(
    "parameter",
    [{"prompt": "l\u00f6gin"}, {"prompt": 'say"\\'}, {"claims": '{"userinfo": {"n\u00e4me": 1}}'}],
)
def test_an_unprintable_value_is_never_quoted_in_an_error(provider, parameter):
    """The error goes back to the agency with a description RFC 6749 section 5.2 allows (printable
    ASCII without quote or backslash); found by the fuzz test."""
    answer = redirected(provider.authorize(provider.agency(), **parameter, **pkce()))
    assert answer["error"] == "invalid_request"
    assert re.fullmatch(r"[\x20\x21\x23-\x5b\x5d-\x7e]+", answer["error_description"])


def test_a_client_id_with_a_nul_character_is_an_unknown_client(provider):
    """PostgreSQL text holds no NUL, and refuses a query with one; found by the fuzz test."""
    agency = provider.agency()
    agency.client_id = "dgid_\x00"
    assert provider.authorize(agency, **pkce()).status_code == 400
    assert provider.http.get("/logout", params={"client_id": "\x00"}).status_code == 200
    page = provider.authorize(provider.agency(), **pkce())
    refused = provider.http.post(
        "/authorize/login",
        data={
            "csrf_token": hidden(page.text, "csrf_token"),
            "authorization_request": hidden(page.text, "authorization_request"),
            "nik": "32730520109\x0000002",
            "pin": PIN,
        },
    )
    assert refused.status_code == 200  # the login page again, with the generic failure


def test_a_scope_without_openid_is_refused(provider):
    agency = provider.agency()
    answer = redirected(provider.authorize(agency, scope="profile", **pkce()))
    assert answer["error"] == "invalid_scope"


def test_unknown_parameters_are_ignored(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    code, _, _ = provider.code_for(agency, citizen["nik"], some_extension="value")
    assert code


def test_the_authorization_endpoint_accepts_post(provider):
    agency = provider.agency()
    page = provider.authorize(agency, method="POST", **pkce())
    assert page.status_code == 200
    assert 'name="pin"' in page.text


def test_prompt_none_without_a_session_returns_login_required(provider):
    agency = provider.agency()
    answer = redirected(provider.authorize(agency, prompt="none", **pkce()))
    assert answer["error"] == "login_required"
    assert answer["state"] == "state-123"
    assert answer["iss"] == ISSUER


def test_prompt_none_with_a_session_but_no_consent_returns_consent_required(provider):
    citizen = provider.citizen()
    first = provider.agency()
    second = provider.agency(redirect_uris=["https://bansos.example.go.id/cb"])
    provider.code_for(first, citizen["nik"])
    answer = redirected(provider.authorize(second, prompt="none", **pkce()))
    assert answer["error"] == "consent_required"


def test_prompt_none_with_session_and_consent_answers_without_a_page(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.code_for(agency, citizen["nik"])
    answer = redirected(provider.authorize(agency, prompt="none", **pkce()))
    assert "code" in answer


def test_consent_is_remembered_for_the_same_claims(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.code_for(agency, citizen["nik"])
    again = provider.authorize(agency, **pkce())
    assert "code" in redirected(again)  # no login, no consent page


def test_asking_for_more_claims_asks_for_consent_again(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.code_for(agency, citizen["nik"])
    page = provider.authorize(agency, scope="openid profile address", **pkce())
    assert page.status_code == 200
    assert 'name="decision"' in page.text
    assert "Alamat" in page.text


def test_prompt_consent_shows_the_consent_page_even_when_granted(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.code_for(agency, citizen["nik"])
    page = provider.authorize(agency, prompt="consent", **pkce())
    assert 'name="decision"' in page.text
    assert "code" in redirected(provider.decide(page))


def test_prompt_login_asks_for_the_pin_again_then_proceeds(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.code_for(agency, citizen["nik"])
    page = provider.authorize(agency, prompt="login", **pkce())
    assert 'name="pin"' in page.text
    assert "code" in redirected(provider.log_in(page, citizen["nik"]))


def test_prompt_login_with_new_claims_does_not_ask_twice(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    page = provider.authorize(agency, prompt="login", **pkce())
    consent = provider.log_in(page, citizen["nik"])
    assert 'name="decision"' in consent.text
    assert "code" in redirected(provider.decide(consent))


def test_max_age_older_than_the_login_asks_for_the_pin(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.code_for(agency, citizen["nik"])
    with provider.engine.begin() as connection:
        connection.execute(
            update(BrowserSession).values(auth_time=utc_now() - timedelta(minutes=10))
        )
    assert 'name="pin"' in provider.authorize(agency, max_age="300", **pkce()).text
    assert "code" in redirected(provider.authorize(agency, max_age="3600", **pkce()))


def test_deny_returns_access_denied_to_the_agency(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    consent = provider.log_in(provider.authorize(agency, **pkce()), citizen["nik"])
    answer = redirected(provider.decide(consent, "deny"))
    assert answer["error"] == "access_denied"
    assert answer["state"] == "state-123"
    assert answer["iss"] == ISSUER
    assert "code" not in answer


def test_form_post_response_mode_posts_the_answer_to_the_agency(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    page = provider.authorize(agency, response_mode="form_post", **pkce())
    consent = provider.log_in(page, citizen["nik"])
    answer = provider.decide(consent)
    assert answer.status_code == 200
    assert f'action="{agency.redirect_uri}"' in answer.text
    assert hidden(answer.text, "state") == "state-123"
    assert hidden(answer.text, "iss") == ISSUER
    assert hidden(answer.text, "code")
    assert "<script>" not in answer.text  # the auto-submit script is an external file


def test_an_unsupported_response_mode_is_refused(provider):
    agency = provider.agency()
    answer = redirected(provider.authorize(agency, response_mode="fragment", **pkce()))
    assert answer["error"] == "invalid_request"


def test_login_hint_prefills_the_nik(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    page = provider.authorize(agency, login_hint=citizen["nik"], **pkce())
    assert f'value="{citizen["nik"]}"' in page.text


def test_a_wrong_pin_shows_one_generic_message_and_stays_on_the_login_page(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    page = provider.authorize(agency, **pkce())
    wrong = provider.log_in(page, citizen["nik"], "135792")
    unknown = provider.log_in(page, "3273052010900999", PIN)
    for response in (wrong, unknown):
        assert 'role="alert"' in response.text
        assert 'name="pin"' in response.text
    assert wrong.text.replace(citizen["nik"], "") == unknown.text.replace("3273052010900999", "")


def test_five_wrong_pins_lock_the_account_even_for_the_right_pin(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    page = provider.authorize(agency, **pkce())
    for _ in range(5):
        provider.log_in(page, citizen["nik"], "135792")
    locked = provider.log_in(page, citizen["nik"], PIN)
    assert 'role="alert"' in locked.text
    assert 'name="decision"' not in locked.text


def test_a_blocked_citizen_cannot_log_in(provider):
    citizen = provider.citizen(status="blocked")
    agency = provider.agency()
    response = provider.log_in(provider.authorize(agency, **pkce()), citizen["nik"])
    assert 'role="alert"' in response.text


def test_single_sign_on_a_second_agency_asks_only_for_consent_and_sees_another_sub(provider):
    citizen = provider.citizen()
    tax = provider.agency()
    aid = provider.agency(
        redirect_uris=["https://bansos.example.go.id/callback"], scope="openid profile age family"
    )
    first = provider.tokens_for(tax, citizen["nik"])
    page = provider.authorize(aid, scope="openid profile age", **pkce())
    assert 'name="pin"' not in page.text
    assert 'name="decision"' in page.text
    answer = redirected(provider.decide(page))
    second = provider.token(aid, answer["code"], None)
    assert second.status_code == 400  # without the verifier; the flow itself is what we check
    tokens = provider.tokens_for(aid, citizen["nik"], scope="openid profile age")
    tax_sub = provider.verify(first["id_token"])["sub"]
    aid_sub = provider.verify(tokens["id_token"])["sub"]
    assert tax_sub != aid_sub
    assert citizen["nik"] not in (tax_sub, aid_sub)


def test_id_token_hint_for_another_citizen_requires_login(provider):
    alice = provider.citizen()
    bob = provider.citizen(serial=77)
    agency = provider.agency()
    bobs = provider.tokens_for(agency, bob["nik"])
    provider.http.cookies.clear()
    provider.code_for(agency, alice["nik"])
    answer = redirected(
        provider.authorize(agency, prompt="none", id_token_hint=bobs["id_token"], **pkce())
    )
    assert answer["error"] == "login_required"
    page = provider.authorize(agency, id_token_hint=bobs["id_token"], **pkce())
    assert 'name="pin"' in page.text


def test_the_claims_parameter_asks_for_single_claims_and_marks_essential_ones(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    claims = '{"userinfo": {"nik": {"essential": true}}, "id_token": {"name": null}}'
    page = provider.log_in(provider.authorize(agency, claims=claims, **pkce()), citizen["nik"])
    assert "NIK (Nomor Induk Kependudukan)" in page.text
    assert "(wajib)" in page.text
    answer = redirected(provider.decide(page))
    assert answer["code"]


def test_an_invalid_claims_parameter_is_refused(provider):
    agency = provider.agency()
    answer = redirected(provider.authorize(agency, claims="{not json", **pkce()))
    assert answer["error"] == "invalid_request"


def test_a_nonce_used_while_the_citizen_logs_in_is_refused_before_a_code(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.tokens_for(agency, citizen["nik"])  # consent held: the login step answers
    provider.http.cookies.clear()
    page = provider.authorize(agency, nonce="raced", **pkce())
    cookies = dict(provider.http.cookies)
    provider.http.cookies.clear()  # meanwhile, another browser's flow uses the nonce
    provider.tokens_for(agency, citizen["nik"], nonce="raced")
    provider.http.cookies.clear()
    provider.http.cookies.update(cookies)
    answer = redirected(provider.log_in(page, citizen["nik"]))
    assert answer["error"] == "invalid_request"
    assert "code" not in answer


def test_a_nonce_used_before_the_consent_is_given_is_refused_and_records_no_consent(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    other = provider.citizen()
    page = provider.log_in(provider.authorize(agency, nonce="raced", **pkce()), citizen["nik"])
    assert 'name="decision"' in page.text
    cookies = dict(provider.http.cookies)
    provider.http.cookies.clear()  # meanwhile, another citizen's flow uses the nonce
    provider.tokens_for(agency, other["nik"], nonce="raced")
    provider.http.cookies.clear()
    provider.http.cookies.update(cookies)
    answer = redirected(provider.decide(page))
    assert answer["error"] == "invalid_request"
    assert "code" not in answer
    with provider.engine.connect() as connection:
        consents = connection.execute(
            select(func.count())
            .select_from(Consent)
            .join(Citizen, Citizen.id == Consent.citizen_id)
            .where(Citizen.nik == citizen["nik"])
        ).scalar_one()
    assert consents == 0
