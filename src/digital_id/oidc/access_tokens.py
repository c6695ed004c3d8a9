"""Access tokens as RFC 9068 JWTs, on authlib's generator; bound to a DPoP key when the
request proved one (RFC 9449)."""

from __future__ import annotations

import secrets
from typing import Any

from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet

from digital_id.config import Settings
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.code_grant import Subject
from digital_id.oidc.constants import CLIENT_TOKEN_PREFIX
from digital_id.oidc.context import OnServer


def _random_refresh_token(**_: Any) -> str:
    return secrets.token_urlsafe(32)


class AccessTokens(OnServer, JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 access tokens: no claim values, nothing written; the ``jti`` starts with the
    grant's public id so UserInfo can check that the grant is still live."""

    def __init__(self, server: Any, settings: Settings) -> None:
        super().__init__(
            issuer=settings.issuer,
            alg=settings.access_token_algorithm,
            expires_generator=settings.access_token_lifetime_seconds,
            refresh_token_generator=_random_refresh_token,
        )
        self.server = server

    def get_jwks(self) -> KeySet:
        return self.context.keys.signing_key_set(self.alg)

    def get_jti(
        self, client: AgencyClient, grant_type: str, user: Subject | None, scope: str
    ) -> str:
        owner = user.grant.public_id if user is not None else CLIENT_TOKEN_PREFIX
        return f"{owner}.{secrets.token_urlsafe(12)}"

    def get_extra_claims(
        self, client: AgencyClient, grant_type: str, user: Subject | None, scope: str
    ) -> dict[str, Any]:
        """``cnf.jkt`` (RFC 9449 section 6) when the request proved a key: the token is then
        good only with a proof signed by that key. ``act`` when a guardian acted for the
        citizen, a child."""
        jkt = self.context.issuing.jkt
        return {**(user.act if user is not None else {}), **({"cnf": {"jkt": jkt}} if jkt else {})}

    def generate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        token: dict[str, Any] = super().generate(*args, **kwargs)
        if self.context.issuing.jkt is not None:
            token["token_type"] = "DPoP"  # noqa: S105 (RFC 9449 section 5: a type name)
        return token

    def get_audiences(self, client: AgencyClient, user: Subject | None, scope: str) -> str:
        """The resource the token is for (RFC 8707), else the client itself (RFC 9068 4)."""
        return self.context.issuing.resource or client.client_id

    def get_auth_time(self, user: Subject | None) -> int | None:
        return int(user.grant.auth_time.timestamp()) if user is not None else None

    def get_acr(self, user: Subject | None) -> str | None:
        return user.grant.acr if user is not None else None
