"""Client authentication at the token, revocation and introspection endpoints:
private_key_jwt (RFC 7523) with its seen-``jti`` cache, and the rate limits around every
method (client_secret_basic and client_secret_post are authlib's own)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from sqlalchemy import bindparam
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from digital_id.clients.jwks import ASSERTION_ALGORITHMS, ClientKeysUnavailableError
from digital_id.db.engine import dialect_insert
from digital_id.db.purge import purge_expired
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.constants import ASSERTION_LEEWAY, MAX_ASSERTION_LIFETIME
from digital_id.oidc.context import OnServer, ProviderContext
from digital_id.oidc.errors import SlowDownError
from digital_id.oidc.jwt_policy import UnacceptableJwtError, check_jwt
from digital_id.oidc.models import SeenClientAssertion
from digital_id.throttle.limiter import RateLimitedError


class PrivateKeyJwt(OnServer, JWTBearerClientAssertion):  # type: ignore[misc]
    """private_key_jwt (RFC 7523 section 2.2, OpenID Connect Core 9): an assertion signed
    with a key the client published, for the issuer alone, used once."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: Any) -> None:
        super().__init__(validate_jti=True, leeway=ASSERTION_LEEWAY)
        self.server = server

    def get_audiences(self) -> list[str]:
        """The issuer identifier alone (draft-ietf-oauth-rfc7523bis, FAPI 2.0): an assertion
        made out to an endpoint URL could have been obtained by another server that
        advertised our endpoint as its own, and replayed here."""
        return [self.context.settings.issuer]

    def resolve_client_public_key(self, client: AgencyClient) -> Any:
        return self.context.client_keys.resolver(
            client.client_id,
            client.client_metadata,
            algorithms=client.assertion_algorithms("token_endpoint_auth_signing_alg"),
        )

    def extract_assertion(self, assertion: str) -> Any:
        # Before authlib reads anything from it (it looks the client up by ``sub`` first).
        try:
            check_jwt(assertion, algorithms=ASSERTION_ALGORITHMS, require_kid=False)
        except UnacceptableJwtError as exc:
            raise InvalidClientError(description=str(exc)) from None
        return super().extract_assertion(assertion)

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            return super().process_assertion_claims(assertion, resolve_key)
        except ClientKeysUnavailableError as exc:
            raise InvalidClientError(description=str(exc)) from None

    def verify_claims(self, claims: Any) -> None:
        if claims.get("aud") not in (self.context.settings.issuer, [self.context.settings.issuer]):
            raise InvalidClientError(
                description="the assertion's aud must be the issuer identifier, and only it"
            )
        exp = claims.get("exp")
        if (
            isinstance(exp, int | float)
            and exp > time.time() + MAX_ASSERTION_LIFETIME + self.leeway
        ):
            raise InvalidClientError(
                description=f"the assertion's exp is more than {MAX_ASSERTION_LIFETIME} seconds ahead"
            )
        super().verify_claims(claims)

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        """Remember the ``jti`` until the assertion expires; a second use anywhere fails."""
        session = self.context.session
        # authlib found the client by ``sub`` before it verified the assertion: no new read.
        client = self.server.query_client(claims["sub"])
        if client is None or not isinstance(jti, str) or len(jti) > 256:
            return False
        expires_at = datetime.fromtimestamp(
            float(claims["exp"]) + self.leeway, tz=self.context.now.tzinfo
        )
        # One statement: the row, unless this client's jti is there already (a replay).
        remembered = session.execute(
            _remember_jti(session.get_bind().dialect.name),
            {"client_id": client.pk, "jti": jti, "expires_at": expires_at},
        ).first()
        if remembered is None:
            return False
        # The one early commit of a grant, named as such: the seen jti must stick whatever
        # the grant does next (a replay of an assertion whose grant failed fails too).
        # Authentication is the grant's first step, so nothing else is in the transaction.
        session.commit()
        return True


def authenticate_within_limits(
    context: ProviderContext, authenticate: Callable[[], AgencyClient], endpoint: str
) -> AgencyClient:
    """``authenticate`` (authlib's client authentication), with the rate limits around it.

    Both limits here are counted in this process's memory and synchronised with the fleet
    in the background (``digital_id.throttle.fleet``): neither costs a statement.

    An address whose failed client authentications (at the token, revocation and
    introspection endpoints alike) spent its window is refused before any authentication
    work: no assertion is parsed, no agency key set fetched, no secret hashed.

    A client's token budget is charged only once it has authenticated: charged to the
    client id a request merely claims, anyone could spend an agency's budget and lock it
    out. Charged before the grant's work, a refused grant still spends it."""
    limiter, limits = context.rate_limiter, context.limits
    if limiter is None or limits is None:
        return authenticate()
    failures = limits.client_auth_failure(context.events.ip)
    try:
        limiter.refuse_remembered([failures], now=context.now)
        try:
            client = authenticate()
        except InvalidClientError:
            limiter.count([failures], now=context.now)
            raise
        if endpoint in _BUDGETED_ENDPOINTS:
            limiter.count([(limits.token_per_client, client.client_id)], now=context.now)
    except RateLimitedError as refused:
        raise SlowDownError(refused.retry_after) from None
    return client


# The endpoints whose successful calls spend the client's budget: each issues a token, or
# keeps a pushed authorization request, at the client's will.
_BUDGETED_ENDPOINTS = frozenset({"token", "pushed_authorization"})


def purge_seen_assertions(session: Session, now: datetime) -> int:
    """Delete up to a batch of remembered assertion ids whose assertions have expired (the
    housekeeping job runs it, not the request presenting an assertion); how many went."""
    return purge_expired(session, SeenClientAssertion, SeenClientAssertion.expires_at < now)


@cache
def _remember_jti(dialect: str) -> ReturningInsert[tuple[int]]:
    """Built once per process (building it cost a tenth of a private_key_jwt request)."""
    insert = dialect_insert(dialect)
    return (
        insert(SeenClientAssertion)
        .values(
            client_id=bindparam("client_id"),
            jti=bindparam("jti"),
            expires_at=bindparam("expires_at"),
        )
        .on_conflict_do_nothing(index_elements=["client_id", "jti"])
        .returning(SeenClientAssertion.id)
    )
