"""Rendering pages: the language, the browser cookie the CSRF token is bound to, the headers."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session

from digital_id.throttle.limiter import Charge, RateLimitedError
from digital_id.web.i18n import LANGUAGES, Translator, negotiate
from digital_id.web.services import (
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    Services,
    new_browser_id,
)
from digital_id.web.unit_of_work import commit_charges_early

_templates = Environment(
    loader=PackageLoader("digital_id.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# No inline script or style anywhere; agency logos may come from their own https sites; the
# passkey script asks this site alone for its WebAuthn options (connect-src).
# Forms post to us; a page whose form may end at an agency (the authorization pages, whose
# post is answered with a redirect to its redirect_uri, and form_post) names that agency's
# origin too (``content_security_policy``), as browsers apply form-action to the redirects
# that follow a submission.
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
CONTENT_SECURITY_POLICY = _POLICY
# What may stand in a CSP source expression: a registered redirect URI's scheme and host.
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)
# Two years, subdomains too (the preload list's minimum); sent only behind an https issuer.
HSTS = "max-age=63072000; includeSubDomains"
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def content_security_policy(form_targets: Iterable[str] = ()) -> str:
    """The policy of a page whose forms may also end at ``form_targets`` (URLs)."""
    origins = []
    for target in form_targets:
        parts = urlsplit(target)
        origin = f"{parts.scheme}://{parts.netloc}"
        if _ORIGIN.fullmatch(origin) and origin not in origins:
            origins.append(origin)
    return " ".join([_POLICY, *origins])


def security_headers(https: bool) -> tuple[tuple[bytes, bytes], ...]:
    """The headers every response carries, as ASGI sends them; HSTS only when served over
    https, where browsers must never fall back to http."""
    headers = dict(SECURITY_HEADERS)
    if https:
        headers["Strict-Transport-Security"] = HSTS
    return tuple(
        (name.lower().encode("ascii"), value.encode("ascii")) for name, value in headers.items()
    )


def add_security_headers(
    raw_headers: list[tuple[bytes, bytes]], every_response: tuple[tuple[bytes, bytes], ...]
) -> None:
    """Adds each of ``every_response`` (``security_headers``) that the response does not set
    itself: a route may have set a stricter one already. Raw ASGI header pairs, because it
    runs on every response, discovery's included."""
    present = {name.lower() for name, _ in raw_headers}
    raw_headers.extend(header for header in every_response if header[0] not in present)


