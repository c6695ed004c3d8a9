"""The demo agency: a relying party that logs citizens in with Digital ID.

Everything protocol-related is authlib's Starlette client
(:class:`authlib.integrations.starlette_client.OAuth`), set up in :func:`register_digital_id`:

* discovery from ``{issuer}/.well-known/openid-configuration``, fetched on the first login;
* the authorization code flow with PKCE (``code_challenge_method=S256``, RFC 7636), a
  ``state`` (RFC 6749 section 10.12) and a ``nonce`` (OpenID Connect Core 1.0 section 3.1.2.1),
  all kept in the signed session cookie between ``/login`` and ``/callback``;
* ``private_key_jwt`` client authentication at the token endpoint (``client_auth.py``);
* ID token verification against the provider's ``jwks_uri``, plus the checks authlib leaves
  to the caller: ``iss`` is the configured issuer and ``aud`` contains our client_id
  (section 3.1.3.7), and the UserInfo ``sub`` is the ID token's (section 5.3.2);
* logging out of the agency and of Digital ID with RP-Initiated Logout 1.0 (authlib's
  ``logout_redirect``, with the ID token as ``id_token_hint`` and a ``state`` checked on the
  way back to ``/logged-out``);
* receiving Back-Channel Logout 1.0 tokens at ``/backchannel-logout`` (``backchannel.py``),
  after which a browser still carrying that Digital ID session here is logged out.

Nothing happens at import time; :func:`create_app` builds a new app from an
:class:`AgencyConfig` and touches the network only when someone logs in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn
from urllib.parse import urlsplit

import httpx2
from authlib.integrations.starlette_client import (  # type: ignore[import-untyped,unused-ignore]
    OAuth,
    OAuthError,
)
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.middleware.sessions import SessionMiddleware

from examples.agency_app.backchannel import (
    LEEWAY_SECONDS,
    SIGNING_ALGORITHMS,
    EndedSessions,
    InvalidLogoutTokenError,
    LogoutToken,
    RefetchLimit,
    SeenTokenIds,
    UnknownSigningKeyError,
    verify_logout_token,
)
from examples.agency_app.client_auth import ClientAssertion
from examples.agency_app.keys import load_signing_key

HERE: Final = Path(__file__).parent
PROVIDER: Final = "digital_id"  # the name the client is registered under in authlib's registry
SESSION_LOGIN: Final = "login"  # session key of the login: claims, UserInfo, raw ID token
# The cookie holds personal data: an hour at most, counted from the login (Starlette renews
# the cookie on every response, so its own max_age alone would let a login live forever).
SESSION_MAX_AGE: Final = 60 * 60
HTTP_TIMEOUT_SECONDS: Final = 10.0
TIME_CLAIMS: Final = ("exp", "iat", "auth_time", "nbf")
SECURITY_HEADERS: Final = {
    "Referrer-Policy": "no-referrer",  # /callback URLs carry the code and state
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",  # pages show personal data
}
log = logging.getLogger(__name__)
CLAIM_NOTES: Final = {
    "iss": "Issuer: checked to be exactly the configured issuer.",
    "sub": "Subject: this citizen's identifier at this agency (pairwise unless registered otherwise).",
    "aud": "Audience: checked to contain this agency's client_id.",
    "azp": "Authorized party: checked to be this agency's client_id when present.",
    "exp": "Expiry: checked (with two minutes' leeway for clock skew).",
    "iat": "Issued at.",
    "auth_time": "When the citizen authenticated.",
    "nonce": "Checked to equal the nonce this app sent with the login request.",
    "at_hash": "Hash of the access token: checked against the token received.",
    "acr": "Authentication context class.",
    "amr": "Authentication methods used.",
    "sid": "Digital ID's session id.",
    "act": "Actor (RFC 8693): a parent acting for this child, by the parent's own sub here.",
}


@dataclass(frozen=True)
class AgencyConfig:
    """What an agency knows about itself and its Digital ID registration.

    ``private_jwk`` and ``session_secret`` are kept out of ``repr`` so they never reach logs.
    """

    name: str
    issuer: str
    client_id: str
    private_jwk: dict[str, Any] = field(repr=False)
    base_url: str
    scope: str
    session_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("issuer", "base_url"):
            parts = urlsplit(getattr(self, name))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{name} must be an absolute http(s) URL")
        if "openid" not in self.scope.split():
            raise ValueError("scope must include openid: this is an OpenID Connect login")
        if not self.client_id:
            raise ValueError("client_id must not be empty")
        if len(self.session_secret) < 16:
            raise ValueError("session_secret must be at least 16 characters")
        try:
            load_signing_key(self.private_jwk)
        except ValueError as exc:
            raise ValueError(f"private_jwk: {exc}") from None

    @property
    def redirect_uri(self) -> str:
        """The redirect URI to register, exactly as it is sent."""
        return f"{self.base_url.rstrip('/')}/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        """Where Digital ID sends the browser after logging out; registered exactly so."""
        return f"{self.base_url.rstrip('/')}/logged-out"

    @property
    def backchannel_logout_uri(self) -> str:
        """Where Digital ID POSTs logout tokens (Back-Channel Logout 1.0, section 2.2)."""
        return f"{self.base_url.rstrip('/')}/backchannel-logout"

    @property
    def discovery_url(self) -> str:
        """OpenID Connect Discovery 1.0, section 4."""
        return f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"

    @property
    def session_cookie(self) -> str:
        """A cookie name per client: cookies ignore ports, and demo agencies share a host."""
        return f"agency_{hashlib.sha256(self.client_id.encode()).hexdigest()[:12]}"


class LoginError(Exception):
    """A login that could not be completed; rendered as a page, never as a 500."""

    status_code = 400

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


class ProviderError(LoginError):
    """Digital ID could not be reached or answered something this app must not trust."""

    status_code = 502


@dataclass(frozen=True)
class Agency:
    """What the routes work with, kept on ``app.state.agency``.

    The back-channel logout stores are in this process's memory (see ``backchannel.py``).
    """

    config: AgencyConfig
    digital_id: Any  # authlib's StarletteOAuth2App (authlib has no type hints)
    templates: Jinja2Templates
    ended_sessions: EndedSessions = field(
        default_factory=lambda: EndedSessions(retention=SESSION_MAX_AGE)
    )
    seen_logout_tokens: SeenTokenIds = field(default_factory=SeenTokenIds)
    jwks_refetch: RefetchLimit = field(default_factory=RefetchLimit)


def create_app(
    config: AgencyConfig, *, transport: httpx2.AsyncBaseTransport | None = None
) -> FastAPI:
    """The agency web app for ``config``.

    ``transport`` replaces the network for authlib's HTTP calls (tests pass a fake provider).
    """
    app = FastAPI(title=config.name, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.agency = Agency(
        config=config,
        digital_id=register_digital_id(OAuth(), config, transport=transport),
        templates=Jinja2Templates(directory=HERE / "templates"),
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=config.session_secret,
        session_cookie=config.session_cookie,
        max_age=SESSION_MAX_AGE,
        same_site="lax",  # the provider's redirect back to /callback is a top-level GET
        https_only=config.base_url.startswith("https://"),
    )
    app.middleware("http")(_security_headers(security_headers(config)))
    app.exception_handler(LoginError)(_render_login_error)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
    return app


def register_digital_id(
    oauth: OAuth, config: AgencyConfig, *, transport: httpx2.AsyncBaseTransport | None = None
) -> Any:
    """Register Digital ID in authlib's client registry; this is the whole OAuth setup.

    Registering fetches nothing: authlib reads the discovery document (and later the JWKS)
    on first use and keeps it.
    """
    client_key = load_signing_key(config.private_jwk)
    client_kwargs: dict[str, Any] = {
        "scope": config.scope,
        "code_challenge_method": "S256",  # PKCE, RFC 7636
        "token_endpoint_auth_method": ClientAssertion.name,  # "private_key_jwt"
        "timeout": HTTP_TIMEOUT_SECONDS,
    }
    if transport is not None:
        client_kwargs["transport"] = transport
    return oauth.register(
        PROVIDER,
        client_id=config.client_id,
        client_secret=client_key.key,  # authlib's PrivateKeyJWT signs with what is given here
        server_metadata_url=config.discovery_url,
        client_kwargs=client_kwargs,
        client_auth_methods=[
            ClientAssertion(audience=config.issuer, alg=client_key.alg, kid=client_key.kid)
        ],
    )


def security_headers(config: AgencyConfig) -> dict[str, str]:
    """Headers on every response. ``form-action`` names Digital ID too: the Log out form's
    answer redirects there, and browsers apply ``form-action`` to a form's redirects."""
    issuer = urlsplit(config.issuer)
    csp = (
        "default-src 'self'; frame-ancestors 'none'; "
        f"form-action 'self' {issuer.scheme}://{issuer.netloc}"
    )
    return {"Content-Security-Policy": csp, **SECURITY_HEADERS}


