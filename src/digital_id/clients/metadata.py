"""Validating an agency's registration metadata (RFC 7591 field names).

Every rejection names the field (with its index for lists) and the rule, in the form an
operator can fix at once: ``redirect_uris[1]: fragments are not allowed``. Unknown fields are
refused rather than ignored: for an operator-run registry a typo must not pass silently.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from digital_id.clients.jwks import ASSERTION_ALGORITHMS
from digital_id.clients.subjects import sector_of
from digital_id.keys.store import ALGORITHMS
from digital_id.levels import ACR_VALUES
from digital_id.outbound import Outbound

GRANT_TYPES: Final = ("authorization_code", "refresh_token", "client_credentials")
SECRET_METHODS: Final = ("client_secret_basic", "client_secret_post")
AUTH_METHODS: Final = ("private_key_jwt", *SECRET_METHODS, "none")
SUBJECT_TYPES: Final = ("pairwise", "public")
LANGUAGES: Final = ("id", "en")
_URI_FIELDS: Final = (
    "logo_uri",
    "policy_uri",
    "tos_uri",
    "jwks_uri",
    "sector_identifier_uri",
    "backchannel_logout_uri",
)
# The URIs this server itself calls (the others only reach a citizen's browser).
CALLED_URIS: Final = ("jwks_uri", "sector_identifier_uri", "backchannel_logout_uri")
_KNOWN: Final = frozenset(
    {
        "client_name", *(f"client_name#{lang}" for lang in LANGUAGES), *_URI_FIELDS, "redirect_uris",
        "post_logout_redirect_uris", "grant_types", "response_types", "token_endpoint_auth_method",
        "jwks", "scope", "subject_type", "id_token_signed_response_alg", "userinfo_signed_response_alg",
        "contacts", "resource_server", "default_acr_values", "backchannel_logout_session_required",
        "purpose", "token_endpoint_auth_signing_alg", "request_object_signing_alg",
    }
)  # fmt: skip
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 section 3.3
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class InvalidClientMetadataError(ValueError):
    """RFC 7591 section 3.2.2: ``invalid_redirect_uri`` or ``invalid_client_metadata``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.error = (
            "invalid_redirect_uri"
            if field.startswith("redirect_uris")
            else "invalid_client_metadata"
        )


@dataclass(frozen=True)
class ClientMetadata:
    client_name: dict[str, str]
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("authorization_code",)
    response_types: tuple[str, ...] = ("code",)
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 (a method name)
    scope: tuple[str, ...] = ("openid",)
    subject_type: str = "pairwise"
    id_token_signed_response_alg: str = "RS256"  # noqa: S105 (an algorithm name)
    userinfo_signed_response_alg: str | None = None
    jwks: dict[str, Any] | None = None
    uris: dict[str, str] = field(default_factory=dict)
    contacts: tuple[str, ...] = ()
    resource_server: bool = False
    default_acr_values: tuple[str, ...] = ()
    # We always send sid in logout tokens, so asking for it is always satisfied.
    backchannel_logout_session_required: bool = False
    purpose: str | None = None  # shown to citizens and put in their consent receipts
    # OpenID Connect Registration 1.0 section 2: the one algorithm the client signs its
    # assertions (private_key_jwt) or request objects with; anything else is refused.
    token_endpoint_auth_signing_alg: str | None = None
    request_object_signing_alg: str | None = None

    @property
    def display_name(self) -> str:
        """The Indonesian name where there is one (the pages' default language)."""
        return self.client_name.get("id") or next(iter(self.client_name.values()))

    @property
    def uses_client_secret(self) -> bool:
        return self.token_endpoint_auth_method in SECRET_METHODS

    @property
    def signing_algorithms(self) -> set[str]:
        """The algorithms our tokens for this client are signed with."""
        return {self.id_token_signed_response_alg} | (
            {self.userinfo_signed_response_alg} if self.userinfo_signed_response_alg else set()
        )

    def to_registration(self) -> dict[str, Any]:
        """The metadata under RFC 7591 names, normalised, as stored and shown."""
        registration: dict[str, Any] = {
            f"client_name#{lang}": name for lang, name in self.client_name.items()
        }
        registration["client_name"] = self.client_name.get("id") or next(
            iter(self.client_name.values())
        )
        registration.update(
            redirect_uris=list(self.redirect_uris),
            post_logout_redirect_uris=list(self.post_logout_redirect_uris),
            grant_types=list(self.grant_types),
            response_types=list(self.response_types),
            token_endpoint_auth_method=self.token_endpoint_auth_method,
            scope=" ".join(self.scope),
            subject_type=self.subject_type,
            id_token_signed_response_alg=self.id_token_signed_response_alg,
            contacts=list(self.contacts),
            **self.uris,
        )
        if self.userinfo_signed_response_alg:
            registration["userinfo_signed_response_alg"] = self.userinfo_signed_response_alg
        if self.jwks is not None:
            registration["jwks"] = self.jwks
        if self.resource_server:
            registration["resource_server"] = True
        if self.backchannel_logout_session_required:
            registration["backchannel_logout_session_required"] = True
        if self.purpose:
            registration["purpose"] = self.purpose
        if self.default_acr_values:
            registration["default_acr_values"] = list(self.default_acr_values)
        if self.token_endpoint_auth_signing_alg:
            registration["token_endpoint_auth_signing_alg"] = self.token_endpoint_auth_signing_alg
        if self.request_object_signing_alg:
            registration["request_object_signing_alg"] = self.request_object_signing_alg
        return registration


