"""How the agency proves who it is at Digital ID's token endpoint: ``private_key_jwt``.

RFC 7523 section 2.2 and OpenID Connect Core 1.0 section 9: instead of a shared secret the
client sends ``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``
and ``client_assertion``, a JWT it signed with its private key, which the provider verifies
with the public key registered in the client's ``jwks``.

authlib's :class:`~authlib.oauth2.rfc7523.PrivateKeyJWT` builds that JWT. This subclass fixes
three of its defaults to what Digital ID accepts; everything else is authlib's.
"""

from __future__ import annotations

from typing import Any, Final

from authlib.oauth2.rfc7523 import (  # type: ignore[import-untyped,unused-ignore]
    PrivateKeyJWT,
    private_key_jwt_sign,
)

# Digital ID refuses assertions whose exp is more than five minutes ahead; one minute leaves
# room for clock skew in both directions. (authlib's default is one hour.)
ASSERTION_LIFETIME_SECONDS: Final = 60


class ClientAssertion(PrivateKeyJWT):  # type: ignore[misc]  # authlib has no type hints
    """``private_key_jwt`` with the claims Digital ID checks.

    The assertion carries ``iss`` = ``sub`` = the client_id, ``aud`` = the issuer identifier,
    ``iat``, ``exp`` = ``iat`` + 60 s and a fresh random ``jti`` (authlib draws a new one for
    every call), signed with the agency's key and naming it in the ``kid`` header.

    ``aud`` is the issuer rather than the token endpoint URL (authlib's default): RFC 7523
    allows either, and the issuer is the one value that cannot be mistaken for another
    server's endpoint (the audience advice of draft-ietf-oauth-rfc7523bis and FAPI 2.0).
    authlib passes the constructor's ``token_endpoint`` through as the audience, so that is
    where the issuer goes.

    authlib reads the private key from ``client_secret``, as its documentation shows for
    ``private_key_jwt``; the registry in ``app.py`` passes the joserfc key there.
    """

    name = "private_key_jwt"

    def __init__(self, *, audience: str, alg: str, kid: str) -> None:
        super().__init__(token_endpoint=audience, alg=alg)
        self.kid = kid

    def sign(self, auth: Any, token_endpoint: str) -> str:
        # A new header dict every time: authlib writes "alg" into the one it is given. No
        # ``claims`` either: authlib stores the jti in a shared claims dict, which would make
        # every later assertion reuse it, and Digital ID rejects a jti it has seen.
        assertion: str = private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            header={"kid": self.kid},
            expires_in=ASSERTION_LIFETIME_SECONDS,
        )
        return assertion