def _agency(request: Request) -> Agency:
    agency: Agency = request.app.state.agency
    return agency


AgencyDep = Annotated[Agency, Depends(_agency)]
router = APIRouter()


def current_login(request: Request, agency: Agency) -> dict[str, Any] | None:
    """The login this browser's session holds, or None. A login that Digital ID has since
    ended (a back-channel logout for its ``sid`` or ``sub``) or that is older than
    SESSION_MAX_AGE is cleared from the session here, so the browser is logged out."""
    login: dict[str, Any] | None = request.session.get(SESSION_LOGIN)
    if login is None:
        return None
    now = time.time()
    logged_in_at = login.get("logged_in_at")
    claims = login.get("claims", {})
    if (
        not isinstance(logged_in_at, int | float)
        or now - logged_in_at > SESSION_MAX_AGE
        or agency.ended_sessions.has_ended(
            sid=claims.get("sid"), sub=claims.get("sub"), logged_in_at=logged_in_at, now=now
        )
    ):
        request.session.clear()
        return None
    return login


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, agency: AgencyDep) -> Response:
    login = current_login(request, agency)
    context: dict[str, Any] = {"config": agency.config, "login": None}
    if login is not None:
        context["login"] = {
            "claims": [
                (name, _display(value), _note(name, value))
                for name, value in login["claims"].items()
            ],
            "userinfo": json.dumps(login["userinfo"], indent=2, ensure_ascii=False),
        }
    return agency.templates.TemplateResponse(request, "index.html", context)


