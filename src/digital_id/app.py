"""The web application: built by ``create_app(settings)``; nothing happens at import time."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from importlib import resources
from pathlib import Path

from authlib.oauth2.rfc6749 import OAuth2Error
from fastapi import FastAPI, Response
from fastapi.middleware import Middleware
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digital_id import __version__
from digital_id.accounts.browsers import BrowserCookies
from digital_id.accounts.delegation_ending import end_lapsed_delegations
from digital_id.accounts.pins import PinHasher
from digital_id.accounts.totp import TotpCipher
from digital_id.audit import checkpoints
from digital_id.audit.group_commit import GroupCommitter
from digital_id.clients.jwks import ClientKeyResolver
from digital_id.clients.service import used_algorithms
from digital_id.config import Settings, load_settings
from digital_id.db.engine import ServerPool, create_engine_for
from digital_id.db.migrate import SchemaNotCurrentError, ensure_current
from digital_id.db.types import utc_now
from digital_id.keys.errors import KeyStoreError
from digital_id.keys.ring import KeyRing
from digital_id.keys.store import KeyStore
from digital_id.outbound import Outbound
from digital_id.registry.regions import load_regions
from digital_id.sessions.backchannel import Courier
from digital_id.throttle.fleet import FleetSync
from digital_id.web import (
    acting,
    apidoc,
    authorize,
    device,
    observability,
    outage,
    pages,
    passkeys,
    portal,
    portal_family,
    portal_security,
    protocol,
    published,
)
from digital_id.web.audit_checkpoints import CheckpointThread
from digital_id.web.courier import CourierThread
from digital_id.web.housekeeping import HousekeepingThread
from digital_id.web.limits import RequestLimits
from digital_id.web.rendering import add_security_headers, security_headers
from digital_id.web.routing import request_header
from digital_id.web.services import Services

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class RequestIdAndSecurityHeaders:
    """One id per request, in every audit event it causes and in the response, so an
    operator can match a citizen's report, the logs and the trail; and the security headers
    on every response. Plain ASGI rather than ``@app.middleware("http")``: Starlette's
    BaseHTTPMiddleware runs each request through an extra task and memory streams, which
    the load benchmark's profiles showed on every request."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.every_response = security_headers(https)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = request_header(scope, b"x-request-id") or ""
        request_id = offered if _REQUEST_ID.fullmatch(offered) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id  # request.state.request_id
        id_header = (b"x-request-id", request_id.encode("ascii"))

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # A copy: an answer's header list may be one it sends again (a pre-rendered one).
                headers = [
                    header for header in message["headers"] if header[0].lower() != b"x-request-id"
                ]
                headers.append(id_header)
                add_security_headers(headers, self.every_response)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # The last resort: Starlette's own 500 is sent from outside every middleware,
            # without these headers. Ours goes out here, and the error goes on to the server's
            # log (Starlette sends nothing more once a response has started).
            if not started:
                await server_error(scope)(scope, receive, send_with_headers)
            raise