def validate_metadata(data: dict[str, Any], *, production: bool) -> ClientMetadata:
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise InvalidClientMetadataError(
            unknown[0], "is not a registration field this server knows"
        )

    names = {
        lang: _text(data, f"client_name#{lang}")
        for lang in LANGUAGES
        if f"client_name#{lang}" in data
    }
    if "client_name" in data:
        names.setdefault("id", _text(data, "client_name"))
    if not names:
        raise InvalidClientMetadataError(
            "client_name", "is required (client_name, client_name#id or client_name#en)"
        )

    grant_types = _choices(data, "grant_types", GRANT_TYPES, default=("authorization_code",))
    response_types = _choices(data, "response_types", ("code",), default=("code",))
    method = _choice(
        data, "token_endpoint_auth_method", AUTH_METHODS, default="client_secret_basic"
    )
    uses_browser = "authorization_code" in grant_types

    redirect_uris = _uri_list(data, "redirect_uris", production)
    if uses_browser and not redirect_uris:
        raise InvalidClientMetadataError(
            "redirect_uris", "at least one is required for the authorization_code grant"
        )
    post_logout = _uri_list(data, "post_logout_redirect_uris", production)
    uris: dict[str, str] = {
        name: _web_uri(data[name], name, production) for name in _URI_FIELDS if name in data
    }
    _check_called_uris(uris, production)
    signing_algorithms = tuple(sorted(ASSERTION_ALGORITHMS))
    assertion_alg = _assertion_signing_alg(data, method, signing_algorithms)
    jwks = _check_client_authentication(data, method, grant_types, uris)
    scope = tuple(_text(data, "scope").split()) if "scope" in data else ("openid",)
    for index, token in enumerate(scope):
        if not _SCOPE_TOKEN.match(token):
            raise InvalidClientMetadataError(
                f"scope[{index}]", f"{token!r} is not a valid scope token"
            )
    if uses_browser and "openid" not in scope:
        raise InvalidClientMetadataError(
            "scope", "must include openid for the authorization_code grant"
        )

    subject_type = _choice(data, "subject_type", SUBJECT_TYPES, default="pairwise")
    if subject_type == "pairwise":
        try:
            sector_of(
                client_id="",
                redirect_uris=redirect_uris,
                sector_identifier_uri=uris.get("sector_identifier_uri"),
            )
        except ValueError:
            raise InvalidClientMetadataError(
                "sector_identifier_uri",
                "required for pairwise subjects when redirect_uris span several hosts "
                "(OpenID Connect Core 1.0, section 8.1)",
            ) from None
    contacts = tuple(_strings(data, "contacts"))
    for index, contact in enumerate(contacts):
        if not _EMAIL.match(contact):
            raise InvalidClientMetadataError(
                f"contacts[{index}]", f"{contact!r} is not an e-mail address"
            )

    return ClientMetadata(
        client_name=names,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout,
        grant_types=grant_types,
        response_types=response_types,
        token_endpoint_auth_method=method,
        scope=scope,
        subject_type=subject_type,
        id_token_signed_response_alg=_choice(
            data, "id_token_signed_response_alg", ALGORITHMS, default="RS256"
        ),
        userinfo_signed_response_alg=_choice(
            data, "userinfo_signed_response_alg", ALGORITHMS, default=None
        ),
        jwks=jwks,
        uris=uris,
        contacts=contacts,
        resource_server=_resource_server(data, method),
        default_acr_values=_choices(data, "default_acr_values", ACR_VALUES, default=()),
        backchannel_logout_session_required=_flag(data, "backchannel_logout_session_required"),
        purpose=_text(data, "purpose") if "purpose" in data else None,
        token_endpoint_auth_signing_alg=assertion_alg,
        request_object_signing_alg=_choice(
            data, "request_object_signing_alg", signing_algorithms, default=None
        ),
    )


def _check_called_uris(uris: dict[str, str], production: bool) -> None:
    """The URIs this server will call must not name a private, loopback or link-local address
    in production; a host name is resolved and checked by the service (and again at every
    call)."""
    outbound = Outbound(deadline_seconds=1, allow_loopback=not production)
    for name in CALLED_URIS:
        problem = outbound.target_problem(uris[name]) if name in uris else None
        if problem is not None:
            raise InvalidClientMetadataError(name, problem)


def _assertion_signing_alg(
    data: dict[str, Any], method: str, algorithms: tuple[str, ...]
) -> str | None:
    alg: str | None = _choice(data, "token_endpoint_auth_signing_alg", algorithms, default=None)
    if alg is not None and method != "private_key_jwt":
        raise InvalidClientMetadataError(
            "token_endpoint_auth_signing_alg", "applies only to private_key_jwt"
        )
    return alg


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InvalidClientMetadataError(name, "must be true or false")
    return value


