"""What the routes share, built once by ``create_app`` and kept on ``app.state``."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from digital_id.accounts import passkeys
from digital_id.accounts.browsers import BrowserCookies
from digital_id.accounts.lockout import LockoutPolicy
from digital_id.accounts.pins import PinHasher
from digital_id.accounts.totp import TotpCipher
from digital_id.audit.trail import EventContext
from digital_id.clients.jwks import ClientKeyResolver
from digital_id.config import Settings
from digital_id.db.types import utc_now
from digital_id.keys.ring import KeyRing
from digital_id.oidc.context import ProviderContext
from digital_id.oidc.dpop import DPoPNonces
from digital_id.oidc.server import Provider
from digital_id.oidc.userinfo import RecordedReleases
from digital_id.registry.regions import RegionTable
from digital_id.sessions.service import SessionPolicy
from digital_id.throttle.fleet import FleetLimiter
from digital_id.throttle.limiter import Limits, RateLimiter
from digital_id.web.courier import CourierThread

BROWSER_COOKIE = "dgid_browser"
SESSION_COOKIE = "dgid_session"
LANGUAGE_COOKIE = "dgid_lang"
# A browser where the citizen logged in: exempt from the lock strangers cause on the NIK.
RECOGNISED_COOKIE = "dgid_device"


def cookie_name(name: str, *, secure: bool) -> str:
    """Over https the ``__Host-`` prefix: the browser takes the cookie only from this exact
    host, Secure, for every path, so no sibling host or plain-http page can plant one (a
    planted browser cookie would be a CSRF token the attacker knows)."""
    return f"__Host-{name}" if secure else name


@dataclass
class Services:
    settings: Settings
    engine: Engine
    key_ring: KeyRing
    pin_hasher: PinHasher
    pairwise_secret: bytes
    csrf_secret: bytes
    regions: RegionTable
    client_keys: ClientKeyResolver
    totp_cipher: TotpCipher
    browser_cookies: BrowserCookies
    courier: CourierThread | None = None
    rate_limiter: RateLimiter = field(init=False)
    fleet_limiter: FleetLimiter = field(init=False)
    limits: Limits = field(init=False)
    oauth_server: Provider = field(init=False)
    dpop_nonces: DPoPNonces = field(init=False)

    def __post_init__(self) -> None:
        self.dpop_nonces = DPoPNonces(self.csrf_secret)
        self.rate_limiter = RateLimiter(self.csrf_secret)
        self.fleet_limiter = FleetLimiter(self.rate_limiter, self.engine)
        self.limits = Limits.from_settings(self.settings)
        self.oauth_server = Provider(self.settings)

    recorded_releases: RecordedReleases = field(default_factory=RecordedReleases)

    @property
    def session_policy(self) -> SessionPolicy:
        return SessionPolicy(
            idle=timedelta(minutes=self.settings.session_idle_minutes),
            absolute=timedelta(hours=self.settings.session_absolute_hours),
        )

    @property
    def lockout_policy(self) -> LockoutPolicy:
        return LockoutPolicy(
            threshold=self.settings.lockout_threshold,
            first_lock=timedelta(seconds=self.settings.lockout_seconds),
            longest_lock=timedelta(seconds=self.settings.lockout_max_seconds),
            recognition=timedelta(days=self.settings.recognised_browser_days),
        )

    @cached_property
    def relying_party(self) -> passkeys.RelyingParty:
        """Who passkeys are for on this server: its issuer's host (every page asks)."""
        return passkeys.relying_party(self.settings.issuer)

    @property
    def browser_cookie(self) -> str:
        return cookie_name(BROWSER_COOKIE, secure=self.settings.secure_cookies)

    @property
    def recognised_cookie(self) -> str:
        return cookie_name(RECOGNISED_COOKIE, secure=self.settings.secure_cookies)

    def provider(self, session: Session, events: EventContext | None = None) -> Provider:
        """The process's authorization server, working for this request from now on."""
        return self.oauth_server.serving(
            ProviderContext(
                session=session,
                settings=self.settings,
                keys=self.key_ring.current(),
                pairwise_secret=self.pairwise_secret,
                regions=self.regions,
                client_keys=self.client_keys,
                now=utc_now(),
                events=events or EventContext(),
                rate_limiter=self.fleet_limiter,
                limits=self.limits,
                dpop_nonces=self.dpop_nonces if self.settings.dpop_nonce_required else None,
            )
        )

    def logged_out(self) -> None:
        """Logouts were just queued: send them now rather than at the next poll."""
        if self.courier is not None:
            self.courier.wake()

    def endpoint(self, path: str) -> str:
        return self.settings.issuer.rstrip("/") + path

    # --- CSRF: a token bound to the browser cookie and the session, checked on every form POST

    def csrf_token(self, browser_id: str, session_token: str = "") -> str:
        """Bound to the browser cookie (rotated at every login and logout) and to the session
        cookie, so a token seen before a login, or in another session, is worth nothing."""
        message = f"csrf|{browser_id}|{session_token}".encode()
        return hmac.new(self.csrf_secret, message, hashlib.sha256).hexdigest()

    def csrf_valid(self, browser_id: str | None, session_token: str, token: str | None) -> bool:
        if not browser_id or not token:
            return False
        # As bytes: compare_digest refuses str with non-ASCII characters, which a forged
        # form may carry; such a token is simply wrong.
        return hmac.compare_digest(
            self.csrf_token(browser_id, session_token).encode(),
            token.encode("utf-8", "replace"),
        )


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def _services_dependency(request: Request) -> Services:
    # async: FastAPI runs a sync dependency in a worker thread, a hand-off (about 0.1 ms under
    # load) for an attribute read, on every request of every route.
    return services(request)


ServicesDep = Annotated[Services, Depends(_services_dependency)]


def events(request: Request, actor: str = "citizen") -> EventContext:
    """Who and where, for the audit trail: the request id the middleware gave this request."""
    return EventContext(
        actor=actor,
        request_id=getattr(request.state, "request_id", None),
        ip=client_ip(request),
    )


def client_ip(request: Request) -> str | None:
    """The caller's address: uvicorn's proxy headers put the forwarded one here when the
    request came through a trusted proxy."""
    return request.client.host if request.client else None


def new_browser_id() -> str:
    return secrets.token_urlsafe(24)
