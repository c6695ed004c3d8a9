"""The client credentials grant (RFC 6749 section 4.4): an agency acting as itself."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant

from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.constants import CITIZEN_SCOPES, CLIENT_AUTH_METHODS
from digital_id.oidc.resources import requested_resource


class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    """An agency acting as itself, for agency-to-agency APIs: only clients registered for the
    grant, only scopes in their registration, never a scope that releases citizen data."""

    TOKEN_ENDPOINT_AUTH_METHODS = tuple(m for m in CLIENT_AUTH_METHODS if m != "none")

    def validate_token_request(self) -> None:
        super().validate_token_request()
        client: AgencyClient = self.request.client
        requested = set((self.request.payload.scope or "").split())
        if requested & CITIZEN_SCOPES or not requested <= set(client.api_scopes):
            raise InvalidScopeError("the scope is not in this client's registration")
        if not client.api_scopes:
            raise InvalidScopeError("this client has no scopes registered for itself")
        self.server.context.issuing.resource = requested_resource(
            client, self.request.payload.datalist.get("resource", []), userinfo_url=None
        )
