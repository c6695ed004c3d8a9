"""The authorization endpoint's decisions: error, log in, ask consent, or answer the agency.

authlib validates the request (client, redirect URI, scope, PKCE, nonce, prompt=none without
a session); this module decides what the citizen sees next and turns authlib's response into
an answer for the agency: ``query`` or ``form_post``, always with ``iss`` (RFC 9207), which
authlib's own IssuerParameter would add only to redirects, not to form posts.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from joserfc import jwt
from joserfc.errors import JoseError

from digital_id import levels
from digital_id.accounts import standing
from digital_id.accounts.session_standing import SessionStanding
from digital_id.consent import service as consent_service
from digital_id.keys.store import ALGORITHMS as ID_TOKEN_ALGORITHMS
from digital_id.oidc import assurance
from digital_id.oidc.acting import Acting, ShowActingChoice, acting
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.approvals import record_approval
from digital_id.oidc.claims import ClaimsRequest
from digital_id.oidc.code_grant import Approval, CodeGrant
from digital_id.oidc.context import OAuthResponse
from digital_id.oidc.jwt_policy import check_jwt
from digital_id.oidc.requests import PARAMETER_LIMITS, ProviderRequest
from digital_id.oidc.server import Provider
from digital_id.registry.models import Citizen
from digital_id.sessions.models import BrowserSession

HINT_LEEWAY = 10

# authlib quotes the redirect URI in the error_description of the error it raises for an
# unregistered one, and fails outright (ValueError) when it has characters RFC 6749 section 5.2
# forbids there. No registered redirect URI has such characters, so the request is refused
# first, on the error page (the redirect URI cannot be verified). response_type and the other
# ASCII-only parameters are refused earlier, by the parameter rules in oidc.requests.


@dataclass(frozen=True)
class ShowLogin:
    client: AgencyClient
    login_hint: str | None


@dataclass(frozen=True)
class ShowConsent:
    client: AgencyClient
    citizen: Citizen  # whose data the agency asks for
    claims: ClaimsRequest
    guardian: Citizen | None = None  # deciding for ``citizen``, a child (``oidc.acting``)
    acting_for: str = ""  # the choice that chose ``citizen``, for the page to carry


@dataclass(frozen=True)
class ShowSecondFactor:
    """The session is below the level needed: ask for the one-time code (enrolling first if
    the citizen has no authenticator yet)."""

    client: AgencyClient
    citizen: Citizen


@dataclass(frozen=True)
class ShowError:
    """The request cannot be answered to the agency (bad client or redirect URI): never redirect."""

    error: str
    description: str
    # The page's own message when the error code alone would say too little.
    message: str | None = None


@dataclass(frozen=True)
class Respond:
    """The answer to the agency, at its redirect URI."""

    redirect_uri: str
    params: list[tuple[str, str]]
    response_mode: str

    @property
    def url(self) -> str:
        return str(add_params_to_uri(self.redirect_uri, self.params))


Outcome = ShowLogin | ShowSecondFactor | ShowActingChoice | ShowConsent | ShowError | Respond


def authorize(
    provider: Provider,
    request: ProviderRequest,
    browser_session: BrowserSession | None,
    *,
    fresh_login: bool = False,
    decision: str | None = None,
    logged_in: Citizen | None = None,
    consent: consent_service.StoredConsent | None = None,
    known: SessionStanding | None = None,
    acting_for: str | None = None,
) -> Outcome:
    """One step of the authorization request, given the browser's live session (if any).

    ``fresh_login`` says the citizen has just entered their PIN for this very request, so
    ``prompt=login`` and ``max_age`` are satisfied; ``decision`` is the consent page's answer.
    ``logged_in``: the citizen whose PIN login, in this request's transaction, started
    ``browser_session``; that login asked the one rule, so it is not asked twice.
    ``consent``: the citizen's consent row for the agency as that login read it, if it did.
    ``known``: ``browser_session`` as resumed with its standing and consent row
    (``accounts.session_standing``), so neither is read again.
    ``acting_for``: the guardian's answer to "for whom?" (``oidc.acting``), None if not given.
    """
    context = provider.context
    problem = request.parameter_problem()
    if problem is not None:
        return _refuse_parameters(provider, request, problem)
    citizen = None
    if logged_in is not None:
        assert browser_session is not None
        assert browser_session.citizen_id == logged_in.id
        citizen = logged_in
    elif browser_session is not None and _session_refusal(provider, browser_session, known) is None:
        # Single sign-on and prompt=none ask the one rule too: a session that outlived its
        # citizen's block, death or lock is no session at all.
        citizen = context.session.get_one(Citizen, browser_session.citizen_id)
    if invalid_error_characters(str(request.payload.data.get("redirect_uri") or "")):
        return ShowError("invalid_request", "redirect_uri may hold only printable ASCII characters")
    # The login step writes nothing between this validation and its answer: it shows the
    # consent page (whose step asks about the nonce before recording a consent), the second
    # factor's, or answers the agency through authlib's second validation, which asks then.
    # So a reused nonce is refused before any code, and a flow asks once fewer.
    context.nonces.deferred = logged_in is not None
    try:
        grant: CodeGrant = provider.get_consent_grant(request, end_user=citizen)
    except OAuth2Error as error:
        return _error(provider, request, error)
    finally:
        context.nonces.deferred = False
    claims: ClaimsRequest = grant.request.claims_request
    data = request.payload.data
    try:
        pending: Outcome | Acting | None = _authentication_needed(
            provider, grant, citizen, browser_session, fresh_login=fresh_login
        )
        who = None
        if pending is None:
            assert citizen is not None
            # For whom the citizen goes on (asked of a guardian), then their consent.
            pending = acting(
                context,
                grant.request.client,
                citizen,
                acting_for,
                prompts=set(data.get("prompt", "").split()),
                redirect_uri=grant.redirect_uri,
            )
        if isinstance(pending, Acting):
            who = pending
            pending = _consent_needed(
                provider,
                request,
                grant,
                who,
                decision,
                _known_consent(consent, known),
                acting_for=acting_for or "",
            )
    except OAuth2Error as error:
        error.state = data.get("state")
        return _error(provider, request, error)
    if pending is not None:
        return pending
    assert isinstance(who, Acting)
    assert browser_session is not None

    approval = Approval(who.citizen, browser_session, claims, who.guardian)
    response = provider.create_authorization_response(request, approval, grant)
    return _answer(provider, request, grant, response)


def _session_refusal(
    provider: Provider, browser_session: BrowserSession, known: SessionStanding | None
) -> standing.Refusal | None:
    """The one rule for the session's citizen in its browser: as read with the session, if
    it was, else asked now."""
    if known is not None and known.browser_session is browser_session:
        return known.refusal
    context = provider.context
    return standing.refusal(
        context.session,
        browser_session.citizen_id,
        now=context.now,
        browser_session_id=browser_session.id,
    )


def _authentication_needed(
    provider: Provider,
    grant: CodeGrant,
    citizen: Citizen | None,
    browser_session: BrowserSession | None,
    *,
    fresh_login: bool,
) -> Outcome | None:
    """The login or second-factor page when the session is missing, too old for the request
    or below the level it needs; None when the citizen is authenticated enough."""
    data = grant.request.payload.data
    prompts = set(data.get("prompt", "").split())
    client: AgencyClient = grant.request.client
    now = provider.context.now
    if (
        citizen is not None
        and browser_session is not None
        and not fresh_login
        and (
            "login" in prompts
            or _max_age_passed(data.get("max_age"), browser_session, now)
            or not _hint_names(provider, data.get("id_token_hint"), client, citizen)
        )
    ):
        if "none" in prompts:
            raise LoginRequiredError(redirect_uri=grant.redirect_uri)
        citizen = None
    if citizen is None or browser_session is None:
        return ShowLogin(client, data.get("login_hint"))
    if not levels.satisfies(
        browser_session.acr, assurance.required_level(data, client.client_metadata)
    ):
        if "none" in prompts:
            raise LoginRequiredError(redirect_uri=grant.redirect_uri)
        return ShowSecondFactor(client, citizen)
    return None


def _known_consent(
    consent: consent_service.StoredConsent | None, known: SessionStanding | None
) -> consent_service.StoredConsent | None:
    """The consent row this request already read: by the PIN login's statement, or with the
    session the consent step resumed."""
    if known is not None and known.client_pk is not None:
        return consent_service.StoredConsent(
            known.browser_session.citizen_id, known.client_pk, known.consent
        )
    return consent


def _consent_needed(
    provider: Provider,
    request: ProviderRequest,
    grant: CodeGrant,
    who: Acting,
    decision: str | None,
    known: consent_service.StoredConsent | None = None,
    *,
    acting_for: str = "",
) -> Outcome | None:
    """The consent page when the stored consent does not cover the request (or
    ``prompt=consent``), the agency's ``access_denied`` on a deny; None to go on. ``known``:
    the stored consent as read earlier in this request, if it was. A guardian decides on the
    consent of the child they act for."""
    citizen = who.citizen
    context = provider.context
    client: AgencyClient = grant.request.client
    claims: ClaimsRequest = grant.request.claims_request
    prompts = set(grant.request.payload.data.get("prompt", "").split())
    # Read once: the approval below adds to this same row.
    row = consent_service.stored_or_known(
        context.session, known, citizen_id=citizen.id, client_pk=client.pk
    )
    if decision is None:
        if "consent" in prompts or not consent_service.covers(
            consent_service.live(row),
            claims.consent_items,
            given_by=who.guardian.id if who.guardian is not None else None,
        ):
            if "none" in prompts:
                raise ConsentRequiredError(redirect_uri=grant.redirect_uri)
            return ShowConsent(client, citizen, claims, who.guardian, acting_for)
        return None
    if decision == "approve":
        record_approval(provider, client, citizen, claims, row, guardian=who.guardian)
        return None
    return _answer(
        provider, request, grant, provider.create_authorization_response(request, None, grant)
    )


def login_proof(
    secret: bytes, browser_session: BrowserSession, carried: Sequence[tuple[str, str]]
) -> str:
    """Carried from the login page to the consent page: this session logged in for this very
    request, so the consent step does not ask again for ``prompt=login``. Made of the
    parameters the pages carry, as sent: a pushed request or a request object is resolved
    by the step, not by the pages."""
    message = browser_session.sid + "|" + repr(sorted(carried))
    return hmac.new(secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def proves_fresh_login(
    secret: bytes,
    browser_session: BrowserSession | None,
    carried: Sequence[tuple[str, str]],
    proof: str,
) -> bool:
    """Whether a form's ``proof`` is ``login_proof`` for this session and request: the login
    page's next steps (for whom, consent) carry it on."""
    # As bytes: compare_digest refuses a str with anything but ASCII, which a form may carry.
    return browser_session is not None and hmac.compare_digest(
        proof.encode("utf-8"), login_proof(secret, browser_session, carried).encode("utf-8")
    )