@router.get("/login")
async def login(request: Request, agency: AgencyDep) -> Response:
    """Send the browser to Digital ID's authorization endpoint with state, nonce and PKCE."""
    config = agency.config
    await _provider_metadata(agency)
    try:
        response: Response = await agency.digital_id.authorize_redirect(
            request, config.redirect_uri
        )
    except (httpx2.HTTPError, RuntimeError) as exc:  # RuntimeError: no authorization endpoint
        raise ProviderError("login_failed", _describe(exc)) from None
    return response


@router.get("/callback")
async def callback(request: Request, agency: AgencyDep) -> Response:
    """Exchange the code (authenticating with private_key_jwt), verify the ID token, call
    UserInfo, and keep the results in the session."""
    if "error" in request.query_params:
        await _raise_provider_error(request, agency)
    try:
        token = await agency.digital_id.authorize_access_token(
            request, claims_options=_id_token_checks(agency.config)
        )
        if "userinfo" not in token:
            raise ProviderError("missing_id_token", "The token response has no ID token.")
        claims = dict(token["userinfo"])  # authlib's name for the verified ID token claims
        userinfo = dict(await agency.digital_id.userinfo(token=token))
    except OAuthError as exc:  # also a state that no login in this browser started
        raise LoginError(exc.error, exc.description or "") from None
    except JoseError as exc:
        raise ProviderError(
            "invalid_id_token", f"The ID token failed verification ({_describe(exc)})."
        ) from None
    except httpx2.HTTPError as exc:
        raise ProviderError("provider_unreachable", _describe(exc)) from None
    if userinfo.get("sub") != claims["sub"]:
        raise ProviderError(
            "userinfo_subject_mismatch",
            "The UserInfo response is about a different subject than the ID token.",
        )
    request.session.clear()
    request.session[SESSION_LOGIN] = {
        "claims": claims,
        "userinfo": userinfo,
        "id_token": token["id_token"],  # sent back as id_token_hint when logging out
        "logged_in_at": time.time(),
    }
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
async def logout(request: Request, agency: AgencyDep) -> Response:
    """Log out here, then send the browser to Digital ID's ``end_session_endpoint``
    (RP-Initiated Logout 1.0, section 2) to end the Digital ID session too.

    The request carries the ID token as ``id_token_hint`` (so Digital ID ends the session
    without asking the citizen to confirm), our ``client_id``, the registered
    ``post_logout_redirect_uri`` and a fresh random ``state``, which authlib keeps in the
    session and ``/logged-out`` checks (section 3). Digital ID then sends a back-channel
    logout to every other agency this session logged in to.
    """
    login = current_login(request, agency)
    request.session.clear()
    if login is None or not login.get("id_token"):
        return RedirectResponse("/", status_code=303)  # nothing to end at Digital ID
    try:
        await _provider_metadata(agency)
        response: Response = await agency.digital_id.logout_redirect(
            request,
            post_logout_redirect_uri=agency.config.post_logout_redirect_uri,
            id_token_hint=login["id_token"],
            client_id=agency.config.client_id,
        )
    except (ProviderError, RuntimeError) as exc:  # RuntimeError: no end_session_endpoint
        log.warning("could not end the Digital ID session: %s", exc)
        return _logged_out_page(request, agency, "here_only")
    response.status_code = 303  # authlib answers 302; after a POST, 303 says "GET" plainly
    return response


