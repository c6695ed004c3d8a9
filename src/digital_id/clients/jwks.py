"""The public keys an agency signs its client assertions and request objects with, and the
one we encrypt its ID tokens and UserInfo answers to: registered inline (``jwks``) or
published at its ``jwks_uri``, fetched and cached.

Anyone can send an assertion naming any ``kid``, before anything about it is verified, so a
``kid`` the cached set lacks must not become a fetch each time: the ``jwks_uri`` is fetched
again (the agency may have rotated its keys) at most once per client per refetch interval,
and a ``kid`` still missing after a fetch is remembered as unknown until the cached set
expires. Every fetch goes through ``digital_id.outbound`` (deadline, size cap, address
check)."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Final

from joserfc.errors import JoseError
from joserfc.jwk import GuestProtocol, Key, KeySet

from digital_id.outbound import Outbound, OutboundError

# Asymmetric algorithms only: an HMAC "signed" with a public key proves nothing.
ASSERTION_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})  # fmt: skip
# What we encrypt ID tokens and UserInfo answers with (oidc.encryption). Key management:
# RSA-OAEP-256 for RSA keys, ECDH-ES (direct, or wrapping a key) for EC keys; never RSA1_5
# (RFC 8725 section 3.2). Content: AES-256-GCM.
ENCRYPTION_ALGORITHMS: Final = ("RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A256KW")
CONTENT_ENCRYPTION: Final = ("A256GCM",)
# Enough for any honest rotation; an attacker cycling kids only refills a bounded set.
MAX_UNKNOWN_KIDS: Final = 64


class ClientKeysUnavailableError(Exception):
    """The agency's keys could not be fetched, are not a JWK Set, or lack the named key."""


@dataclass
class _Published:
    expires: float
    keys: KeySet
    unknown_kids: set[str] = field(default_factory=set)


class ClientKeyResolver:
    """Process-wide and bounded; entries expire, so nothing correct depends on this cache."""

    def __init__(
        self,
        outbound: Outbound,
        *,
        ttl_seconds: float = 300,
        refetch_seconds: float = 60,
        max_entries: int = 1024,
    ) -> None:
        self._outbound = outbound
        self._ttl = ttl_seconds
        self._refetch = refetch_seconds
        self._max_entries = max_entries
        self._cache: OrderedDict[str, _Published] = OrderedDict()
        self._last_fetch: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def resolver(
        self,
        client_id: str,
        registration: dict[str, Any],
        *,
        algorithms: Collection[str] = ASSERTION_ALGORITHMS,
    ) -> Callable[[GuestProtocol], KeySet]:
        """A joserfc key callback for JWTs the client signs with one of ``algorithms``."""

        def resolve(token: GuestProtocol) -> KeySet:
            header = token.headers()
            if header.get("alg") not in algorithms:
                raise ClientKeysUnavailableError(
                    f"the JWT must be signed with {', '.join(sorted(algorithms))}"
                )
            kid = header.get("kid")
            keys = self._key_set(client_id, registration, kid if isinstance(kid, str) else None)
            if kid is None and len(keys.keys) > 1:
                # OpenID Connect Core 10.1: with several keys, the JWT must say which.
                raise ClientKeysUnavailableError("the client has several keys; name one (kid)")
            return keys

        return resolve

    def encryption_key(self, client_id: str, registration: dict[str, Any], alg: str) -> Key:
        """The client's public key to encrypt to with ``alg``: the first of its registered or
        published keys meant for encryption (``use`` absent or ``enc``) of the algorithm's
        type, and not marked for another algorithm."""
        key = encryption_key_in(self._key_set(client_id, registration, None), alg)
        if key is None:
            raise ClientKeysUnavailableError(f"the client has no key to encrypt to with {alg}")
        return key

    def _key_set(self, client_id: str, registration: dict[str, Any], kid: str | None) -> KeySet:
        """The client's registered ``jwks``, or its published set (fetched for ``kid``)."""
        if registration.get("jwks") is not None:
            return KeySet.import_key_set(registration["jwks"])
        uri = registration.get("jwks_uri")
        if not uri:
            raise ClientKeysUnavailableError("the client registered no keys")
        return self._published(client_id, uri, kid)

    def _published(self, client_id: str, uri: str, kid: str | None) -> KeySet:
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(uri)
            if entry is not None and entry.expires < now:
                entry = None
            if entry is not None and (kid is None or _holds(entry.keys, kid)):
                return entry.keys
            if entry is not None and kid in entry.unknown_kids:
                raise ClientKeysUnavailableError("the client's JWK Set has no key with this kid")
            last = self._last_fetch.get(client_id)
            if last is not None and now - last < self._refetch:
                raise ClientKeysUnavailableError(
                    "the client's JWK Set was fetched moments ago and has no key with this kid"
                    if entry is not None
                    else "the client's jwks_uri could not be fetched; try again later"
                )
            # Claimed before fetching, so parallel requests naming new kids fetch once.
            self._last_fetch[client_id] = now
            self._last_fetch.move_to_end(client_id)
            while len(self._last_fetch) > self._max_entries:
                self._last_fetch.popitem(last=False)
        keys = self._fetch(uri)
        with self._lock:
            fetched = _Published(time.monotonic() + self._ttl, keys)
            previous = self._cache.get(uri)
            if kid is not None and not _holds(keys, kid):
                if previous is not None and previous.keys.as_dict() == keys.as_dict():
                    fetched.unknown_kids = previous.unknown_kids
                if len(fetched.unknown_kids) < MAX_UNKNOWN_KIDS:
                    fetched.unknown_kids.add(kid)
            self._cache[uri] = fetched
            self._cache.move_to_end(uri)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return keys

    def _fetch(self, uri: str) -> KeySet:
        try:
            answer = self._outbound.get(uri)
            if answer.status != 200:
                raise ClientKeysUnavailableError(
                    f"could not fetch the client's jwks_uri: HTTP {answer.status}"
                )
            return KeySet.import_key_set(json.loads(answer.body))
        except OutboundError as exc:
            raise ClientKeysUnavailableError(
                f"could not fetch the client's jwks_uri: {exc}"
            ) from None
        except (ValueError, JoseError, KeyError, TypeError) as exc:
            raise ClientKeysUnavailableError(
                f"the client's jwks_uri is not a JWK Set ({exc.__class__.__name__})"
            ) from None


def encryption_key_in(keys: KeySet, alg: str) -> Key | None:
    """The first key of ``keys`` an agency offers for encryption with ``alg``, if any."""
    kty = "RSA" if alg.startswith("RSA") else "EC"
    for key in keys.keys:
        member = key.as_dict(private=False)
        if (
            member.get("kty") == kty
            and member.get("use", "enc") == "enc"
            and member.get("alg", alg) == alg
        ):
            return key
    return None


def _holds(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)
