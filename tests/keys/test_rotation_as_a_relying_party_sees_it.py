"""A full generate → rotate → prune cycle, seen by a relying party that caches the JWKS.

The relying party does what certified libraries do: it caches the key set for the
``max-age`` the endpoint sends and re-fetches once when a token names a ``kid`` it does not
have. Every token, signed before, during and after the cycle, must verify.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from digital_id.app import create_app
from digital_id.config import load_settings
from tests.conftest import TEST_PASSPHRASE


class CachingRelyingParty:
    def __init__(self, client: TestClient, clock) -> None:
        self.client = client
        self.clock = clock
        self.keys: KeySet | None = None
        self.expires: datetime | None = None
        self.fetches = 0

    def _fetch(self) -> None:
        response = self.client.get("/jwks")
        max_age = int(response.headers["cache-control"].split("max-age=")[1])
        self.keys = KeySet.import_key_set(response.json())
        self.expires = self.clock() + timedelta(seconds=max_age)
        self.fetches += 1

    def verify(self, token: str) -> dict:
        if self.keys is None or self.clock() >= self.expires:
            self._fetch()
        kid = jws.extract_compact(token.encode()).headers()["kid"]
        if not any(key.kid == kid for key in self.keys):
            self._fetch()  # once, on an unknown kid
        return jwt.decode(token, self.keys, algorithms=["RS256"]).claims


def test_tokens_signed_before_during_and_after_rotation_all_verify(
    database_url, keys_dir, key_store, clock
):
    cache_seconds = 3600
    settings = load_settings(
        database_url=database_url,
        keys_dir=keys_dir,
        keys_passphrase=TEST_PASSPHRASE,
        jwks_cache_seconds=cache_seconds,
        id_token_lifetime_seconds=3600,
    )
    grace = settings.key_grace_period
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")  # access tokens

    with TestClient(create_app(settings)) as client:
        ring = client.app.state.key_ring
        ring.check_interval = 0
        relying_party = CachingRelyingParty(client, clock)
        issued: list[str] = []
        failures: list[str] = []

        def sign_and_verify(step: str) -> None:
            token = ring.current().sign({"step": step, "iat": int(clock().timestamp())})
            issued.append(token)
            # A token is checked when issued, and every older token still within its lifetime.
            for earlier in issued[-4:]:
                try:
                    relying_party.verify(earlier)
                except Exception as exc:
                    failures.append(f"{step}: {exc!r}")

        sign_and_verify("before")
        key_store.generate("RS256", size=2048)  # published as next
        sign_and_verify("next published")
        clock.advance(seconds=cache_seconds)  # every cache has had the chance to fetch it
        sign_and_verify("cache expired")
        key_store.rotate("RS256", min_published=settings.jwks_cache_lifetime)
        sign_and_verify(
            "just rotated"
        )  # the relying party's cache is fresh: re-fetch on unknown kid
        clock.advance(minutes=30)
        sign_and_verify("half an hour after")
        clock.advance(seconds=grace.total_seconds())
        assert len(key_store.prune(grace)) == 1
        clock.advance(seconds=cache_seconds)
        issued[:] = issued[-1:]  # tokens older than their lifetime are no longer presented
        sign_and_verify("after prune")

    assert failures == []
    assert len(issued) == 2
    assert relying_party.fetches >= 3
