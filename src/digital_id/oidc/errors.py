"""The protocol's own error classes, each carrying its OAuth error code, HTTP status and
headers (authlib's ``OAuth2Error``); the web layer renders every one the same way."""

from __future__ import annotations

from datetime import datetime

from authlib.oauth2.rfc6749 import OAuth2Error, UnauthorizedClientError
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc8628 import SlowDownError as DeviceSlowDownError

from digital_id.clients.agreements import agreement_problem
from digital_id.oidc.agency_client import AgencyClient

# The protection space of our bearer tokens (RFC 6750 section 3).
REALM = "digital-id"
_INVALID_TOKEN = "The access token is invalid, expired or revoked"  # noqa: S105 (a description)


class SlowDownError(DeviceSlowDownError):  # type: ignore[misc]
    """The client has used up its token budget for this window. ``slow_down`` is registered
    for the token endpoint (RFC 8628 section 3.5, OAuth Extensions Error Registry); the
    status is RFC 6585's 429, with ``Retry-After`` saying when the window frees."""

    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(description=f"Too many token requests; retry after {retry_after} seconds")
        self.retry_after = retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        return [*headers, ("Retry-After", str(self.retry_after))]


class InvalidAccessTokenError(InvalidTokenError):  # type: ignore[misc]
    """RFC 6750 section 3.1 ``invalid_token``, 401. ``reason`` is for logs: the client sees
    only the code, and in the challenge one description for every reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(description=_INVALID_TOKEN, realm=REALM)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason

    def get_body(self) -> list[tuple[str, str]]:
        return [("error", self.error)]


class MissingAccessTokenError(OAuth2Error):  # type: ignore[misc]
    """No bearer token at all: 401 with a bare challenge, which RFC 6750 section 3.1 says
    should carry no error code; the body names ``invalid_request``."""

    error = "invalid_request"
    status_code = 401

    def get_body(self) -> list[tuple[str, str]]:
        return [("error", self.error)]

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        return [*headers, ("WWW-Authenticate", f'Bearer realm="{REALM}"')]


class AgreementNotInForceError(UnauthorizedClientError):  # type: ignore[misc]
    """The agency's data-sharing agreement has expired or is suspended: ``unauthorized_client``
    (RFC 6749 sections 4.1.2.1 and 5.2), saying which, at authorization, device authorization
    and refresh alike (``clients.agreements``)."""

    def __init__(self, problem: str) -> None:
        super().__init__(
            description=f"the agency's data-sharing agreement is {problem}: "
            "nothing about a citizen can be released to it"
        )


def check_agreement(client: AgencyClient, now: datetime) -> None:
    """Refuse ``client`` while its agreement is not in force (the one rule's
    ``agreement_problem``)."""
    problem = agreement_problem(client.row, now)
    if problem is not None:
        raise AgreementNotInForceError(problem)
