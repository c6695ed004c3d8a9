"""The demo kiosk: a page at a service counter that shows a QR code and a user code, and
welcomes the citizen once they have approved it on their own phone.

The protocol is authlib's OAuth 2.0 client (``OAuth2Client`` over httpx): the kiosk
authenticates with ``private_key_jwt`` (``examples.agency_app.client_auth``) both at the
device authorization endpoint and when it polls the token endpoint with
``grant_type=urn:ietf:params:oauth:grant-type:device_code``. authlib has no device-flow
helper, so the polling rules of RFC 8628 section 3.5 (wait ``interval`` seconds, add five on
``slow_down``, stop on ``access_denied`` or ``expired_token``) are the few lines of
``Kiosk.poll``.

The browser never sees the device code: the page polls this app's ``/session/{id}``, which
polls Digital ID at most once per interval whatever the page does.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import segno
from authlib.integrations.httpx_client import (  # type: ignore[import-untyped,unused-ignore]
    OAuth2Client,
    OAuthError,
)
from authlib.oauth2.rfc7523.client import (  # type: ignore[import-untyped,unused-ignore]
    ASSERTION_TYPE,
)
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from examples.agency_app.client_auth import ClientAssertion
from examples.agency_app.keys import load_signing_key

HERE: Final = Path(__file__).parent
DEVICE_GRANT: Final = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP: Final = 5  # RFC 8628 section 3.5
HTTP_TIMEOUT_SECONDS: Final = 10.0
# Waiting screens kept at once: a kiosk serves one queue, this only bounds a stuck browser.
MAX_WAITING: Final = 100


@dataclass(frozen=True)
class KioskConfig:
    """The kiosk's registration at Digital ID. ``private_jwk`` stays out of ``repr``."""

    name: str
    issuer: str
    client_id: str
    private_jwk: dict[str, Any] = field(repr=False)
    scope: str = "openid profile"

    @property
    def device_authorization_endpoint(self) -> str:
        return self.issuer.rstrip("/") + "/device_authorization"

    @property
    def token_endpoint(self) -> str:
        return self.issuer.rstrip("/") + "/token"

    @property
    def userinfo_endpoint(self) -> str:
        return self.issuer.rstrip("/") + "/userinfo"


@dataclass
class Waiting:
    """One citizen's login in progress at this kiosk."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_at: float
    interval: int
    next_poll: float = 0.0
    state: str = "pending"  # pending, welcome, denied, expired, failed
    name: str | None = None
    acr: str | None = None


class Kiosk:
    """The kiosk's side of the device grant, on authlib's client."""

    def __init__(self, config: KioskConfig, **http: Any) -> None:
        self.config = config
        key = load_signing_key(config.private_jwk)
        self.client = OAuth2Client(
            client_id=config.client_id,
            client_secret=key.key,  # authlib's PrivateKeyJWT signs with what is given here
            token_endpoint_auth_method="private_key_jwt",  # noqa: S106 (a method name)
            timeout=HTTP_TIMEOUT_SECONDS,
            **http,
        )
        self.assertion = ClientAssertion(audience=config.issuer, alg=key.alg, kid=key.kid)
        self.client.register_client_auth_method(self.assertion)
        self.waiting: dict[str, Waiting] = {}
        self.lock = threading.Lock()

    def start(self) -> str:
        """Ask Digital ID for a device code and a user code; the new screen's id."""
        # authlib signs assertions for its token requests only; this one is signed the same
        # way by hand (RFC 7523 section 2.2), for the device authorization endpoint.
        response = self.client.post(
            self.config.device_authorization_endpoint,
            data={
                "scope": self.config.scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion.sign(self.client, self.config.issuer),
            },
            auth=None,  # no bearer token: the assertion authenticates this request
        )
        response.raise_for_status()
        body = response.json()
        now = time.monotonic()
        waiting = Waiting(
            device_code=body["device_code"],
            user_code=body["user_code"],
            verification_uri=body["verification_uri"],
            verification_uri_complete=body["verification_uri_complete"],
            expires_at=now + int(body["expires_in"]),
            interval=int(body.get("interval", 5)),
            next_poll=now + int(body.get("interval", 5)),
        )
        screen = secrets.token_urlsafe(16)
        with self.lock:
            if len(self.waiting) >= MAX_WAITING:
                self.waiting.pop(next(iter(self.waiting)))
            self.waiting[screen] = waiting
        return screen

    def poll(self, waiting: Waiting, now: float | None = None) -> Waiting:
        """Poll the token endpoint once, if the interval has passed (RFC 8628 section 3.5)."""
        now = time.monotonic() if now is None else now
        if waiting.state != "pending" or now < waiting.next_poll:
            return waiting
        if now >= waiting.expires_at:
            waiting.state = "expired"
            return waiting
        try:
            self.client.fetch_token(
                self.config.token_endpoint,
                grant_type=DEVICE_GRANT,
                device_code=waiting.device_code,
            )
        except OAuthError as error:
            if error.error == "slow_down":
                waiting.interval += SLOW_DOWN_STEP
            elif error.error == "access_denied":
                waiting.state = "denied"
            elif error.error == "expired_token":
                waiting.state = "expired"
            elif error.error != "authorization_pending":
                waiting.state = "failed"
            waiting.next_poll = now + waiting.interval
            return waiting
        userinfo = self.client.get(self.config.userinfo_endpoint)
        userinfo.raise_for_status()
        claims = userinfo.json()
        waiting.state = "welcome"
        waiting.name = claims.get("name")
        # The citizen is served; the kiosk keeps no token once the welcome is shown.
        self.client.token = None
        return waiting


def qr_svg(text: str) -> str:
    """A QR code of ``text`` as inline SVG (segno): scanned by the citizen's phone camera."""
    return str(segno.make(text, error="m").svg_inline(scale=6, dark="#12355b"))


def create_app(config: KioskConfig, **http: Any) -> FastAPI:
    kiosk = Kiosk(config, **http)
    templates = Jinja2Templates(directory=HERE / "templates")
    app = FastAPI(title=config.name, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.kiosk = kiosk
    app.mount("/static", StaticFiles(directory=HERE.parent / "agency_app" / "static"))

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        return templates.TemplateResponse(request, "kiosk_home.html", {"config": config})

    @app.post("/start")
    def start() -> RedirectResponse:
        return RedirectResponse(f"/session/{kiosk.start()}", status_code=303)

    @app.get("/session/{screen}", response_class=HTMLResponse)
    def screen_page(request: Request, screen: str) -> Response:
        waiting = _find(kiosk, screen)
        return templates.TemplateResponse(
            request,
            "kiosk_waiting.html",
            {
                "config": config,
                "screen": screen,
                "waiting": waiting,
                "qr": qr_svg(waiting.verification_uri_complete),
            },
        )

    @app.get("/session/{screen}/status")
    def status(screen: str) -> JSONResponse:
        waiting = kiosk.poll(_find(kiosk, screen))
        return JSONResponse(
            {"state": waiting.state, "name": waiting.name},
            headers={"Cache-Control": "no-store"},
        )

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app


def _find(kiosk: Kiosk, screen: str) -> Waiting:
    waiting = kiosk.waiting.get(screen)
    if waiting is None:
        raise HTTPException(404, "no such screen")
    return waiting
