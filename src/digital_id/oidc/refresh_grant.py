"""The refresh token grant (RFC 6749 section 6): rotation on every use, on authlib's grant;
the family's storage and its rules are ``grants.refresh``'s."""

from __future__ import annotations

from authlib.oauth2.rfc6749.grants import RefreshTokenGrant

from digital_id.consent import service as consent_service
from digital_id.grants.models import AuthorizationGrant, RefreshToken
from digital_id.grants.refresh import accept_generation, live_family_member, mark_rotated
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.claims import OFFLINE_ACCESS
from digital_id.oidc.code_grant import Subject, subject_of
from digital_id.oidc.constants import CLIENT_AUTH_METHODS
from digital_id.oidc.context import OnServer


class PresentedRefreshToken:
    def __init__(self, row: RefreshToken, grant: AuthorizationGrant) -> None:
        self.row = row
        self.grant = grant

    def check_client(self, client: AgencyClient) -> bool:
        return self.grant.client_id == client.pk

    def get_scope(self) -> str:
        return self.grant.scope


class RefreshGrant(OnServer, RefreshTokenGrant):  # type: ignore[misc]
    """Rotation on every use (OAuth 2.0 Security BCP 4.14). Only the newest generation of a
    family is live; a token rotated less than REFRESH_GRACE ago still works (its response may
    have been lost), and any other stale token presented revokes the family: that grant
    only, not the citizen's other sessions or agencies."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> PresentedRefreshToken | None:
        context = self.context
        client: AgencyClient = self.request.client
        found = live_family_member(
            context.session, refresh_token, client_pk=client.pk, now=context.now
        )
        if found is None:
            return None
        row, grant = found
        consent = consent_service.current(
            context.session, citizen_id=grant.citizen_id, client_pk=client.pk
        )
        if consent is None or OFFLINE_ACCESS not in consent.claims:
            return None  # withdrawn since (the one rule, in subject_of, asks the rest)
        if not accept_generation(
            context.session, row, grant, now=context.now, events=context.events
        ):
            return None
        return PresentedRefreshToken(row, grant)

    def authenticate_user(self, refresh_token: PresentedRefreshToken) -> Subject | None:
        return subject_of(self.context, self.request.client, refresh_token.grant)

    def revoke_old_credential(self, refresh_token: PresentedRefreshToken) -> None:
        mark_rotated(self.context.session, refresh_token.row, now=self.context.now)
