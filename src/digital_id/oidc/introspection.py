"""The introspection endpoint (RFC 7662), on authlib's."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.code_grant import subject_for
from digital_id.oidc.constants import CLIENT_AUTH_METHODS
from digital_id.oidc.requests import ProviderRequest
from digital_id.oidc.tokens import FindsTokens, PresentedToken


class TokenIntrospection(FindsTokens, IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662. A client sees its own tokens; a resource server sees the tokens made out to
    it (``aud`` its ``resource_identifier``, RFC 8707). Inactive, expired, revoked, unknown
    and foreign tokens all answer ``active: false``."""

    CLIENT_AUTH_METHODS = tuple(m for m in CLIENT_AUTH_METHODS if m != "none")

    def check_permission(
        self, token: PresentedToken, client: AgencyClient, request: ProviderRequest
    ) -> bool:
        if token.check_client(client):
            return True
        identifier = client.resource_identifier
        return identifier is not None and token.claims.get("aud") == identifier

    def introspect_token(self, token: PresentedToken) -> dict[str, Any]:
        if token.kind == "access_token":
            payload: dict[str, Any] = {
                name: token.claims[name]
                for name in (
                    "scope",
                    "client_id",
                    "sub",
                    "aud",
                    "iss",
                    "exp",
                    "iat",
                    "jti",
                    "acr",
                    "auth_time",
                    "cnf",
                    "act",
                )
                if name in token.claims
            }
            # A DPoP-bound token says so, and names its key (RFC 9449 section 6.2).
            token_type = "DPoP" if "cnf" in payload else "Bearer"
            return {"active": True, "token_type": token_type, **payload}
        assert token.grant is not None
        owner = AgencyClient(token.client)
        subject = subject_for(self.context, owner, token.grant)
        return {
            "active": True,
            "token_type": "refresh_token",
            "scope": token.grant.scope,
            "client_id": token.client.client_id,
            "sub": subject.sub,
            **subject.act,
            "iss": self.context.settings.issuer,
            "exp": int(token.expires_at.timestamp()),
        }