def _max_age_passed(max_age: str | None, browser_session: BrowserSession, now: datetime) -> bool:
    if max_age is None or not max_age.isdigit():
        return False
    return (now - browser_session.auth_time).total_seconds() > int(max_age)


def _hint_names(
    provider: Provider, id_token_hint: str | None, client: AgencyClient, citizen: Citizen
) -> bool:
    """Whether the ID token hint (ours, expired or not) names the logged-in citizen."""
    if not id_token_hint:
        return True
    now = provider.context.now
    try:
        check_jwt(id_token_hint, algorithms=ID_TOKEN_ALGORITHMS)
        token = jwt.decode(
            id_token_hint,
            provider.context.keys.verification_keys(),
            algorithms=list(ID_TOKEN_ALGORITHMS),
        )
        claims = token.claims
        # Expiry is not checked (an expired hint still names the citizen the agency means),
        # but a token that is not valid yet is not one we issued.
        unexpired = {name: value for name, value in claims.items() if name != "exp"}
        jwt.JWTClaimsRegistry(now=int(now.timestamp()), leeway=HINT_LEEWAY).validate(unexpired)
    except (JoseError, ValueError):
        raise InvalidRequestError("id_token_hint is not an ID token this server issued") from None
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if claims.get("iss") != provider.context.settings.issuer or client.client_id not in audiences:
        raise InvalidRequestError("id_token_hint was not issued to this client")
    return bool(
        claims.get("sub") == client.subject_for(citizen.id, provider.context.pairwise_secret)
    )


