"""Discovery and the JWK Set: documents rendered once per process as bytes with an ETag, and
answered ``304 Not Modified`` to a client that already holds them (RFC 9110 section 13.1.2).

Discovery never changes while the process runs. The JWK Set changes only with the keys: it is
rendered again when the key ring hands out a new snapshot (``keys.ring.KeyRing``, which looks
at the store at most every few seconds). Both routes are async and answer from memory; only a
due look at the key store, which may decrypt keys with scrypt, goes to a thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from digital_id.config import Settings
from digital_id.keys.ring import KeyRing
from digital_id.keys.store import KeySnapshot
from digital_id.oidc.discovery import provider_metadata_json
from digital_id.web import apidoc
from digital_id.web.routing import DirectRoute, request_header

JWK_SET_MEDIA_TYPE: Final = "application/jwk-set+json"
DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
JWKS_PATH: Final = "/jwks"
PUBLISHED_PATHS: Final = frozenset({DISCOVERY_PATH, JWKS_PATH})
_NOT_MODIFIED: Final[apidoc.Responses] = {
    304: {"description": "The client's copy (`If-None-Match`) is current."}
}


router = APIRouter(tags=["openid-connect"], route_class=DirectRoute)


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
        self._cache_control = f"public, max-age={settings.jwks_cache_seconds}".encode("ascii")
        self.discovery = Rendered.of(
            provider_metadata_json(
                settings.issuer,
                access_token_algorithm=settings.access_token_algorithm,
                require_pushed_requests=settings.require_pushed_authorization_requests,
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

    async def answer(self, path: str, if_none_match: str | None) -> Answer:
        """The answer to a GET of ``path``, one of ``PUBLISHED_PATHS``."""
        if path == DISCOVERY_PATH:
            document, media_type = self.discovery, "application/json"
        else:
            document, media_type = await self.jwks(), JWK_SET_MEDIA_TYPE
        headers = [
            (b"cache-control", self._cache_control),
            (b"etag", document.etag.encode("ascii")),
        ]
        if document.matches(if_none_match):
            return Answer(304, headers, b"")
        return Answer(
            200,
            [
                (b"content-length", str(len(document.body)).encode("ascii")),
                (b"content-type", media_type.encode("ascii")),
                *headers,
            ],
            document.body,
        )


@dataclass(frozen=True)
class Answer:
    """A finished HTTP answer, as ASGI sends it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def response(self) -> Response:
        response = Response(self.body, status_code=self.status)
        response.raw_headers = list(self.headers)
        return response

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class PublishedLane:
    """Answers a GET of discovery or the JWK Set from memory before FastAPI's routing, whose
    exception, dependency and routing layers cost several times the answer itself (the load
    benchmark's profiles: 0.19 ms of server CPU per request through the router). It sits
    innermost of our middleware, so the request id, the security headers, the metrics and the
    access log are the same as any route's. Every other request, and any other method on
    these paths (405 from the router), goes on to the application."""

    def __init__(self, app: ASGIApp, published: PublishedDocuments) -> None:
        self.app = app
        self.published = published
        # The routes themselves, so the telemetry names the same route template.
        self.routes = {
            route.path: route
            for route in router.routes
            if isinstance(route, APIRoute) and route.path in PUBLISHED_PATHS
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        answer = await self.published.answer(scope["path"], request_header(scope, b"if-none-match"))
        await answer.send(send)


async def _answer(request: Request) -> Response:
    """What the route answers to a request that reaches it: in the served application the
    lane answers first, and the routes are what the OpenAPI document is made from."""
    published: PublishedDocuments = request.app.state.published
    answer = await published.answer(request.url.path, request.headers.get("if-none-match"))
    return answer.response()


@router.get(
    DISCOVERY_PATH,
    summary="OpenID Provider metadata (OpenID Connect Discovery 1.0).",
    response_model=apidoc.ProviderMetadata,
    responses=_NOT_MODIFIED,
)
async def discovery(request: Request) -> Response:
    return await _answer(request)


@router.get(
    JWKS_PATH,
    summary="The published signing keys (RFC 7517 JWK Set): next, active and retired.",
    response_class=JwkSetResponse,
    response_model=apidoc.JsonWebKeySet,
    responses=_NOT_MODIFIED,
)
async def jwks(request: Request) -> Response:
    return await _answer(request)