def _resource_server(data: dict[str, Any], method: str) -> bool:
    """Not RFC 7591: marks an agency API that may introspect any agency's tokens (RFC 7662)."""
    resource_server = _flag(data, "resource_server")
    if resource_server and method == "none":
        raise InvalidClientMetadataError(
            "resource_server", "a resource server must authenticate (not auth method none)"
        )
    return resource_server


def _check_client_authentication(
    data: dict[str, Any], method: str, grant_types: tuple[str, ...], uris: dict[str, str]
) -> dict[str, Any] | None:
    jwks = data.get("jwks")
    if jwks is not None and (not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list)):
        raise InvalidClientMetadataError("jwks", "must be a JWK Set: an object with a keys array")
    if jwks is not None and "jwks_uri" in uris:
        raise InvalidClientMetadataError(
            "jwks", "give jwks or jwks_uri, not both (RFC 7591 section 2)"
        )
    if jwks is not None:
        _check_public_jwks(jwks)
    if method == "private_key_jwt" and jwks is None and "jwks_uri" not in uris:
        raise InvalidClientMetadataError(
            "token_endpoint_auth_method", "private_key_jwt needs jwks or jwks_uri"
        )
    if method == "none" and "client_credentials" in grant_types:
        raise InvalidClientMetadataError(
            "grant_types", "a public client (auth method none) cannot use client_credentials"
        )
    if "refresh_token" in grant_types and "authorization_code" not in grant_types:
        raise InvalidClientMetadataError("grant_types", "refresh_token needs authorization_code")

    return jwks


_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})


def _check_public_jwks(jwks: dict[str, Any]) -> None:
    if not jwks["keys"]:
        raise InvalidClientMetadataError("jwks", "must hold at least one key")
    for index, key in enumerate(jwks["keys"]):
        if not isinstance(key, dict):
            raise InvalidClientMetadataError(f"jwks.keys[{index}]", "must be a JWK object")
        if _PRIVATE_JWK_MEMBERS & set(key):
            raise InvalidClientMetadataError(
                f"jwks.keys[{index}]",
                "holds private or symmetric key material; register the public key only",
            )
    try:
        KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError, JoseError) as exc:
        raise InvalidClientMetadataError("jwks", f"is not a valid JWK Set ({exc})") from None


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidClientMetadataError(name, "must be a non-empty string")
    return value.strip()


def _strings(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidClientMetadataError(name, "must be an array of strings")
    return value


def _choice(data: dict[str, Any], name: str, allowed: tuple[str, ...], *, default: Any) -> Any:
    if name not in data:
        return default
    value = data[name]
    if value not in allowed:
        raise InvalidClientMetadataError(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _choices(
    data: dict[str, Any], name: str, allowed: tuple[str, ...], *, default: tuple[str, ...]
) -> tuple[str, ...]:
    if name not in data:
        return default
    values = _strings(data, name)
    if not values:
        raise InvalidClientMetadataError(name, "must not be empty")
    for index, value in enumerate(values):
        if value not in allowed:
            raise InvalidClientMetadataError(
                f"{name}[{index}]", f"{value!r} is not one of {', '.join(allowed)}"
            )
    return tuple(dict.fromkeys(values))


def _uri_list(data: dict[str, Any], name: str, production: bool) -> tuple[str, ...]:
    values = _strings(data, name)
    for index, value in enumerate(values):
        _redirect_uri(value, f"{name}[{index}]", production)
    if len(set(values)) != len(values):
        raise InvalidClientMetadataError(name, "lists the same URI twice")
    return tuple(values)


def _redirect_uri(value: str, name: str, production: bool) -> None:
    """OAuth 2.0 Security BCP: exact strings, no fragments, https except loopback and native apps."""
    parts = urlsplit(value)
    if not parts.scheme:
        raise InvalidClientMetadataError(name, "must be an absolute URI")
    if parts.fragment or "#" in value:
        raise InvalidClientMetadataError(name, "fragments are not allowed")
    if "*" in value:
        raise InvalidClientMetadataError(
            name, "wildcards are not allowed; register each URI exactly"
        )
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise InvalidClientMetadataError(name, "must name a host")
        if production and parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise InvalidClientMetadataError(
                name, "must use https in production (http only for loopback)"
            )
    elif "." not in parts.scheme:
        # RFC 8252 section 7.1: native apps use a reverse-domain private-use scheme.
        raise InvalidClientMetadataError(
            name, f"scheme {parts.scheme!r} is neither https nor a reverse-domain app scheme"
        )


def _web_uri(value: object, name: str, production: bool) -> str:
    if not isinstance(value, str):
        raise InvalidClientMetadataError(name, "must be a string")
    parts = urlsplit(value)
    if name == "backchannel_logout_uri" and (parts.fragment or "#" in value):
        raise InvalidClientMetadataError(
            name, "fragments are not allowed (Back-Channel Logout 1.0, section 2.2)"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidClientMetadataError(name, "must be an absolute http(s) URL")
    if production and parts.scheme != "https":
        raise InvalidClientMetadataError(name, "must use https in production")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
