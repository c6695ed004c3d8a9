"""The web side of telemetry: a request's metrics and access-log line. The metrics are
served on a listener of their own (``telemetry.metrics.serve_metrics``), not by this app."""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digital_id.telemetry import metrics
from digital_id.telemetry.logs import ACCESS_LOGGER, redact, request_id

access_log = logging.getLogger(ACCESS_LOGGER)
# For requests no route matched: a label per raw path would let anyone create series.
UNMATCHED = "unmatched"


def middleware(engine: Engine) -> list[Middleware]:
    """For ``FastAPI(middleware=...)``: the request telemetry, with ``engine``'s pool watched."""
    metrics.watch_pool(engine)
    return [Middleware(RequestTelemetry)]


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/account/receipts/{receipt_id}.jwt``), never the
    path as requested, whose ids and query must not become labels or log fields."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class RequestTelemetry:
    """Counts and times each HTTP request by route template and writes its access-log line
    (no query string: query strings carry login hints and codes). Added inside the middleware
    that sets ``request.state.request_id``, whose id it puts in the logging context."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._noting_shutdown(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        state = scope.get("state") or {}
        offered = state.get("request_id")
        # Callers choose their ids; one may be a NIK, which the logs must not show.
        current_id = redact(offered) if isinstance(offered, str) else None
        token = request_id.set(current_id)
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            metrics.observe_request(scope["method"], route, status, seconds)
            # The path as requested, so a 404 can be traced; anyone can put a NIK in a path.
            # A path that is its route's template holds no value of the caller's.
            path = route if route == scope["path"] else redact(scope["path"])
            duration_ms = round(seconds * 1000, 2)
            client = scope.get("client")
            access_log.info(
                "%s %s %d %.1f ms",
                scope["method"],
                path,
                status,
                duration_ms,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                    "client_ip": client[0] if client else None,
                    "request_id": current_id,
                },
            )
            request_id.reset(token)

    @staticmethod
    def _noting_shutdown(send: Send) -> Send:
        async def send_and_forget_on_shutdown(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                metrics.forget_this_process()
            await send(message)

        return send_and_forget_on_shutdown
