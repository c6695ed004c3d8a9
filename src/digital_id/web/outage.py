"""When the database is away: 503 with ``Retry-After``, in the format each caller reads.

A database that is restarting, failing over or unreachable surfaces as a driver error in
whatever request was using it. Every such request gets the same answer: the OAuth endpoints
``{"error": "temporarily_unavailable"}`` (RFC 6749, section 4.1.2.1 defines the code; we use
it on every OAuth endpoint, since each can meet the same outage), pages the localised error
page. The transaction the request was in is rolled back with the connection, so nothing is
half-done; the pool replaces the dead connections when the database is back (pre-ping), and
the same process serves again without a restart.

``/authorize`` answers with the page, not a redirect with the error: sending the browser to a
``redirect_uri`` needs the client's registration, which is in the unreachable database, and an
unverified redirect URI must never receive one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

import psycopg
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from digital_id.db.engine import database_unavailable
from digital_id.web.rendering import Page

log = logging.getLogger(__name__)
ExceptionHandler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

RETRY_AFTER_SECONDS: Final = 5
# The machine-to-machine endpoints: their callers parse JSON, never a page.
JSON_PATHS: Final = frozenset(
    {
        "/token",
        "/revoke",
        "/introspect",
        "/userinfo",
        "/jwks",
        "/readyz",
        "/.well-known/openid-configuration",
    }
)


def exception_handlers() -> dict[int | type[Exception], ExceptionHandler]:
    """Answer database outages with 503 instead of a 500 (and its traceback)."""
    # psycopg's own errors too: a few paths (closing a dead connection) raise them unwrapped.
    kinds = (DBAPIError, PoolTimeoutError, psycopg.OperationalError, psycopg.InterfaceError)
    handlers: dict[int | type[Exception], ExceptionHandler] = dict.fromkeys(kinds, _unavailable)
    return handlers


async def _unavailable(request: Request, exc: Exception) -> Response:
    if not database_unavailable(exc):
        raise exc  # a programming error stays a 500, with its traceback in the log
    cause = getattr(exc, "orig", None) or exc
    # The class and SQLSTATE only: the statement's text and parameters (hashes, NIKs) stay out.
    log.warning(
        "database unavailable: %s %s answered 503 (%s, sqlstate %s, request %s)",
        request.method,
        request.url.path,
        type(cause).__name__,
        getattr(cause, "sqlstate", None),
        getattr(request.state, "request_id", None),
    )
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
    if request.url.path in JSON_PATHS or not _wants_html(request):
        return JSONResponse(
            {
                "error": "temporarily_unavailable",
                "error_description": "The service is temporarily unavailable; retry shortly.",
            },
            status_code=503,
            headers=headers,
        )
    services = getattr(request.app.state, "services", None)
    if services is None:  # not started: no page machinery yet
        return Response("503 Service Unavailable", status_code=503, headers=headers)
    page = Page(request, services, request.query_params.get("ui_locales"))
    response = page.render(
        "error.html",
        status=503,
        title_key="error.temporarily_unavailable.title",
        message_key="error.temporarily_unavailable",
        detail=None,
    )
    response.headers.update(headers)
    return response


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return not accept or "text/html" in accept or "*/*" in accept
