"""Recognising a token presented back to us, and whether it is still live.

Shared by UserInfo, revocation (RFC 7009) and introspection (RFC 7662): an access token is
one of our RFC 9068 JWTs (its ``jti`` names its grant, or marks a client-credentials token);
a refresh token is looked up by its hash. A token is live only while everything behind it
is: the grant, the browser session it came from, the citizen's consent, the agency, the
citizen's register record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.accounts.grant_standing import grant_standing, presented_refresh_standing
from digital_id.clients.models import Client
from digital_id.grants.models import AuthorizationGrant
from digital_id.grants.revocation import access_token_revoked
from digital_id.keys.store import KeySnapshot
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.constants import ACCESS_TOKEN_ALGORITHMS, CLIENT_TOKEN_PREFIX
from digital_id.oidc.context import OnServer
from digital_id.oidc.errors import InvalidAccessTokenError
from digital_id.oidc.jwt_policy import check_jwt


def decode_access_token(
    token: str,
    *,
    keys: KeySnapshot,
    issuer: str,
    now: datetime,
    allow_expired: bool = False,
    resource: str | None = None,
) -> dict[str, Any]:
    """The claims of a genuine access token of ours, or InvalidAccessTokenError.
    ``resource``: the endpoint asking (UserInfo), which takes a token made out to it or to
    the client itself (RFC 9068 section 4, RFC 8707); without it any audience of ours passes
    (introspection then asks whether the asker may see the token)."""
    try:
        check_jwt(token, algorithms=ACCESS_TOKEN_ALGORITHMS)
        decoded = jwt.decode(token, keys.verification_keys(), algorithms=ACCESS_TOKEN_ALGORITHMS)
        if str(decoded.header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise InvalidAccessTokenError("not an access token (typ)")
        rules: dict[str, Any] = {
            "iss": {"essential": True, "value": issuer},
            "sub": {"essential": True},
            "client_id": {"essential": True},
            "jti": {"essential": True},
        }
        claims = dict(decoded.claims)
        rules["aud"] = (
            {"essential": True, "values": [str(claims.get("client_id")), resource]}
            if resource is not None
            else {"essential": True}
        )
        if not isinstance(claims.get("exp"), int):
            raise InvalidAccessTokenError("no exp")
        if allow_expired:
            del claims["exp"]  # the caller judges expiry itself
        jwt.JWTClaimsRegistry(now=int(now.timestamp()), **rules).validate(claims)
    except (JoseError, ValueError) as exc:
        raise InvalidAccessTokenError(f"token rejected: {exc.__class__.__name__}") from None
    return decoded.claims


@dataclass
class PresentedToken:
    """A token of ours, as authlib's revocation and introspection endpoints ask about it."""

    kind: str  # "access_token" or "refresh_token"
    client: Client
    grant: AuthorizationGrant | None
    claims: dict[str, Any]
    expires_at: datetime
    live: bool
    checked_at: datetime

    def check_client(self, client: Any) -> bool:
        return bool(client.pk == self.client.id)

    def get_scope(self) -> str:
        return str(self.claims.get("scope") or (self.grant.scope if self.grant else ""))

    def is_expired(self) -> bool:
        return self.checked_at >= self.expires_at

    def is_revoked(self) -> bool:
        return not self.live


def grant_public_id(claims: dict[str, Any]) -> str | None:
    """The public id of the grant an access token's ``jti`` names; None for a client's own."""
    prefix = str(claims["jti"]).split(".", 1)[0]
    return None if prefix == CLIENT_TOKEN_PREFIX else prefix


def find_token(
    session: Session,
    token: str,
    *,
    keys: KeySnapshot,
    issuer: str,
    now: datetime,
) -> PresentedToken | None:
    """Any token of ours, live or not; None when it is not ours at all."""
    if token.count(".") == 2:
        return _access_token(session, token, keys=keys, issuer=issuer, now=now)
    return _refresh_token(session, token, now)


def _access_token(
    session: Session, token: str, *, keys: KeySnapshot, issuer: str, now: datetime
) -> PresentedToken | None:
    try:
        claims = decode_access_token(token, keys=keys, issuer=issuer, now=now, allow_expired=True)
    except InvalidAccessTokenError:
        return None
    expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=now.tzinfo)
    if str(claims["jti"]).startswith(CLIENT_TOKEN_PREFIX + "."):
        client = session.scalars(
            select(Client).where(Client.client_id == claims["client_id"])
        ).one_or_none()
        if client is None or not _audience_fits(claims, client, issuer):
            return None
        live = client.enabled and not access_token_revoked(session, claims["jti"])
        return PresentedToken("access_token", client, None, claims, expires_at, live, now)
    # The grant, its agency and the rule's facts in one statement (accounts.grant_standing).
    public_id = grant_public_id(claims)
    found = grant_standing(session, public_id, now=now) if public_id is not None else None
    if (
        found is None
        or found.client.client_id != claims["client_id"]
        or not _audience_fits(claims, found.client, issuer)
    ):
        return None
    live = found.problem is None
    return PresentedToken("access_token", found.client, found.grant, claims, expires_at, live, now)


def _audience_fits(claims: dict[str, Any], client: Client, issuer: str) -> bool:
    """Whether the token's ``aud`` is one we make this client's tokens out to: the client
    itself, our UserInfo endpoint, or an API its registration may ask for (RFC 8707). A
    token of ours with any other audience was not issued by this server's rules."""
    allowed = {
        client.client_id,
        issuer.rstrip("/") + "/userinfo",
        *AgencyClient(client).resources,
    }
    return claims.get("aud") in allowed


def _refresh_token(session: Session, token: str, now: datetime) -> PresentedToken | None:
    presented = presented_refresh_standing(session, token, now=now)
    if presented is None:
        return None
    row, found = presented
    grant, client = found.grant, found.client
    ends = min(row.idle_until, grant.offline_until) if grant.offline_until else row.idle_until
    live = found.problem is None and row.generation == grant.refresh_generation
    claims = {"scope": grant.scope, "client_id": client.client_id, "sub": None}
    return PresentedToken("refresh_token", client, grant, claims, ends, live, now)


class FindsTokens(OnServer):
    """Revocation and introspection look a presented token up the same way."""

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken | None:
        context = self.context
        return find_token(
            context.session,
            token_string,
            keys=context.keys,
            issuer=context.settings.issuer,
            now=context.now,
        )
