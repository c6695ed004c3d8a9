"""Receiving Digital ID's back-channel logouts: OpenID Connect Back-Channel Logout 1.0.

When a citizen's Digital ID session ends (they logged out at any agency, or at Digital ID
itself), Digital ID POSTs ``logout_token=<JWT>`` to each agency the session logged in to.
This module is the protocol half, with no web framework in it: :func:`verify_logout_token`
makes the checks of section 2.6, :class:`SeenTokenIds` refuses a replayed token, and
:class:`EndedSessions` remembers which Digital ID sessions have ended so the web app can
treat a browser that still carries one as logged out (section 2.7).

Both stores live in this process's memory, bounded in size and time. That is enough for a
demo running as one process; an agency running several workers keeps them where every
worker sees them (its database or a cache), or a logout received by one worker would not
end the session in the others, and a token replayed to another worker would be accepted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

BACKCHANNEL_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
# Section 2.4 and RFC 8725 section 3.11: explicit typing, so that no other kind of JWT the
# provider signs (an ID token, say) can be passed off as a logout token.
LOGOUT_TOKEN_TYPES: Final = ("logout+jwt", "application/logout+jwt")
# Asymmetric algorithms only: the provider signs logout tokens with the key it signs this
# agency's ID tokens with (id_token_signed_response_alg, RS256 unless registered otherwise).
SIGNING_ALGORITHMS: Final = ("RS256", "PS256", "ES256")
# Clock skew allowed on exp and iat, as for ID tokens (authlib's default leeway).
LEEWAY_SECONDS: Final = 120


class InvalidLogoutTokenError(Exception):
    """Section 2.8: a logout token that fails a check is answered 400 ``invalid_request``."""

    error = "invalid_request"
    status_code = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class UnknownSigningKeyError(InvalidLogoutTokenError):
    """The token names a ``kid`` the cached JWKS lacks: the provider may have rotated keys."""


@dataclass(frozen=True)
class LogoutToken:
    """The verified claims that matter here: which session (``sid``) or subject (``sub``)
    ended, and the token's id and expiry for replay detection."""

    jti: str
    exp: float
    sid: str | None
    sub: str | None