@router.post("/logout/local")
async def logout_here_only(request: Request) -> Response:
    """Forget the login here only; the citizen stays logged in at Digital ID."""
    request.session.clear()
    return RedirectResponse("/", status_code=303)


@router.get("/logged-out", response_class=HTMLResponse)
async def logged_out(request: Request, agency: AgencyDep) -> Response:
    """Where Digital ID returns the browser after logging out (RP-Initiated Logout 1.0,
    section 3). The page says Digital ID logged the citizen out only when ``state`` is the
    one this browser's logout sent; anything else gets a neutral page, and nothing from
    the query string is shown."""
    try:
        await agency.digital_id.validate_logout_response(request)
    except OAuthError:
        return _logged_out_page(request, agency, "unconfirmed")
    return _logged_out_page(request, agency, "everywhere")


@router.post("/backchannel-logout")
async def backchannel_logout(request: Request, agency: AgencyDep) -> Response:
    """Back-Channel Logout 1.0, sections 2.5-2.8: verify the ``logout_token`` Digital ID
    POSTs, remember its ``sid`` (or ``sub``) as logged out, and answer 200; a token that
    fails a check is answered 400 ``invalid_request``. Digital ID retries anything else."""
    async with request.form() as form:
        token = form.get("logout_token")
    if not isinstance(token, str) or not token:
        return _logout_token_refused("the request has no logout_token")
    try:
        verified = await _verify_logout_token(agency, token)
    except InvalidLogoutTokenError as exc:
        return _logout_token_refused(exc.description)
    except ProviderError as exc:  # the keys could not be fetched: let Digital ID retry
        log.warning("back-channel logout not verified: %s", exc)
        return JSONResponse(
            {"error": "temporarily_unavailable"},
            status_code=503,
            headers={"Cache-Control": "no-store"},
        )
    now = time.time()
    if not agency.seen_logout_tokens.first_use(
        verified.jti, until=verified.exp + LEEWAY_SECONDS, now=now
    ):
        return _logout_token_refused("this logout token has been used before")
    agency.ended_sessions.end(verified, now=now)
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


