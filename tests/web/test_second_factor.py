"""Levels of assurance: TOTP as the second factor, enrolment during login, step-up, replay."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

import pyotp
from sqlalchemy import text

from tests.web.conftest import PIN, hidden, pkce_pair
from tests.web.test_authorization_endpoint import pkce, redirected

SUBSTANTIAL = "urn:digital-id:loa:substantial"
LOW = "urn:digital-id:loa:low"


def secret_on(page) -> str:
    match = re.search(r'<code class="secret">([^<]+)</code>', page.text)
    assert match, page.text[:2000]
    return html.unescape(match.group(1)).replace(" ", "")


def submit_otp(provider, page, code):
    assert 'name="otp"' in page.text, page.text[:2000]
    return provider.http.post(
        "/authorize/otp",
        data={
            "csrf_token": hidden(page.text, "csrf_token"),
            "authorization_request": hidden(page.text, "authorization_request"),
            "otp": code,
        },
        follow_redirects=False,
    )


def code_at(secret: str, step_offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30 * step_offset))


def enrol(provider, agency, nik, **params):
    """Log in at the substantial level for the first time: PIN, then enrolment."""
    page = provider.authorize(agency, acr_values=SUBSTANTIAL, **pkce(), **params)
    enrolment = provider.log_in(page, nik)
    secret = secret_on(enrolment)
    return enrolment, secret


def finish(provider, agency, response):
    if 'name="decision"' in response.text:
        response = provider.decide(response)
    answer = redirected(response)
    return answer


def test_discovery_lists_both_levels(provider):
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    assert metadata["acr_values_supported"] == [LOW, SUBSTANTIAL]


def test_the_first_substantial_login_enrols_an_authenticator_then_issues_substantial_tokens(
    provider,
):
    citizen = provider.citizen()
    agency = provider.agency()
    enrolment, secret = enrol(provider, agency, citizen["nik"])
    assert "<svg" in enrolment.text  # the QR code, inline
    assert len(secret) == 32
    wrong = submit_otp(provider, enrolment, "000000" if code_at(secret) != "000000" else "111111")
    assert 'role="alert"' in wrong.text
    answer = finish(provider, agency, submit_otp(provider, wrong, code_at(secret)))
    assert "code" in answer


def test_an_enrolled_citizen_gets_acr_substantial_and_amr_with_the_second_factor(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    verifier, challenge = pkce_pair()
    page = provider.authorize(
        agency, acr_values=SUBSTANTIAL, code_challenge=challenge, code_challenge_method="S256"
    )
    enrolment = provider.log_in(page, citizen["nik"])
    answer = finish(
        provider, agency, submit_otp(provider, enrolment, code_at(secret_on(enrolment)))
    )
    tokens = provider.token(agency, answer["code"], verifier).json()
    id_token = provider.verify(tokens["id_token"])
    assert id_token["acr"] == SUBSTANTIAL
    assert id_token["amr"] == ["pin", "otp", "mfa"]
    assert provider.verify(tokens["access_token"])["acr"] == SUBSTANTIAL


def test_the_secret_is_encrypted_at_rest(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    enrolment, secret = enrol(provider, agency, citizen["nik"])
    finish(provider, agency, submit_otp(provider, enrolment, code_at(secret)))
    with provider.engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM citizen_accounts")).one()
    assert secret not in repr(tuple(row))


def test_a_code_is_accepted_once(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    enrolment, secret = enrol(provider, agency, citizen["nik"])
    used = code_at(secret)
    finish(provider, agency, submit_otp(provider, enrolment, used))
    page = provider.authorize(agency, acr_values=SUBSTANTIAL, prompt="login", **pkce())
    otp_page = provider.log_in(page, citizen["nik"])
    replay = submit_otp(provider, otp_page, used)
    assert 'role="alert"' in replay.text
    assert "code" in finish(provider, agency, submit_otp(provider, replay, code_at(secret, 1)))


def test_a_low_session_is_stepped_up_with_only_the_code(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    enrolment, secret = enrol(provider, agency, citizen["nik"])
    finish(provider, agency, submit_otp(provider, enrolment, code_at(secret)))
    provider.http.cookies.clear()
    provider.code_for(agency, citizen["nik"])  # a new browser, PIN only: low
    step_up = provider.authorize(agency, acr_values=SUBSTANTIAL, **pkce())
    assert 'name="otp"' in step_up.text
    assert 'name="pin"' not in step_up.text
    assert "<svg" not in step_up.text  # enrolled already: no QR code again
    assert "code" in finish(provider, agency, submit_otp(provider, step_up, code_at(secret, 1)))


def test_prompt_none_cannot_step_up(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.code_for(agency, citizen["nik"])
    answer = redirected(provider.authorize(agency, acr_values=SUBSTANTIAL, prompt="none", **pkce()))
    assert answer["error"] == "login_required"


def test_an_essential_acr_claim_is_honoured(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.code_for(agency, citizen["nik"])
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": [SUBSTANTIAL]}}})
    page = provider.authorize(agency, claims=claims, **pkce())
    assert 'name="otp"' in page.text


def test_an_agency_registered_for_substantial_always_gets_it(provider):
    citizen = provider.citizen()
    agency = provider.agency(default_acr_values=[SUBSTANTIAL])
    page = provider.authorize(agency, acr_values=LOW, **pkce())
    assert 'name="otp"' in provider.log_in(page, citizen["nik"]).text


def test_a_substantial_session_serves_low_requests_without_asking_again(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    enrolment, secret = enrol(provider, agency, citizen["nik"])
    finish(provider, agency, submit_otp(provider, enrolment, code_at(secret)))
    answer = redirected(provider.authorize(agency, **pkce()))
    assert "code" in answer


def wrong_code(secret: str) -> str:
    near = {code_at(secret, offset) for offset in (-1, 0, 1, 2)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in near)


def alert(page) -> str:
    match = re.search(r'role="alert"[^>]*>([^<]+)<', page.text)
    assert match, page.text[:2000]
    return match.group(1)


def test_a_correct_pin_does_not_buy_more_guesses_at_the_code(provider):
    """Whoever holds the PIN used to get four code guesses per login (about 11,500 a day):
    the PIN's success reset the one counter both factors shared."""
    citizen = provider.citizen()
    agency = provider.agency()
    enrolment, secret = enrol(provider, agency, citizen["nik"])
    finish(provider, agency, submit_otp(provider, enrolment, code_at(secret)))
    provider.http.cookies.clear()
    for _ in range(5):
        page = provider.authorize(agency, acr_values=SUBSTANTIAL, prompt="login", **pkce())
        otp_page = provider.log_in(page, citizen["nik"])
        assert 'name="otp"' in otp_page.text  # the PIN passed
        assert 'role="alert"' in submit_otp(provider, otp_page, wrong_code(secret)).text
    page = provider.authorize(agency, acr_values=SUBSTANTIAL, prompt="login", **pkce())
    refused = provider.log_in(page, citizen["nik"])
    assert 'name="otp"' not in refused.text, "the right PIN still reaches the code page"
    wrong_pin = provider.log_in(
        provider.authorize(agency, prompt="login", **pkce()), citizen["nik"], "135792"
    )
    assert alert(refused) == alert(wrong_pin)  # locked looks like any failed login


