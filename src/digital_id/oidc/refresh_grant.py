"""The refresh token grant (RFC 6749 section 6): rotation on every use, on authlib's grant;
the family's storage and its rules are ``grants.refresh``'s."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidGrantError
from authlib.oauth2.rfc6749.grants import RefreshTokenGrant

from digital_id.accounts.grant_standing import GrantStanding, refresh_standing
from digital_id.grants.models import RefreshToken
from digital_id.grants.refresh import (
    accept_generation,
    family_member_problem,
    mark_rotated,
)
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.claims import OFFLINE_ACCESS
from digital_id.oidc.code_grant import Subject, subject_for
from digital_id.oidc.constants import CLIENT_AUTH_METHODS
from digital_id.oidc.context import OnServer
from digital_id.oidc.dpop import InvalidDPoPProofError
from digital_id.oidc.errors import check_agreement
from digital_id.oidc.resources import check_same_resource


class PresentedRefreshToken:
    def __init__(self, row: RefreshToken, found: GrantStanding) -> None:
        self.row = row
        self.found = found
        self.grant = found.grant

    def check_client(self, client: AgencyClient) -> bool:
        return self.grant.client_id == client.pk

    def get_scope(self) -> str:
        return self.grant.scope


class RefreshGrant(OnServer, RefreshTokenGrant):  # type: ignore[misc]
    """Rotation on every use (OAuth 2.0 Security BCP 4.14). Only the newest generation of a
    family is live; a token rotated less than REFRESH_GRACE ago still works (its response may
    have been lost), and any other stale token presented revokes the family: that grant
    only, not the citizen's other sessions or agencies.

    The token, its grant (locked: one family's exchanges go one at a time) and everything
    the one rule asks about them are read in one statement (``accounts.grant_standing``)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> PresentedRefreshToken | None:
        context = self.context
        client: AgencyClient = self.request.client
        check_agreement(client, context.now)
        presented = refresh_standing(context.session, refresh_token, now=context.now)
        if presented is None:
            return None
        row, found = presented
        if family_member_problem(row, found.grant, client_pk=client.pk, now=context.now):
            return None
        if OFFLINE_ACCESS not in found.consented_claims:
            return None  # withdrawn since (the rule, in authenticate_user, asks the rest)
        if row.dpop_jkt is not None and row.dpop_jkt != context.issuing.jkt:
            raise InvalidDPoPProofError("the refresh token is bound to another DPoP key")
        check_same_resource(self.request.payload.datalist.get("resource", []), found.grant.resource)
        context.issuing.resource = found.grant.resource
        if not accept_generation(
            context.session, row, found.grant, now=context.now, events=context.events
        ):
            return None
        return PresentedRefreshToken(row, found)

    def authenticate_user(self, refresh_token: PresentedRefreshToken) -> Subject | None:
        found = refresh_token.found
        if found.problem is not None:
            # RFC 6749 section 5.2: the grant behind the token no longer stands. authlib
            # would answer invalid_request ("There is no 'user'") for a None.
            raise InvalidGrantError("the refresh token is no longer valid")
        return subject_for(self.context, self.request.client, found.grant, found.citizen)

    def revoke_old_credential(self, refresh_token: PresentedRefreshToken) -> None:
        mark_rotated(self.context.session, refresh_token.row, now=self.context.now)
