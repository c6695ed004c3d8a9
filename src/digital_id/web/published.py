"""Discovery and the JWK Set: documents rendered once per process as bytes with an ETag, and
answered ``304 Not Modified`` to a client that already holds them (RFC 9110 section 13.1.2).

Discovery never changes while the process runs. The JWK Set changes only with the keys: it is
rendered again when the key ring hands out a new snapshot (``keys.ring.KeyRing``, which looks
at the store at most every few seconds). Both routes are async and answer from memory; only a
due look at the key store, which may decrypt keys with scrypt, goes to a thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from digital_id.config import Settings
from digital_id.keys.ring import KeyRing
from digital_id.keys.store import KeySnapshot
from digital_id.oidc.discovery import provider_metadata_json
from digital_id.web import apidoc

JWK_SET_MEDIA_TYPE: Final = "application/jwk-set+json"
_NOT_MODIFIED: Final[apidoc.Responses] = {
    304: {"description": "The client's copy (`If-None-Match`) is current."}
}


class FromMemoryRoute(APIRoute):
    """A route whose endpoint takes the request alone and returns a finished Response: it is
    called as it is, without FastAPI's dependency solving and response handling, which cost
    more than these answers themselves (FastAPI's documented way to customise a route is to
    override ``get_route_handler``). It is documented in the OpenAPI document like any route."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


router = APIRouter(tags=["openid-connect"], route_class=FromMemoryRoute)


class JwkSetResponse(JSONResponse):
    """RFC 7517 section 8.5.1's media type, so the OpenAPI document names it too."""

    media_type = JWK_SET_MEDIA_TYPE


@dataclass(frozen=True)
class Rendered:
    """A document's bytes and their strong validator."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        return cls(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')

    def matches(self, if_none_match: str | None) -> bool:
        """RFC 9110 section 13.1.2: ``*`` or any listed tag, compared weakly (a ``W/`` prefix
        is ignored). Written here because Starlette keeps its own check inside StaticFiles."""
        if not if_none_match:
            return False
        if if_none_match.strip() == "*":
            return True
        return any(tag.strip().removeprefix("W/") == self.etag for tag in if_none_match.split(","))


class PublishedDocuments:
    """The two documents of one process, kept on ``app.state.published``."""

    def __init__(self, settings: Settings, key_ring: KeyRing) -> None:
        self.key_ring = key_ring
        self.cache_control = f"public, max-age={settings.jwks_cache_seconds}"
        self.discovery = Rendered.of(
            provider_metadata_json(
                settings.issuer, access_token_algorithm=settings.access_token_algorithm
            )
        )
        self._snapshot: KeySnapshot | None = None
        self._jwks: Rendered | None = None

    async def jwks(self) -> Rendered:
        snapshot = self.key_ring.fresh()
        if snapshot is None:
            snapshot = await run_in_threadpool(self.key_ring.current)
        if snapshot is not self._snapshot or self._jwks is None:
            # Rendered on the event loop, so two requests never render one snapshot twice.
            self._jwks = Rendered.of(snapshot.public_jwks_json)
            self._snapshot = snapshot
        return self._jwks

    def respond(self, request: Request, document: Rendered, media_type: str) -> Response:
        headers = {"Cache-Control": self.cache_control, "ETag": document.etag}
        if document.matches(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        return Response(document.body, media_type=media_type, headers=headers)


def _published(request: Request) -> PublishedDocuments:
    published: PublishedDocuments = request.app.state.published
    return published


@router.get(
    "/.well-known/openid-configuration",
    summary="OpenID Provider metadata (OpenID Connect Discovery 1.0).",
    response_model=apidoc.ProviderMetadata,
    responses=_NOT_MODIFIED,
)
async def discovery(request: Request) -> Response:
    published = _published(request)
    return published.respond(request, published.discovery, "application/json")


@router.get(
    "/jwks",
    summary="The published signing keys (RFC 7517 JWK Set): next, active and retired.",
    response_class=JwkSetResponse,
    response_model=apidoc.JsonWebKeySet,
    responses=_NOT_MODIFIED,
)
async def jwks(request: Request) -> Response:
    published = _published(request)
    return published.respond(request, await published.jwks(), JWK_SET_MEDIA_TYPE)