async def _verify_logout_token(agency: Agency, token: str) -> LogoutToken:
    """:func:`verify_logout_token` against Digital ID's JWKS, fetched (and cached) by
    authlib from the discovery document's ``jwks_uri``. A ``kid`` the cached set lacks
    refetches it, as authlib does for ID tokens, but at most once a minute."""
    metadata = await _provider_metadata(agency)
    advertised = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [alg for alg in advertised if alg in SIGNING_ALGORITHMS]

    def verify(keys: KeySet) -> LogoutToken:
        return verify_logout_token(
            token,
            keys,
            issuer=agency.config.issuer,
            client_id=agency.config.client_id,
            algorithms=algorithms,
            now=int(time.time()),
        )

    try:
        return verify(await _provider_keys(agency, force=False))
    except UnknownSigningKeyError:
        if not agency.jwks_refetch.allow(time.monotonic()):
            raise
    return verify(await _provider_keys(agency, force=True))


async def _provider_keys(agency: Agency, *, force: bool) -> KeySet:
    try:
        return KeySet.import_key_set(await agency.digital_id.fetch_jwk_set(force=force))
    except (httpx2.HTTPError, ValueError, RuntimeError, JoseError) as exc:
        raise ProviderError("jwks_unavailable", _describe(exc)) from None


async def _provider_metadata(agency: Agency) -> dict[str, Any]:
    """Digital ID's discovery document, read once by authlib and kept."""
    config = agency.config
    try:
        metadata: dict[str, Any] = await agency.digital_id.load_server_metadata()
    except (httpx2.HTTPError, ValueError) as exc:  # ValueError: the body is not JSON
        raise ProviderError(
            "discovery_failed", f"Could not read {config.discovery_url} ({_describe(exc)})."
        ) from None
    # OpenID Connect Discovery 1.0, section 4.3: the issuer in the document must be the one
    # we asked, or tokens from another issuer could be passed off as Digital ID's.
    if metadata.get("issuer") != config.issuer:
        raise ProviderError(
            "issuer_mismatch",
            f"The discovery document names issuer {metadata.get('issuer')!r}, "
            f"not the configured {config.issuer!r}.",
        )
    return metadata


def _logout_token_refused(description: str) -> Response:
    """Section 2.8: 400 with ``invalid_request``. The description is one of this app's own
    fixed sentences, never text from the token."""
    return JSONResponse(
        {"error": "invalid_request", "error_description": description},
        status_code=400,
        headers={"Cache-Control": "no-store"},
    )


def _logged_out_page(request: Request, agency: Agency, outcome: str) -> Response:
    return agency.templates.TemplateResponse(
        request, "logged_out.html", {"config": agency.config, "outcome": outcome}
    )


async def _raise_provider_error(request: Request, agency: Agency) -> NoReturn:
    """RFC 6749 section 4.1.2.1: an error sent back instead of a code.

    Its text comes from the query string, so anyone can craft such a link; the provider's
    description is shown only when the state belongs to a login this browser started.
    """
    framework = agency.digital_id.framework
    state = request.query_params.get("state")
    pending = await framework.get_state_data(request.session, state) if state else None
    if not pending:
        raise LoginError(
            "unsolicited_error",
            "An error response arrived for a login this browser did not start "
            "(or has already finished), so its text is not shown.",
        )
    await framework.clear_state_data(request.session, state)
    raise LoginError(
        request.query_params["error"], request.query_params.get("error_description", "")
    )


async def _render_login_error(request: Request, exc: LoginError) -> Response:
    agency = _agency(request)
    return agency.templates.TemplateResponse(
        request,
        "error.html",
        {"config": agency.config, "error": exc.error, "description": exc.description},
        status_code=exc.status_code,
    )


def _security_headers(
    headers: dict[str, str],
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def add_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    return add_headers


def _id_token_checks(config: AgencyConfig) -> dict[str, Any]:
    """Claims options for authlib, which checks ``iss`` only against the discovery document
    and ``aud`` only through ``azp`` (OpenID Connect Core 1.0, section 3.1.3.7, steps 2-3).
    A new dict each time: authlib consumes parts of it."""
    return {
        "iss": {"essential": True, "value": config.issuer},
        "aud": {"essential": True, "value": config.client_id},
    }


def _display(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def _note(name: str, value: Any) -> str:
    note = CLAIM_NOTES.get(name, "")
    if name in TIME_CLAIMS and isinstance(value, int | float):
        try:
            when = datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
        except (OverflowError, OSError, ValueError):
            return note
        note = f"{note} {when}".strip()
    return note


def _describe(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