def test_a_wrong_code_while_enrolling_counts_towards_no_lock(provider):
    """The enrolment page shows the secret: a wrong code there guesses nothing."""
    citizen = provider.citizen()
    agency = provider.agency()
    page, secret = enrol(provider, agency, citizen["nik"])
    for _ in range(6):
        page = submit_otp(provider, page, wrong_code(secret))
    assert "code" in finish(provider, agency, submit_otp(provider, page, code_at(secret)))


def test_failed_codes_lock_the_account(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    enrolment, secret = enrol(provider, agency, citizen["nik"])
    finish(provider, agency, submit_otp(provider, enrolment, code_at(secret)))
    provider.http.cookies.clear()
    page = provider.log_in(
        provider.authorize(agency, acr_values=SUBSTANTIAL, **pkce()), citizen["nik"]
    )
    for _ in range(5):
        page = submit_otp(provider, page, wrong_code(secret))
    locked = submit_otp(provider, page, code_at(secret, 1))
    assert 'role="alert"' in locked.text
    provider.http.cookies.clear()
    login = provider.authorize(agency, **pkce())
    assert 'role="alert"' in provider.log_in(login, citizen["nik"], PIN).text


def test_an_unknown_level_is_ignored(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"], acr_values="urn:other:gold")
    assert provider.verify(tokens["id_token"])["acr"] == LOW