def verify_logout_token(
    token: str,
    keys: KeySet,
    *,
    issuer: str,
    client_id: str,
    algorithms: Collection[str],
    now: int,
) -> LogoutToken:
    """The checks of Back-Channel Logout 1.0, section 2.6, except replay (see
    :class:`SeenTokenIds`), or :class:`InvalidLogoutTokenError` naming the failed one.

    1. The signature, with an algorithm the provider uses for ID tokens, against its JWKS.
    2. ``iss`` is the configured issuer, ``aud`` contains our client_id, ``iat`` is present,
       ``exp`` has not passed (with the ID token leeway), as for ID tokens.
    3. ``events`` holds the back-channel logout member, whose value is a JSON object.
    4. ``sid``, ``sub`` or both are present; there is no ``nonce`` (which keeps an ID token
       from passing as a logout token); ``typ``, when present, is ``logout+jwt``.
    """
    try:
        decoded = jwt.decode(token, keys, algorithms=list(algorithms))
    except InvalidKeyIdError:
        raise UnknownSigningKeyError("the token is signed with a key the JWKS lacks") from None
    except JoseError as exc:
        raise InvalidLogoutTokenError(
            f"the token is not a JWT signed by the provider ({exc.error})"
        ) from None
    header: dict[str, Any] = dict(decoded.header)
    claims: dict[str, Any] = dict(decoded.claims)

    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in LOGOUT_TOKEN_TYPES):
        raise InvalidLogoutTokenError("the typ header is not logout+jwt")
    registry = jwt.JWTClaimsRegistry(
        now=now,
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise InvalidLogoutTokenError(f"claim check failed ({exc.description})") from None

    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
        raise InvalidLogoutTokenError(f"events has no {BACKCHANNEL_EVENT} member")
    sid, sub = claims.get("sid"), claims.get("sub")
    if sid is None and sub is None:
        raise InvalidLogoutTokenError("the token has neither sid nor sub")
    if not isinstance(sid, str | None) or not isinstance(sub, str | None) or "" in (sid, sub):
        raise InvalidLogoutTokenError("sid and sub must be non-empty strings")
    if "nonce" in claims:
        raise InvalidLogoutTokenError("a logout token must not contain a nonce")
    return LogoutToken(jti=claims["jti"], exp=float(claims["exp"]), sid=sid, sub=sub)


class SeenTokenIds:
    """The ``jti`` of each logout token accepted, kept until the token expires, so the same
    token is accepted once (section 2.6, step 10: "MAY").

    In memory and bounded: at most ``capacity`` ids, oldest forgotten first. Logout tokens
    live two minutes, so the bound is only reached by more than ``capacity`` logouts in that
    time; a token whose id was forgotten that way could then be replayed once more, which
    logs out a session that has already ended anyway.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._until: OrderedDict[str, float] = OrderedDict()

    def first_use(self, jti: str, *, until: float, now: float) -> bool:
        """Remember ``jti`` until ``until``; False when it is already remembered."""
        self._forget_expired(now)
        if jti in self._until:
            return False
        while len(self._until) >= self._capacity:
            self._until.popitem(last=False)
        self._until[jti] = until
        return True

    def __len__(self) -> int:
        return len(self._until)

    def _forget_expired(self, now: float) -> None:
        # Insertion order is nearly expiry order (every token lives as long); an id that
        # expires earlier than one before it is simply kept a little longer.
        while self._until and next(iter(self._until.values())) <= now:
            self._until.popitem(last=False)


class EndedSessions:
    """Digital ID sessions (``sid``) and subjects (``sub``) that have been logged out.

    Section 2.7: a token with a ``sid`` ends the login made in that Digital ID session; one
    with only a ``sub`` ends every login of that citizen made before it arrived.

    In memory and bounded: an entry is kept for ``retention`` seconds (the app's absolute
    login lifetime, after which the login it would end has expired anyway) and at most
    ``capacity`` of each kind, oldest forgotten first.
    """

    def __init__(self, *, retention: float, capacity: int = 10_000) -> None:
        self._retention = retention
        self._capacity = capacity
        self._sids: OrderedDict[str, float] = OrderedDict()
        self._subs: OrderedDict[str, float] = OrderedDict()

    def end(self, token: LogoutToken, *, now: float) -> None:
        if token.sid is not None:
            self._remember(self._sids, token.sid, now)
        elif token.sub is not None:
            self._remember(self._subs, token.sub, now)

    def has_ended(self, *, sid: object, sub: object, logged_in_at: float, now: float) -> bool:
        """Whether a login made at ``logged_in_at`` in Digital ID session ``sid`` for
        subject ``sub`` has been logged out."""
        for store in (self._sids, self._subs):
            self._forget_expired(store, now)
        if isinstance(sid, str) and sid in self._sids:
            return True
        return isinstance(sub, str) and self._subs.get(sub, -1.0) >= logged_in_at

    def ended_sids(self) -> set[str]:
        return set(self._sids)

    def _remember(self, store: OrderedDict[str, float], key: str, now: float) -> None:
        self._forget_expired(store, now)
        store.pop(key, None)
        while len(store) >= self._capacity:
            store.popitem(last=False)
        store[key] = now

    def _forget_expired(self, store: OrderedDict[str, float], now: float) -> None:
        while store and next(iter(store.values())) <= now - self._retention:
            store.popitem(last=False)


class RefetchLimit:
    """At most one forced JWKS refetch per ``interval`` seconds.

    The back-channel endpoint is open to anyone: without a limit, tokens naming made-up
    ``kid`` values would make this app fetch the provider's JWKS once per request.
    """

    def __init__(self, interval: float = 60.0) -> None:
        self._interval = interval
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True
