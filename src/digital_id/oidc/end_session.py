"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) on authlib's
``EndSessionEndpoint``: the id_token_hint and the exact post_logout_redirect_uri checks are
authlib's; ending the browser's session is the web layer's, through ``sessions.ending``.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oidc.rpinitiated import EndSessionEndpoint
from joserfc.jwk import KeySet

from digital_id.keys.store import ALGORITHMS as ID_TOKEN_ALGORITHMS
from digital_id.oidc.context import OnServer
from digital_id.oidc.jwt_policy import UnacceptableJwtError, check_jwt

# Claims that only our other JWTs carry: an access token (RFC 9068), a logout token, a
# consent receipt. A JWT holding one is not an ID token, whatever else it says.
_NOT_ID_TOKEN_CLAIMS = frozenset({"client_id", "scope", "events", "decision", "agency"})


class EndSession(OnServer, EndSessionEndpoint):  # type: ignore[misc]
    """RP-initiated logout: authlib checks the hint's signature and the redirect URI; we add
    that the hint is an ID token we issued to a registered agency for a browser session.

    Every JWT we sign verifies against the same keys: a ``client_credentials`` access token,
    or a consent receipt any citizen can download, would otherwise pass as a hint and log a
    browser out unasked. So the hint must be an ID token (header ``typ`` JWT, none of the
    other kinds' claims), its ``aud`` a registered agency, and it must name a ``sid``; the
    web layer then ends the browser's session only if that ``sid`` is the session's own."""

    def get_server_jwks(self) -> KeySet:
        return self.context.keys.verification_keys()

    def get_algorithms(self) -> list[str]:
        return list(ID_TOKEN_ALGORITHMS)

    def validate_request(self, request: Any) -> Any:
        hint = request.payload.data.get("id_token_hint")
        header: dict[str, Any] = {}
        if hint:
            try:
                header = check_jwt(hint, algorithms=ID_TOKEN_ALGORITHMS)
            except UnacceptableJwtError as exc:
                raise InvalidRequestError(f"id_token_hint: {exc}") from None
        validated = super().validate_request(request)
        claims = validated.id_token_claims
        if claims is not None:
            if claims.get("iss") != self.context.settings.issuer:
                raise InvalidRequestError("the id_token_hint was not issued here")
            if not self._is_id_token(header, claims):
                raise InvalidRequestError("the id_token_hint is not an ID token for a session")
        return validated

    def _is_id_token(self, header: dict[str, Any], claims: dict[str, Any]) -> bool:
        aud = claims.get("aud")
        return (
            str(header.get("typ", "JWT")).upper() == "JWT"
            and not _NOT_ID_TOKEN_CLAIMS & claims.keys()
            and isinstance(claims.get("sub"), str)
            and isinstance(claims.get("sid"), str)
            and isinstance(aud, str)
            and self.server.query_client(aud) is not None
        )

    def end_session(self, end_session_request: Any) -> None:
        """Ending the browser's session is the web layer's (it holds the cookie)."""
