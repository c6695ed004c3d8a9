"""The HTTP request as authlib's server classes read it, built from plain values.

authlib ships adapters for Flask and Django only; this is the framework-free one the web
layer fills in, so protocol code never sees FastAPI.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import OAuth2Payload

from digital_id.oidc.jwt_policy import MAX_JWT_LENGTH, MAX_REQUEST_OBJECT_LENGTH

# The longest value we accept for each protocol parameter, in characters. Generous for any
# honest client (our codes and refresh tokens are 43 characters, an ID token about 1 KiB),
# and small enough that nothing downstream (a JSON parser, a database column, a log line)
# ever sees a value an attacker chose the size of. Checked before the request is processed.
PARAMETER_LIMITS: Final[Mapping[str, int]] = MappingProxyType(
    {
        # authorization request (OpenID Connect Core 3.1.2.1, RFC 7636, RFC 9101)
        "client_id": 256,
        "redirect_uri": 2048,
        "response_type": 64,
        "response_mode": 32,
        "scope": 1024,
        "state": 2048,
        "nonce": 512,
        "prompt": 64,
        "max_age": 10,
        "display": 32,
        "ui_locales": 128,
        "claims_locales": 128,
        "login_hint": 256,
        "acr_values": 512,
        "claims": 4096,
        "id_token_hint": MAX_JWT_LENGTH,
        "request": MAX_REQUEST_OBJECT_LENGTH,
        "request_uri": 2048,
        "code_challenge": 128,
        "code_challenge_method": 16,
        "dpop_jkt": 64,  # RFC 9449 section 10
        # token, revocation, introspection (RFC 6749, 7009, 7523, 7636, 7662)
        "grant_type": 128,
        "code": 256,
        "code_verifier": 128,  # RFC 7636 section 4.1: 43 to 128 characters
        "refresh_token": 256,
        "client_secret": 256,
        "client_assertion_type": 128,
        "client_assertion": MAX_JWT_LENGTH,
        "token": MAX_JWT_LENGTH,
        "token_type_hint": 64,
        # RP-initiated logout 1.0
        "post_logout_redirect_uri": 2048,
        "logout_hint": 256,
    }
)
# Parameters we do not know are ignored (OpenID Connect Core 3.1.2.1), but not at any size.
DEFAULT_PARAMETER_LIMIT: Final = 2048
MAX_PARAMETER_NAME: Final = 64
MAX_PARAMETERS: Final = 64
# Values RFC 6749 Appendix A and RFC 7636 define as printable ASCII (NQCHAR and narrower).
# Anything else is refused up front: authlib echoes some of them into error descriptions,
# which RFC 6749 section 5.2 limits to the same characters (it raises, a 500, otherwise).
ASCII_PARAMETERS: Final = frozenset(
    {"response_type", "response_mode", "scope", "prompt", "display", "max_age", "grant_type",
     "code_challenge", "code_challenge_method", "code_verifier", "token_type_hint",
     "client_assertion_type"}
)  # fmt: skip
_NQCHARS = re.compile(r"[\x21\x23-\x5b\x5d-\x7e ]*")
_NOT_DESCRIBABLE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def describable(text: str, limit: int = 64) -> str:
    """``text`` as it may appear in an ``error_description`` (RFC 6749 section 5.2: printable
    ASCII without ``"`` and ``\\``): other characters become ``?``, and it is cut short."""
    return _NOT_DESCRIBABLE.sub("?", text[:limit])


def parameter_problem(pairs: Iterable[tuple[str, str]]) -> str | None:
    """Why these parameters are refused for their size or characters (the first found), or
    None."""
    for count, (name, value) in enumerate(pairs, start=1):
        if count > MAX_PARAMETERS:
            return f"more than {MAX_PARAMETERS} parameters"
        if len(name) > MAX_PARAMETER_NAME:
            return f"a parameter name is longer than {MAX_PARAMETER_NAME} characters"
        limit = PARAMETER_LIMITS.get(name, DEFAULT_PARAMETER_LIMIT)
        if len(value) > limit:
            return f"{describable(name)} is longer than {limit} characters"
        if name in ASCII_PARAMETERS and not _NQCHARS.fullmatch(value):
            return f"{name} may hold printable ASCII characters only"
    return None


class Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in pairs:
            self._datalist[name].append(value)
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class ProviderRequest(OAuth2Request):  # type: ignore[misc]
    """``uri`` is the endpoint under the issuer (not the Host the request arrived with), so a
    proxy in front cannot change what the protocol sees."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        *,
        query: Sequence[tuple[str, str]] = (),
        form: Sequence[tuple[str, str]] = (),
        continues_flow: bool = False,
        pushed: bool = False,
        dpop: Sequence[str] = (),
    ) -> None:
        super().__init__(method, uri, headers=headers)
        # An authorization request carried on by the login, second-factor or consent page,
        # rather than arriving at the authorization endpoint.
        self.continues_flow = continues_flow
        # An authorization request pushed to /par (RFC 9126), validated there before it is kept.
        self.pushed = pushed
        # Every DPoP header value the request carried (RFC 9449: exactly one is acceptable).
        self.dpop = list(dpop)
        self._query = Payload(query)
        self._form = Payload(form)
        # Authorization requests may come by GET (query) or POST (form); token requests by POST.
        self.payload = self._query if method == "GET" else self._form

    @property
    def args(self) -> dict[str, str]:
        return self._query.data

    @property
    def form(self) -> dict[str, Any]:
        return self._form.data

    def parameter_problem(self) -> str | None:
        """Why the request's parameters (query and form) are refused for their size, or None."""
        return parameter_problem(
            (name, value)
            for payload in (self._query, self._form)
            for name, values in payload.datalist.items()
            for value in values
        )

    @property
    def parameters(self) -> list[tuple[str, str]]:
        """Every parameter of the request as sent, to carry it through the login pages."""
        return [(name, value) for name, values in self.payload.datalist.items() for value in values]
