"""A change in who the citizen may be ends their sessions the way a logout does: an operator's
block, a register import that marks them deceased or blocked, a logout before a code is
redeemed. Agencies hear of it by back-channel logout, and nothing issued before it works."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select
from typer.testing import CliRunner

from digital_id.audit.models import AuditEvent
from digital_id.cli import app as cli
from digital_id.grants.models import AuthorizationGrant
from tests.conftest import TEST_PASSPHRASE
from tests.factories import write_csv
from tests.web.test_logout import _LogoutReceiver
from tests.web.test_portal import enrol_in_the_portal, portal_login
from tests.web.test_refresh_tokens import OFFLINE, offline_agency, refresh
from tests.web.test_second_factor import SUBSTANTIAL, secret_on


@pytest.fixture
def receiver():
    """The agency's back-channel logout endpoint."""
    server = _LogoutReceiver()
    yield server
    server.close()


@pytest.fixture
def operator(cli_env, monkeypatch):
    """The command line, on the same database and key store as the running provider."""
    monkeypatch.setenv("DIGITAL_ID_KEYS_PASSPHRASE", TEST_PASSPHRASE)

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    return run


def _logged_in_everywhere(provider, receiver):
    """A citizen logged in to an agency with offline access (back-channel logout registered),
    and so to the portal too, in one browser."""
    citizen = provider.citizen()
    agency = offline_agency(provider, backchannel_logout_uri=receiver.url)
    tokens = provider.tokens_for(agency, citizen["nik"], **OFFLINE)
    assert "Akun saya" in provider.http.get("/account").text
    return citizen, agency, tokens


def _assert_logged_out_everywhere(provider, receiver, agency, tokens):
    received = receiver.wait_for(1)
    assert received, "no back-channel logout reached the agency"
    keys = KeySet.import_key_set(provider.http.get("/jwks").json())
    logout = jwt.decode(received[0], keys, algorithms=["RS256"]).claims
    id_token = provider.verify(tokens["id_token"])
    assert (logout["aud"], logout["sub"], logout["sid"]) == (
        agency.client_id,
        id_token["sub"],
        id_token["sid"],
    )
    assert refresh(provider, agency, tokens["refresh_token"]).status_code == 400
    assert provider.userinfo(tokens["access_token"]).status_code == 401
    assert 'name="pin"' in provider.http.get("/account").text
    assert provider.http.get("/account/data.json", follow_redirects=False).status_code == 303
    with provider.engine.connect() as connection:
        revoked = connection.execute(select(AuthorizationGrant.revoked_at)).scalars().all()
        ended_by_operator = (
            connection.execute(select(AuditEvent.tag).where(AuditEvent.actor == "operator"))
            .scalars()
            .all()
        )
    assert revoked
    assert all(revoked), "a grant outlived the status change"
    assert {"session:ended", "token:revoked"} <= set(ended_by_operator), ended_by_operator


def test_blocking_a_citizen_logs_them_out_of_every_agency(provider, receiver, operator):
    citizen, agency, tokens = _logged_in_everywhere(provider, receiver)
    operator("citizens", "block", citizen["nik"])
    _assert_logged_out_everywhere(provider, receiver, agency, tokens)


def test_resetting_the_authenticator_logs_the_citizen_out_of_every_agency(
    provider, receiver, operator
):
    """The phone was lost or taken: whoever holds a session may be the reason for the reset."""
    citizen = provider.citizen()
    secret = enrol_in_the_portal(provider, citizen["nik"])
    agency = offline_agency(provider, backchannel_logout_uri=receiver.url)
    tokens = provider.tokens_for(agency, citizen["nik"], **OFFLINE)
    assert provider.verify(tokens["id_token"])["acr"] == SUBSTANTIAL
    operator("citizens", "reset-otp", citizen["nik"])
    _assert_logged_out_everywhere(provider, receiver, agency, tokens)
    with provider.engine.connect() as connection:
        reset = connection.execute(
            select(AuditEvent.actor).where(AuditEvent.tag == "citizen:otp_reset")
        ).scalar_one()
    assert reset == "operator"
    # Back to the PIN alone, until the citizen enrols an authenticator again.
    assert "Akun saya" in portal_login(provider, citizen["nik"]).text
    enrolment = provider.http.get("/account/otp/enrol")
    assert secret_on(enrolment) != secret


def test_unblocking_does_not_bring_old_tokens_back(provider, receiver, operator):
    citizen, agency, tokens = _logged_in_everywhere(provider, receiver)
    operator("citizens", "block", citizen["nik"])
    operator("citizens", "unblock", citizen["nik"])
    assert refresh(provider, agency, tokens["refresh_token"]).status_code == 400
    assert provider.userinfo(tokens["access_token"]).status_code == 401


@pytest.mark.parametrize("status", ["deceased", "blocked"])
def test_a_register_import_that_withdraws_a_citizen_logs_them_out(
    provider, receiver, operator, tmp_path, status
):
    citizen, agency, tokens = _logged_in_everywhere(provider, receiver)
    register = write_csv(tmp_path / "register.csv", [{**citizen, "status": status}])
    operator("registry", "import", str(register))
    _assert_logged_out_everywhere(provider, receiver, agency, tokens)
    assert "intact" in operator("audit", "verify").lower()


def test_a_register_import_that_changes_nothing_else_ends_no_session(
    provider, receiver, operator, tmp_path
):
    citizen, _, tokens = _logged_in_everywhere(provider, receiver)
    register = write_csv(tmp_path / "register.csv", [{**citizen, "street": "Jl. Baru No. 1"}])
    operator("registry", "import", str(register))
    assert provider.userinfo(tokens["access_token"]).status_code == 200
    assert "Akun saya" in provider.http.get("/account").text
    assert receiver.tokens == []


def test_a_code_issued_before_its_session_logged_out_is_worthless(provider, receiver):
    """The ID token would name a sid whose back-channel logout was already sent, so the
    agency's session for it would never end."""
    citizen = provider.citizen()
    agency = provider.agency(backchannel_logout_uri=receiver.url)
    provider.tokens_for(agency, citizen["nik"])  # consent, and a session
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    page = provider.http.get("/logout")
    provider.http.post(
        "/logout",
        data={"csrf_token": page.text.split('name="csrf_token" value="')[1].split('"')[0]},
    )
    assert receiver.wait_for(1)
    answer = provider.token(agency, code, verifier)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_an_offline_code_outlives_its_session(provider):
    """Offline access is meant to outlive the browser session; its code still works after a
    logout (the agency asked for, and the citizen granted, access while away)."""
    citizen = provider.citizen()
    agency = offline_agency(provider)
    provider.tokens_for(agency, citizen["nik"], **OFFLINE)
    code, verifier, _ = provider.code_for(agency, citizen["nik"], **OFFLINE)
    page = provider.http.get("/logout")
    provider.http.post(
        "/logout",
        data={"csrf_token": page.text.split('name="csrf_token" value="')[1].split('"')[0]},
    )
    assert provider.token(agency, code, verifier).status_code == 200
