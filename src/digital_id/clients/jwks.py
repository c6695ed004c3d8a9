"""The public keys an agency signs its client assertions with: registered inline (``jwks``)
or published at its ``jwks_uri``, fetched and cached, and fetched again once when an
assertion names a key the cached set does not hold (the agency rotated its keys)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import GuestProtocol, KeySet

# Asymmetric algorithms only: an HMAC "signed" with a public key proves nothing.
ASSERTION_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})  # fmt: skip
_MAX_JWKS_BYTES = 64 * 1024


class ClientKeysUnavailableError(Exception):
    """The agency's keys could not be fetched or are not a JWK Set."""


class ClientKeyResolver:
    """Process-wide and bounded; entries expire, so nothing correct depends on this cache."""

    def __init__(
        self, *, ttl_seconds: float = 300, max_entries: int = 1024, timeout: float = 5.0
    ) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._timeout = timeout
        self._cache: OrderedDict[str, tuple[float, KeySet]] = OrderedDict()
        self._lock = threading.Lock()

    def resolver(self, registration: dict[str, Any]) -> Callable[[GuestProtocol], KeySet]:
        """A joserfc key callback for assertions from the client with this registration."""

        def resolve(token: GuestProtocol) -> KeySet:
            header = token.headers()
            if header.get("alg") not in ASSERTION_ALGORITHMS:
                raise ClientKeysUnavailableError(
                    f"assertions must be signed with one of {', '.join(sorted(ASSERTION_ALGORITHMS))}"
                )
            kid = header.get("kid")
            if registration.get("jwks") is not None:
                keys = KeySet.import_key_set(registration["jwks"])
            else:
                uri = registration.get("jwks_uri")
                if not uri:
                    raise ClientKeysUnavailableError("the client registered no keys")
                cached = self._cached(uri)
                if cached is None or (kid is not None and not _holds(cached, kid)):
                    cached = self._fetch(uri)
                keys = cached
            if kid is None and len(keys.keys) > 1:
                # OpenID Connect Core 10.1: with several keys, the JWT must say which.
                raise ClientKeysUnavailableError("the client has several keys; name one (kid)")
            return keys

        return resolve

    def _cached(self, uri: str) -> KeySet | None:
        with self._lock:
            entry = self._cache.get(uri)
            if entry is None or entry[0] < time.monotonic():
                return None
            return entry[1]

    def _fetch(self, uri: str) -> KeySet:
        try:
            response = httpx.get(uri, timeout=self._timeout, follow_redirects=False)
            response.raise_for_status()
            if len(response.content) > _MAX_JWKS_BYTES:
                raise ClientKeysUnavailableError("the client's JWK Set is too large")
            keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError, KeyError, TypeError) as exc:
            raise ClientKeysUnavailableError(
                f"could not fetch the client's jwks_uri: {exc.__class__.__name__}"
            ) from None
        with self._lock:
            self._cache[uri] = (time.monotonic() + self._ttl, keys)
            self._cache.move_to_end(uri)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return keys


def _holds(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)