def _refuse_parameters(provider: Provider, request: ProviderRequest, problem: str) -> Outcome:
    """``invalid_request`` for a parameter over its size limit or with characters its
    definition does not allow: to the agency when its client
    and redirect URI check out (RFC 6749 section 4.1.2.1), else on our error page. Nothing
    else of the request is read, and ``state`` is sent back only if it is itself in bounds."""
    data = request.payload.data
    client_id = data.get("client_id", "")
    requested = data.get("redirect_uri")
    client = None
    if 0 < len(client_id) <= PARAMETER_LIMITS["client_id"]:
        client = provider.query_client(client_id)
    redirect_uri = None
    if client is not None:
        if requested is None:
            redirect_uri = client.get_default_redirect_uri()
        elif len(requested) <= PARAMETER_LIMITS["redirect_uri"] and client.check_redirect_uri(
            requested
        ):
            redirect_uri = requested
    if redirect_uri is None:
        return ShowError("invalid_request", problem, message="bad_parameter")
    params = [("error", "invalid_request"), ("error_description", problem)]
    state = data.get("state")
    if state is not None and len(state) <= PARAMETER_LIMITS["state"]:
        params.append(("state", state))
    return _with_issuer(provider, Respond(redirect_uri, params, _response_mode(request)))


def _response_mode(request: ProviderRequest) -> str:
    mode = request.payload.data.get("response_mode", "query")
    return mode if mode in ("query", "form_post") else "query"


def _error(provider: Provider, request: ProviderRequest, error: OAuth2Error) -> Outcome:
    if not error.redirect_uri:
        return ShowError(error.error, error.get_error_description() or "")
    params = [(name, str(value)) for name, value in error.get_body()]
    return _with_issuer(provider, Respond(error.redirect_uri, params, _response_mode(request)))


def _answer(
    provider: Provider, request: ProviderRequest, grant: CodeGrant, response: OAuthResponse
) -> Outcome:
    location = response.location
    redirect_uri = grant.redirect_uri
    if location is None or redirect_uri is None:
        return ShowError("server_error", "the authorization response could not be built")
    # authlib appended its parameters to the redirect URI's own query; take just those.
    own = len(parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True))
    params = parse_qsl(urlsplit(location).query, keep_blank_values=True)[own:]
    return _with_issuer(provider, Respond(redirect_uri, params, _response_mode(request)))


def _with_issuer(provider: Provider, respond: Respond) -> Respond:
    return Respond(
        respond.redirect_uri,
        [*respond.params, ("iss", provider.context.settings.issuer)],
        respond.response_mode,
    )
