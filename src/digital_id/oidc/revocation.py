"""The revocation endpoint (RFC 7009), on authlib's."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint

from digital_id.grants.revocation import revoke_access_token, revoke_grant
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.constants import CLIENT_AUTH_METHODS
from digital_id.oidc.requests import ProviderRequest
from digital_id.oidc.tokens import FindsTokens, PresentedToken


class TokenRevocation(FindsTokens, RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. Revoking any token of a grant revokes the grant: its refresh token family
    and its access tokens (at UserInfo and introspection) together."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def authenticate_token(self, request: ProviderRequest, client: AgencyClient) -> Any:
        """Another client's token is treated as an unknown one: 200 and nothing revoked.
        authlib answers it 400 ``invalid_grant``, which would tell a client, against a 200
        for garbage, that a token it holds is real (RFC 7009 section 2.2 allows the 200)."""
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        return token if token is not None and token.check_client(client) else None

    def revoke_token(self, token: PresentedToken, request: ProviderRequest) -> None:
        context = self.context
        if token.grant is not None:
            revoke_grant(
                context.session,
                token.grant.id,
                context.now,
                reason="revoked_by_client",
                events=context.events,
            )
            return
        revoke_access_token(context.session, token.claims["jti"], expires_at=token.expires_at)
