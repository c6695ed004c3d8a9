"""Request size limits, enforced before any route runs: the body, the query string, the headers.

A request over a limit gets a 400 in the format of the endpoint it was sent to (OAuth JSON on
the token, revocation, introspection and UserInfo endpoints; the error page everywhere else)
and is never read further. The body is read up to the limit and handed on from memory, so a
route never waits on, or parses, more than that; requests without a Content-Length (chunked)
are held to the same limit.

Starlette and uvicorn have no body limit of their own, and uvicorn's header limit depends on
the HTTP parser installed; hence this middleware. Per-parameter limits are the protocol's
(``digital_id.oidc.requests.PARAMETER_LIMITS``).
"""

from __future__ import annotations

import json
from typing import Final

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digital_id.web.rendering import Page

# Far above any form or JSON body we take (a login form is under 1 KiB; an authorization
# request carried through the login pages, request object and all, stays under 32 KiB).
MAX_BODY_BYTES: Final = 64 * 1024
# A request object sent by GET is the longest query we expect (RFC 9101, at most 16 KiB).
MAX_QUERY_BYTES: Final = 32 * 1024
# Names and values of all headers together: cookies, a bearer token, a Basic header.
MAX_HEADER_BYTES: Final = 32 * 1024
# Endpoints whose errors are OAuth JSON (RFC 6749 section 5.2, RFC 6750 section 3.1).
OAUTH_ENDPOINTS: Final = frozenset(
    {"/token", "/revoke", "/introspect", "/userinfo", "/par", "/device_authorization"}
)


class RequestTooLargeError(Exception):
    """The request is over a limit; the message says which (safe to show)."""


class RequestLimits:
    """Pure ASGI middleware (no BaseHTTPMiddleware) so the body can be counted as it arrives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if not _check_head(scope):
                # No Content-Length and no Transfer-Encoding: HTTP/1.1 has no body to read
                # (RFC 9112 section 6.3), which is every GET's case.
                await self.app(scope, receive, send)
                return
            body = await _read_body(scope, receive)
        except RequestTooLargeError as exc:
            await _refuse(scope, send, str(exc))
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # http.disconnect, when the client goes

        await self.app(scope, replay, send)


def _check_head(scope: Scope) -> bool:
    """Refuses a query string, headers or a declared body over the limits; whether the
    request has a body (a Content-Length or a Transfer-Encoding)."""
    if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
        raise RequestTooLargeError(f"the query string is longer than {MAX_QUERY_BYTES} bytes")
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    if sum(len(name) + len(value) for name, value in headers) > MAX_HEADER_BYTES:
        raise RequestTooLargeError(f"the headers are larger than {MAX_HEADER_BYTES} bytes")
    has_body = False
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit():
                raise RequestTooLargeError("the Content-Length header is not a number")
            if int(value) > MAX_BODY_BYTES:
                raise RequestTooLargeError(f"the body is larger than {MAX_BODY_BYTES} bytes")
            has_body = True
        elif name == b"transfer-encoding":
            has_body = True
    return has_body


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left; the app sees an empty body and its disconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestTooLargeError(f"the body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _refuse(scope: Scope, send: Send, problem: str) -> None:
    request = Request(scope)
    if scope.get("path") in OAUTH_ENDPOINTS:
        body = json.dumps({"error": "invalid_request", "error_description": problem}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    page = Page(request, scope["app"].state.services)
    response = page.render(
        "error.html", status=400, back_to="/", message_key="error.too_large", detail=None
    )
    # The rest of an over-long body is not read; the connection cannot be reused.
    response.headers["Connection"] = "close"
    await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