def server_error(scope: Scope) -> Response:
    """A 500 that says nothing of its cause: OAuth JSON where the caller parses JSON."""
    if scope.get("path") in outage.JSON_PATHS:
        return JSONResponse(
            {"error": "server_error"}, status_code=500, headers={"Cache-Control": "no-store"}
        )
    return PlainTextResponse(
        "Internal Server Error", status_code=500, headers={"Cache-Control": "no-store"}
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    engine = create_engine_for(settings.database_url, pool=ServerPool.from_settings(settings))
    key_store = KeyStore(settings.keys_dir, settings.keys_passphrase.get_secret_value())
    key_ring = KeyRing(key_store, check_interval=settings.keys_reload_seconds)
    outbound = Outbound.from_settings(settings)
    documents = published.PublishedDocuments(settings, key_ring)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A start refused below still closes the connections its checks opened: the pool
        # would otherwise hold them until the garbage collector finds the app.
        try:
            # Refuse to serve a schema this code does not know, or with keys it cannot open
            # (the CLI checks first, with friendlier messages; this guards other ways of starting).
            ensure_current(engine)
            for alg in settings.signing_algorithms:
                key_ring.current().signing_key(alg)
            app.state.services = Services(
                settings=settings,
                engine=engine,
                key_ring=key_ring,
                pin_hasher=PinHasher(
                    key_store.secret("pin_pepper"),
                    memory_kib=settings.pin_argon2_memory_kib,
                    time_cost=settings.pin_argon2_time_cost,
                ),
                pairwise_secret=key_store.secret("pairwise_subject"),
                csrf_secret=key_store.secret("csrf"),
                regions=load_regions(),
                client_keys=ClientKeyResolver(
                    outbound, refetch_seconds=settings.jwks_refetch_seconds
                ),
                totp_cipher=TotpCipher(key_store.secret("totp")),
                browser_cookies=BrowserCookies(key_store.secret("recognised_browser")),
            )
            with _background_work(app.state.services, outbound):
                yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="Digital ID",
        version=__version__,
        summary="OpenID Connect provider for Indonesia's national digital identity.",
        lifespan=lifespan,
        # Our telemetry is Prometheus and the access log (web.observability); FastAPI's own
        # OpenTelemetry would ask on every request whether a provider was configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # The committed openapi/openapi.json is the integrators' copy; a running server
        # publishes its own only where the operator wants it (DIGITAL_ID_API_DOCS).
        openapi_url="/openapi.json" if settings.serves_api_docs else None,
        exception_handlers={
            **outage.exception_handlers(),
            OAuth2Error: protocol.render_oauth_error,
        },
        # Inside security_headers (below), which sets the request id: the telemetry first, so
        # it counts and logs the size limits' refusals too; those get the same headers as any page.
        # The published documents are answered innermost, past the limits, like any route.
        middleware=[
            *observability.middleware(engine),
            Middleware(RequestLimits),
            Middleware(published.PublishedLane, published=documents),
        ],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.key_ring = key_ring
    app.state.published = documents

    app.add_middleware(RequestIdAndSecurityHeaders, https=settings.secure_cookies)

    static = Path(str(resources.files("digital_id.web").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")
    for module in (
        published, protocol, authorize, acting, device, pages, portal, portal_family,
        portal_security, passkeys,
    ):  # fmt: skip
        app.include_router(module.router)

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness: the process is up.",
        response_model=apidoc.Health,
    )
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: database reachable, schema current, an active key for every algorithm in use.",
        response_model=apidoc.Health,
        responses={
            503: {"description": "Not ready; `problems` says why.", "model": apidoc.NotReady}
        },
    )
    def readyz() -> JSONResponse:
        problems = []
        algorithms = set(settings.signing_algorithms)
        try:
            ensure_current(engine)
            with Session(engine) as session:
                algorithms |= used_algorithms(session)
        except SchemaNotCurrentError as exc:
            problems.append(str(exc))
        except Exception:
            problems.append("the database is not reachable")
        try:
            snapshot = key_ring.current()
            problems.extend(
                f"no active {alg} signing key, which registered clients use"
                for alg in sorted(algorithms)
                if snapshot.active(alg) is None
            )
        except KeyStoreError as exc:
            problems.append(str(exc))
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app


@contextmanager
def _background_work(services: Services, outbound: Outbound) -> Iterator[None]:
    """Each worker's threads for as long as it serves: the back-channel logout courier, the
    rate limits' synchronisation, the audit checkpoints, the housekeeping purges and the audit
    trail's group commit; stopped in the reverse order, so the last rate-limit round still
    sends what this process counted, and the group commit last of all."""
    settings = services.settings
    courier = CourierThread(
        Courier(
            services.engine,
            settings.issuer,
            retry_base=timedelta(seconds=settings.backchannel_logout_retry_seconds),
            outbound=outbound,
        ),
        services.key_ring,
        interval=min(5.0, settings.backchannel_logout_retry_seconds),
    )
    services.courier = courier
    rate_limit_sync = FleetSync(services.fleet_limiter, interval=settings.rate_limit_sync_seconds)
    checkpointer = CheckpointThread(
        services.engine,
        services.key_ring,
        alg=checkpoints.CHECKPOINT_ALGORITHM,
        interval=settings.audit_checkpoint_seconds,
    )
    housekeeping = HousekeepingThread(
        services.engine,
        interval=settings.housekeeping_seconds,
        also=lambda: end_lapsed_delegations(
            services.engine,
            lambda: (services.key_ring.current(), services.pairwise_secret),
            issuer=settings.issuer,
            now=utc_now(),
        ),
    )
    group_commit = GroupCommitter(services.engine) if settings.audit_group_commit else None
    if group_commit is not None:
        group_commit.start()
    courier.start()
    rate_limit_sync.start()
    checkpointer.start()
    housekeeping.start()
    try:
        yield
    finally:
        housekeeping.stop()
        checkpointer.stop()
        rate_limit_sync.stop()
        courier.stop()
        if group_commit is not None:
            group_commit.stop()
