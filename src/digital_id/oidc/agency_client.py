"""An enabled agency client as authlib asks about it (authlib's ClientMixin)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin

from digital_id.clients.jwks import ASSERTION_ALGORITHMS
from digital_id.clients.models import Client
from digital_id.clients.service import verify_secret
from digital_id.clients.subjects import subject_for
from digital_id.oidc.constants import CITIZEN_SCOPES


class AgencyClient(ClientMixin):  # type: ignore[misc]
    """An enabled agency client as authlib's grants ask about it."""

    def __init__(self, row: Client) -> None:
        self.row = row
        self.client_metadata: dict[str, Any] = row.registration

    @property
    def pk(self) -> int:
        return self.row.id

    @property
    def client_id(self) -> str:
        return self.row.client_id

    @property
    def redirect_uris(self) -> list[str]:
        return list(self.client_metadata.get("redirect_uris", []))

    @property
    def registered_scopes(self) -> list[str]:
        return str(self.client_metadata.get("scope", "openid")).split()

    @property
    def id_token_signed_response_alg(self) -> str:
        return str(self.client_metadata.get("id_token_signed_response_alg", "RS256"))

    def assertion_algorithms(self, registered_as: str) -> frozenset[str]:
        """The algorithms the client may sign with where ``registered_as``
        (``token_endpoint_auth_signing_alg``, ``request_object_signing_alg``) applies: the one
        it registered, or any asymmetric one (OpenID Connect Registration 1.0, section 2)."""
        registered = self.client_metadata.get(registered_as)
        return frozenset({registered}) if registered else ASSERTION_ALGORITHMS

    def name(self, language: str) -> str:
        return self.row.display_name(language)

    def subject_for(self, citizen_id: int, secret: bytes) -> str:
        return subject_for(self.row, citizen_id, secret)

    # --- authlib's ClientMixin -------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous default: with several registered, the request must name one.
        uris = self.redirect_uris
        return uris[0] if len(uris) == 1 else None

    @property
    def api_scopes(self) -> list[str]:
        """The registered scopes a client may hold as itself (client credentials)."""
        return [scope for scope in self.registered_scopes if scope not in CITIZEN_SCOPES]

    @property
    def resources(self) -> list[str]:
        """The agency APIs (resource identifiers, RFC 8707) this client may ask tokens for."""
        return list(self.client_metadata.get("resources", []))

    @property
    def resource_identifier(self) -> str | None:
        """The identifier of the API this client is, when it is a resource server."""
        value = self.client_metadata.get("resource_identifier")
        return str(value) if self.is_resource_server and value else None

    @property
    def accepts_delegation(self) -> bool:
        """Registered to let a parent log in for their child (``accounts.delegation``)."""
        return self.client_metadata.get("accepts_delegation") is True

    @property
    def is_fapi2(self) -> bool:
        """Registered under the FAPI 2.0 Security Profile (``clients.metadata``)."""
        return self.client_metadata.get("fapi2_security_profile") is True

    @property
    def is_public(self) -> bool:
        """A native or browser app with no credential (``token_endpoint_auth_method: none``)."""
        return self.client_metadata.get("token_endpoint_auth_method") == "none"

    @property
    def is_resource_server(self) -> bool:
        return self.client_metadata.get("resource_server") is True

    def get_allowed_scope(self, scope: str | None) -> str | None:
        requested = (scope or "").split()
        if "openid" not in requested:
            # Acting as itself: only its own API scopes; all of them if it names none.
            return " ".join(s for s in requested if s in self.api_scopes) or (
                " ".join(self.api_scopes) if not requested else ""
            )
        registered = set(self.registered_scopes)
        # Scopes outside the registration are dropped (the token response shows what was granted).
        return " ".join(dict.fromkeys(s for s in requested if s in registered))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact string match, nothing looser

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_secret(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.client_metadata.get("token_endpoint_auth_method")

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.client_metadata.get("response_types", ["code"])

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.client_metadata.get("grant_types", [])
