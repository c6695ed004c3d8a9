"""The one rule (``accounts.standing``), asked at every place a citizen authenticates or an
agency receives something: each state that must stop a citizen, at each place, is refused.

Each state is put straight into the database, the way the register, an operator or the
lockout leaves it, without the session-ending that normally goes with a status change:
so every cell shows the place asking the rule itself, not profiting from a session that
happened to end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from digital_id.db.types import utc_now
from tests.web.conftest import Agency, Provider, query_of
from tests.web.test_authorization_endpoint import pkce
from tests.web.test_portal import portal_login
from tests.web.test_refresh_tokens import OFFLINE, offline_agency, refresh
from tests.web.test_second_factor import SUBSTANTIAL, code_at, enrol, finish, submit_otp

# --- the states ----------------------------------------------------------------------------

API = "https://api.pajak.example.go.id/v1"


@dataclass(frozen=True)
class Cell:
    provider: Provider
    citizen: dict[str, Any]
    agency: Agency


def _sql(cell: Cell, statement: str, **values: Any) -> None:
    with cell.provider.engine.begin() as connection:
        connection.execute(text(statement), values)


def _citizen_update(column_and_value: str) -> Callable[[Cell], None]:
    def apply(cell: Cell) -> None:
        _sql(
            cell,
            f"UPDATE citizens SET {column_and_value} WHERE nik = :nik",
            nik=cell.citizen["nik"],
        )

    return apply


def _account_update(column_and_value: str) -> Callable[[Cell], None]:
    def apply(cell: Cell) -> None:
        _sql(
            cell,
            f"UPDATE citizen_accounts SET {column_and_value} "
            "WHERE citizen_id = (SELECT id FROM citizens WHERE nik = :nik)",
            nik=cell.citizen["nik"],
            now=utc_now(),
            later=utc_now() + timedelta(hours=1),
        )

    return apply


def _locked_everywhere(cell: Cell) -> None:
    """Locked for strangers and at each browser the citizen logged in from (a lock belongs
    to a browser: test_lockout_per_browser has the strangers' lock alone)."""
    _account_update("locked_until = :later")(cell)
    _sql(
        cell,
        "UPDATE recognised_browsers SET locked_until = :later "
        "WHERE citizen_id = (SELECT id FROM citizens WHERE nik = :nik)",
        nik=cell.citizen["nik"],
        later=utc_now() + timedelta(hours=1),
    )


def _agency_disabled(cell: Cell) -> None:
    _sql(cell, "UPDATE clients SET enabled = false WHERE client_id = :id", id=cell.agency.client_id)


def _agreement_suspended(cell: Cell) -> None:
    _sql(
        cell,
        "UPDATE clients SET suspended_at = :now WHERE client_id = :id",
        id=cell.agency.client_id,
        now=utc_now(),
    )


def _consent_withdrawn(cell: Cell) -> None:
    _sql(
        cell,
        "UPDATE consents SET revoked_at = :now "
        "WHERE client_id = (SELECT id FROM clients WHERE client_id = :id)",
        id=cell.agency.client_id,
        now=utc_now(),
    )


CITIZEN_STATES: dict[str, Callable[[Cell], None]] = {
    "deceased": _citizen_update("status = 'deceased'"),
    "blocked_in_the_register": _citizen_update("status = 'blocked'"),
    "blocked_by_an_operator": _account_update("blocked_at = :now"),
    "locked": _locked_everywhere,
    "locked_by_wrong_codes": _account_update("otp_locked_until = :later"),
    "not_activated": _account_update("pin_hash = NULL, activated_at = NULL"),
}
AGENCY_STATES: dict[str, Callable[[Cell], None]] = {
    "agency_disabled": _agency_disabled,
    "agreement_suspended": _agreement_suspended,
    "consent_withdrawn": _consent_withdrawn,
}

# --- the places: each arranges what it needs, then the state is applied, then it acts -----


def _no_code(response) -> bool:
    """Nothing reached the agency: no redirect carrying a code."""
    if response.status_code not in (302, 303):
        return True
    return "code" not in query_of(response.headers["location"])


class Place:
    """Arrange (before the state), then act and say whether the citizen was refused."""

    def agency(self, provider: Provider) -> Agency:
        return provider.agency()

    def arrange(self, cell: Cell) -> Any:
        return None

    def refused(self, cell: Cell, arranged: Any) -> bool:
        raise NotImplementedError


class PinLogin(Place):
    def arrange(self, cell):
        # Consent given once, in another browser: a login in good standing goes straight on.
        cell.provider.tokens_for(cell.agency, cell.citizen["nik"])
        cell.provider.http.cookies.clear()

    def refused(self, cell, arranged):
        page = cell.provider.authorize(cell.agency, **pkce())
        if 'name="pin"' not in page.text:
            return _no_code(page)
        answer = cell.provider.log_in(page, cell.citizen["nik"])
        if answer.status_code == 200 and 'name="decision"' in answer.text:
            # A withdrawn consent is asked again; approving it is a new consent, not a code
            # issued under the withdrawn one.
            return True
        return _no_code(answer)


class SingleSignOn(Place):
    def arrange(self, cell):
        cell.provider.tokens_for(cell.agency, cell.citizen["nik"])

    def refused(self, cell, arranged):
        page = cell.provider.authorize(cell.agency, **pkce())
        return _no_code(page)


class PromptNone(SingleSignOn):
    def refused(self, cell, arranged):
        page = cell.provider.authorize(cell.agency, prompt="none", **pkce())
        return _no_code(page)


class StepUp(Place):
    """A PIN session asked for the one-time code; the state changes before it is entered."""

    def arrange(self, cell):
        provider = cell.provider
        enrolment, secret = enrol(provider, cell.agency, cell.citizen["nik"])
        finish(provider, cell.agency, submit_otp(provider, enrolment, code_at(secret)))
        provider.http.cookies.clear()
        page = provider.log_in(
            provider.authorize(cell.agency, acr_values=SUBSTANTIAL, **pkce()), cell.citizen["nik"]
        )
        assert 'name="otp"' in page.text
        return page, secret

    def refused(self, cell, arranged):
        page, secret = arranged
        answer = submit_otp(cell.provider, page, code_at(secret, 1))
        if answer.status_code == 200 and 'name="decision"' in answer.text:
            return True  # consent asked again (withdrawn)
        return _no_code(answer)


class CodeRedemption(Place):
    def arrange(self, cell):
        code, verifier, _ = cell.provider.code_for(cell.agency, cell.citizen["nik"])
        return code, verifier

    def refused(self, cell, arranged):
        code, verifier = arranged
        response = cell.provider.token(cell.agency, code, verifier)
        return response.status_code in (400, 401) and "access_token" not in response.text


class Refresh(Place):
    def agency(self, provider):
        return offline_agency(provider)

    def arrange(self, cell):
        return cell.provider.tokens_for(cell.agency, cell.citizen["nik"], **OFFLINE)

    def refused(self, cell, arranged):
        response = refresh(cell.provider, cell.agency, arranged["refresh_token"])
        return response.status_code in (400, 401) and "access_token" not in response.text


class Introspection(Place):
    """Asked by the agency API the token is made out to (RFC 8707)."""

    def agency(self, provider):
        return provider.agency(resources=[API])

    def arrange(self, cell):
        api = cell.provider.agency(resource_server=True, resource_identifier=API)
        return api, cell.provider.tokens_for(cell.agency, cell.citizen["nik"], resource=API)

    def refused(self, cell, arranged):
        api, tokens = arranged
        answer = cell.provider.http.post(
            "/introspect", **api.authenticated({"token": tokens["access_token"]})
        )
        return answer.status_code == 200 and answer.json() == {"active": False}


class IntrospectionOfARefreshToken(Refresh):
    """Asked by the agency that holds it (a resource server sees no refresh token); a
    disabled agency cannot ask at all."""

    def refused(self, cell, arranged):
        answer = cell.provider.http.post(
            "/introspect", **cell.agency.authenticated({"token": arranged["refresh_token"]})
        )
        if answer.status_code == 401:
            return answer.json()["error"] == "invalid_client"
        return answer.status_code == 200 and answer.json() == {"active": False}


class UserInfo(Place):
    def arrange(self, cell):
        return cell.provider.tokens_for(cell.agency, cell.citizen["nik"])

    def refused(self, cell, arranged):
        response = cell.provider.userinfo(arranged["access_token"])
        return response.status_code == 401 and "invalid_token" in response.headers.get(
            "www-authenticate", ""
        )


class Portal(Place):
    def arrange(self, cell):
        page = portal_login(cell.provider, cell.citizen["nik"])
        assert "Akun saya" in page.text

    def refused(self, cell, arranged):
        http = cell.provider.http
        page = http.get("/account")
        data = http.get("/account/data.json", follow_redirects=False)
        pin_page = http.get("/account/pin")
        return (
            'name="pin"' in page.text  # the login page, not the account
            and cell.citizen["full_name"] not in page.text
            and data.status_code == 303
            and 'name="old_pin"' not in pin_page.text
        )


class PortalLogin(Place):
    def refused(self, cell, arranged):
        page = portal_login(cell.provider, cell.citizen["nik"])
        return 'role="alert"' in page.text and "Akun saya" not in page.text


CITIZEN_PLACES: dict[str, Place] = {
    "pin_login": PinLogin(),
    "portal_login": PortalLogin(),
    "single_sign_on": SingleSignOn(),
    "prompt_none": PromptNone(),
    "step_up": StepUp(),
    "code_redemption": CodeRedemption(),
    "refresh": Refresh(),
    "introspection": Introspection(),
    "introspection_of_a_refresh_token": IntrospectionOfARefreshToken(),
    "userinfo": UserInfo(),
    "portal": Portal(),
}
# The portal serves the citizen, not an agency: an agency's state does not concern it.
AGENCY_PLACES = {
    name: place for name, place in CITIZEN_PLACES.items() if name not in ("portal", "portal_login")
}


def _cell(provider: Provider, place: Place) -> Cell:
    return Cell(provider, provider.citizen(), place.agency(provider))


@pytest.mark.parametrize("place", CITIZEN_PLACES)
@pytest.mark.parametrize("state", CITIZEN_STATES)
def test_a_citizen_who_may_not_log_in_is_refused_everywhere(provider, state, place):
    where = CITIZEN_PLACES[place]
    cell = _cell(provider, where)
    arranged = where.arrange(cell)
    CITIZEN_STATES[state](cell)
    assert where.refused(cell, arranged), f"{state} was not refused at {place}"


@pytest.mark.parametrize("place", AGENCY_PLACES)
@pytest.mark.parametrize("state", AGENCY_STATES)
def test_an_agency_disabled_or_a_consent_withdrawn_gets_nothing_anywhere(provider, state, place):
    where = AGENCY_PLACES[place]
    cell = _cell(provider, where)
    arranged = where.arrange(cell)
    AGENCY_STATES[state](cell)
    assert where.refused(cell, arranged), f"{state} was not refused at {place}"


@pytest.mark.parametrize("place", CITIZEN_PLACES)
def test_every_place_lets_a_citizen_in_good_standing_through(provider, place):
    """The other side of each cell: the same steps, with no state applied, succeed (so a
    refusal above is the rule's, not a broken arrangement)."""
    where = CITIZEN_PLACES[place]
    cell = _cell(provider, where)
    arranged = where.arrange(cell)
    assert not where.refused(cell, arranged), f"{place} refused a citizen in good standing"


def test_the_matrix_covers_every_refusal_the_rule_knows():
    from digital_id.accounts.standing import Refusal

    covered = {
        "deceased": Refusal.DECEASED,
        "blocked_in_the_register": Refusal.REGISTER_BLOCKED,
        "blocked_by_an_operator": Refusal.OPERATOR_BLOCKED,
        "locked": Refusal.LOCKED,
        "locked_by_wrong_codes": Refusal.OTP_LOCKED,
        "not_activated": Refusal.NOT_ACTIVATED,
        "agency_disabled": Refusal.AGENCY_DISABLED,
        "agreement_suspended": Refusal.AGREEMENT_NOT_IN_FORCE,
        "consent_withdrawn": Refusal.CONSENT_WITHDRAWN,
    }
    assert set(covered) == set(CITIZEN_STATES) | set(AGENCY_STATES)
    # UNKNOWN cannot hold a session or a token; SESSION_ENDED and DELEGATION_ENDED (a
    # guardian's grant for a child, tests/web/test_acting_for_a_child.py at the same places)
    # have tests of their own.
    assert set(Refusal) - set(covered.values()) == {
        Refusal.UNKNOWN,
        Refusal.SESSION_ENDED,
        Refusal.DELEGATION_ENDED,
    }