class Page:
    """One page view: the browser's identity and language, worked out once; and the cookies
    the answer sets (``finish``)."""

    def __init__(self, request: Request, services: Services, ui_locales: str | None = None) -> None:
        self.request = request
        self.services = services
        existing = request.cookies.get(services.browser_cookie)
        self.new_browser = not existing
        self.browser_id = existing or new_browser_id()
        self.session_token = request.cookies.get(SESSION_COOKIE) or ""
        self._set_browser = self.new_browser
        self._session_cookie: str | None = None  # a new session's token, or "" to end it
        self._recognised_cookie: tuple[str, int] | None = None
        self.asked_for(ui_locales)

    def asked_for(self, ui_locales: str | None) -> None:
        """The page's language, given the request's ``ui_locales``: called again once a
        pushed request or a request object, which the carried parameters do not show, is
        read. The citizen's own choice (the language cookie) still comes first."""
        self.language = negotiate(
            chosen=self.request.cookies.get(LANGUAGE_COOKIE),
            ui_locales=ui_locales,
            accept_language=self.request.headers.get("accept-language"),
        )
        self.t = Translator(self.language)

    @property
    def csrf_token(self) -> str:
        return self.services.csrf_token(self.browser_id, self.session_token)

    def csrf_valid(self, token: str | None) -> bool:
        return not self.new_browser and self.services.csrf_valid(
            self.browser_id, self.session_token, token
        )

    def logged_in(self, session_token: str, recognised: tuple[str, int] | None) -> None:
        """A login succeeded: the answer carries the new session's cookie, a new browser
        cookie (so every CSRF token from before the login is void) and, given ``(value,
        max_age)``, the recognised-browser cookie. Pages rendered from here on carry CSRF
        tokens for the new cookies."""
        self.browser_id = new_browser_id()
        self._set_browser = True
        self.session_token = self._session_cookie = session_token
        self._recognised_cookie = recognised

    def logged_out(self) -> None:
        """The browser's session ended: the answer drops its cookie and rotates the browser
        cookie (the recognised-browser cookie stays: the citizen did log in here)."""
        self.browser_id = new_browser_id()
        self._set_browser = True
        self.session_token = self._session_cookie = ""

    def keeping_language(self, path: str) -> str:
        """A link or form action that answers in the language of this page (the agency's
        ``ui_locales`` is not carried anywhere else)."""
        return f"{path}?{urlencode({'ui_locales': self.language})}"

    def redirect(self, url: str) -> RedirectResponse:
        """A 303 (so a browser that posted a form follows with a GET) carrying this page's
        cookies."""
        response = RedirectResponse(url, status_code=303)
        self.finish(response)
        return response

    def csrf_refusal(self) -> HTMLResponse:
        return self.render("error.html", status=400, message_key="error.csrf", detail=None)

    def refusal(self, db: Session, csrf_token: str | None, *charges: Charge) -> HTMLResponse | None:
        """The answer to a form post refused before any work, or None: a foreign CSRF token
        first (so a forged post spends nobody's budget), then a spent rate limit."""
        if not self.csrf_valid(csrf_token):
            return self.csrf_refusal()
        refused = commit_charges_early(db, self.services, *charges)
        return None if refused is None else self.rate_limited(refused)

    def rate_limited(self, refused: RateLimitedError) -> HTMLResponse:
        """429 (RFC 6585 section 4) with ``Retry-After``, the same whoever the NIK belongs to."""
        response = self.render(
            "error.html",
            status=429,
            message_key="error.rate_limited",
            message_values={"minutes": math.ceil(refused.retry_after / 60)},
            detail=None,
        )
        response.headers["Retry-After"] = str(refused.retry_after)
        return response

    def render(
        self,
        template: str,
        *,
        status: int = 200,
        back_to: str | None = None,
        form_targets: Iterable[str] = (),
        **context: Any,
    ) -> HTMLResponse:
        other = next(language for language in LANGUAGES if language != self.language)
        back_to = back_to or self.request.url.path + (
            f"?{self.request.url.query}" if self.request.url.query else ""
        )
        html = _templates.get_template(template).render(
            t=self.t,
            static_url="/static",
            csrf_token=self.csrf_token,
            passkeys_enabled=self.services.relying_party.enabled,
            other_language=other,
            switch_url="/language?" + urlencode({"to": other, "next": back_to}),
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        if form_targets:
            response.headers["Content-Security-Policy"] = content_security_policy(form_targets)
        self.finish(response)
        return response

    def finish(self, response: Any) -> None:
        """Page headers and the cookies this answer sets: the browser cookie (first visit,
        login, logout), the session's (login, logout), the recognised browser's (login).
        Every one HttpOnly, SameSite=Lax, for the whole site, Secure behind an https issuer."""
        response.headers["Cache-Control"] = "no-store"
        services = self.services
        secure = services.settings.secure_cookies
        if self._set_browser:
            response.set_cookie(
                services.browser_cookie,
                self.browser_id,
                httponly=True,
                samesite="lax",
                secure=secure,
                path="/",
            )
        if self._session_cookie:
            response.set_cookie(
                SESSION_COOKIE,
                self._session_cookie,
                httponly=True,
                samesite="lax",
                secure=secure,
                path="/",
            )
        elif self._session_cookie == "":
            response.delete_cookie(
                SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="lax"
            )
        if self._recognised_cookie is not None:
            value, max_age = self._recognised_cookie
            response.set_cookie(
                services.recognised_cookie,
                value,
                max_age=max_age,
                httponly=True,
                samesite="lax",
                secure=secure,
                path="/",
            )
