"""A route class for the busiest endpoints, which read the request themselves, and the raw
ASGI header lookup the middleware in front of every request uses."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import Scope


class DirectRoute(APIRoute):
    """A route whose endpoint takes the request alone and returns a finished Response: it is
    called as it is, without FastAPI's dependency solving and response handling, which cost
    as much as a discovery answer and a tenth of a token's (the load benchmark's profiles).
    FastAPI's documented way to customise a route is to override ``get_route_handler``. The
    route is documented in the OpenAPI document like any other; an OAuth error it raises
    reaches the application's exception handlers as any route's does."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


def request_header(scope: Scope, name: bytes) -> str | None:
    """The first value of the request header ``name`` (lower case), from the scope as it
    stands: Starlette's ``Headers`` would copy every header first, on every request."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
