"""Validating an agency's registration metadata (RFC 7591 field names).

Every rejection names the field (with its index for lists) and the rule, in the form an
operator can fix at once: ``redirect_uris[1]: fragments are not allowed``. Unknown fields are
refused rather than ignored: for an operator-run registry a typo must not pass silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Final

from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from digital_id.clients import metadata_fields as fields
from digital_id.clients.agreements import Agreement, validate_agreement
from digital_id.clients.jwks import (
    ASSERTION_ALGORITHMS,
    CONTENT_ENCRYPTION,
    ENCRYPTION_ALGORITHMS,
    encryption_key_in,
)
from digital_id.clients.metadata_fields import InvalidClientMetadataError
from digital_id.clients.subjects import sector_of
from digital_id.keys.store import ALGORITHMS
from digital_id.levels import ACR_VALUES
from digital_id.outbound import Outbound

GRANT_TYPES: Final = (
    "authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT_TYPE
)  # fmt: skip
# The grants a citizen approves, in a browser: each needs openid among the scopes.
_CITIZEN_GRANTS: Final = frozenset({"authorization_code", DEVICE_CODE_GRANT_TYPE})
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
        "require_pushed_authorization_requests", "dpop_bound_access_tokens", "resources",
        "fapi2_security_profile", "id_token_encrypted_response_alg",
        "id_token_encrypted_response_enc", "userinfo_encrypted_response_alg",
        "userinfo_encrypted_response_enc",
        "resource_identifier",
        "purpose", "device_location", "agreement", "accepts_delegation", "token_endpoint_auth_signing_alg", "request_object_signing_alg",
    }
)  # fmt: skip
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 section 3.3
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
    # RFC 9126 section 6: this client's authorization requests must come through /par.
    require_pushed_authorization_requests: bool = False
    # RFC 9449 section 5.2: every access token of this client must be bound to a DPoP key.
    dpop_bound_access_tokens: bool = False
    # RFC 8707: the agency APIs this client may ask tokens for, by resource identifier; and,
    # for a resource server, its own identifier (the ``aud`` of the tokens made out to it).
    resources: tuple[str, ...] = ()
    resource_identifier: str | None = None
    # The FAPI 2.0 Security Profile: PAR, DPoP and private_key_jwt required, PS256 or ES256
    # only, codes of at most 60 s (``_fapi2``).
    fapi2_security_profile: bool = False
    # OpenID Connect Registration 1.0 section 2: what ID tokens and UserInfo answers are
    # encrypted with, to the client's encryption key (``_encryption``).
    encryption: dict[str, str] = field(default_factory=dict)
    purpose: str | None = None  # shown to citizens and put in their consent receipts
    # A kiosk's place, shown on the consent page of its device logins (RFC 8628 section 5.4:
    # the citizen must know which screen they are letting in).
    device_location: str | None = None
    agreement: Agreement | None = None  # the data-sharing agreement (clients.agreements)
    accepts_delegation: bool = False  # a parent may log in for their child (accounts.delegation)
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
        # The optional fields, each stored only when set (a flag only when true).
        optional: dict[str, Any] = {
            "userinfo_signed_response_alg": self.userinfo_signed_response_alg,
            "jwks": self.jwks,
            "resource_server": self.resource_server,
            "backchannel_logout_session_required": self.backchannel_logout_session_required,
            "require_pushed_authorization_requests": self.require_pushed_authorization_requests,
            "dpop_bound_access_tokens": self.dpop_bound_access_tokens,
            "fapi2_security_profile": self.fapi2_security_profile,
            "resources": list(self.resources),
            "resource_identifier": self.resource_identifier,
            "purpose": self.purpose,
            "device_location": self.device_location,
            "agreement": self.agreement.to_registration() if self.agreement else None,
            "accepts_delegation": self.accepts_delegation,
            "default_acr_values": list(self.default_acr_values),
            "token_endpoint_auth_signing_alg": self.token_endpoint_auth_signing_alg,
            "request_object_signing_alg": self.request_object_signing_alg,
            **self.encryption,
        }
        registration.update((name, value) for name, value in optional.items() if value)
        return registration


def validate_metadata(data: dict[str, Any], *, production: bool) -> ClientMetadata:
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise InvalidClientMetadataError(
            unknown[0], "is not a registration field this server knows"
        )

    names = {
        lang: fields.text(data, f"client_name#{lang}")
        for lang in LANGUAGES
        if f"client_name#{lang}" in data
    }
    if "client_name" in data:
        names.setdefault("id", fields.text(data, "client_name"))
    if not names:
        raise InvalidClientMetadataError(
            "client_name", "is required (client_name, client_name#id or client_name#en)"
        )

    grant_types = fields.choices(data, "grant_types", GRANT_TYPES, default=("authorization_code",))
    response_types = fields.choices(data, "response_types", ("code",), default=("code",))
    method = fields.choice(
        data, "token_endpoint_auth_method", AUTH_METHODS, default="client_secret_basic"
    )
    uses_browser = "authorization_code" in grant_types

    redirect_uris = fields.uri_list(data, "redirect_uris", production)
    if uses_browser and not redirect_uris:
        raise InvalidClientMetadataError(
            "redirect_uris", "at least one is required for the authorization_code grant"
        )
    post_logout = fields.uri_list(data, "post_logout_redirect_uris", production)
    uris: dict[str, str] = {
        name: fields.web_uri(data[name], name, production) for name in _URI_FIELDS if name in data
    }
    _check_called_uris(uris, production)
    signing_algorithms = tuple(sorted(ASSERTION_ALGORITHMS))
    assertion_alg = _assertion_signing_alg(data, method, signing_algorithms)
    jwks = _check_client_authentication(data, method, grant_types, uris)
    scope = tuple(fields.text(data, "scope").split()) if "scope" in data else ("openid",)
    for index, token in enumerate(scope):
        if not _SCOPE_TOKEN.match(token):
            raise InvalidClientMetadataError(
                f"scope[{index}]", f"{token!r} is not a valid scope token"
            )
    if _CITIZEN_GRANTS & set(grant_types) and "openid" not in scope:
        raise InvalidClientMetadataError(
            "scope", "must include openid for the authorization_code and device_code grants"
        )

    subject_type = fields.choice(data, "subject_type", SUBJECT_TYPES, default="pairwise")
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
    contacts = tuple(fields.strings(data, "contacts"))
    for index, contact in enumerate(contacts):
        if not _EMAIL.match(contact):
            raise InvalidClientMetadataError(
                f"contacts[{index}]", f"{contact!r} is not an e-mail address"
            )

    return _fapi2(
        ClientMetadata(
            client_name=names,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout,
            grant_types=grant_types,
            response_types=response_types,
            token_endpoint_auth_method=method,
            scope=scope,
            subject_type=subject_type,
            id_token_signed_response_alg=fields.choice(
                data, "id_token_signed_response_alg", ALGORITHMS, default="RS256"
            ),
            userinfo_signed_response_alg=fields.choice(
                data, "userinfo_signed_response_alg", ALGORITHMS, default=None
            ),
            jwks=jwks,
            uris=uris,
            contacts=contacts,
            resource_server=_resource_server(data, method),
            default_acr_values=fields.choices(data, "default_acr_values", ACR_VALUES, default=()),
            backchannel_logout_session_required=fields.flag(
                data, "backchannel_logout_session_required"
            ),
            require_pushed_authorization_requests=fields.flag(
                data, "require_pushed_authorization_requests"
            ),
            dpop_bound_access_tokens=fields.flag(data, "dpop_bound_access_tokens"),
            fapi2_security_profile=fields.flag(data, "fapi2_security_profile"),
            encryption=_encryption(data, jwks, uris),
            resources=fields.resource_list(data, "resources", production),
            resource_identifier=_resource_identifier(data, production),
            purpose=fields.text(data, "purpose") if "purpose" in data else None,
            device_location=fields.text(data, "device_location")
            if "device_location" in data
            else None,
            agreement=validate_agreement(data),
            accepts_delegation=fields.flag(data, "accepts_delegation"),
            token_endpoint_auth_signing_alg=assertion_alg,
            request_object_signing_alg=fields.choice(
                data, "request_object_signing_alg", signing_algorithms, default=None
            ),
        )
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
    alg: str | None = fields.choice(
        data, "token_endpoint_auth_signing_alg", algorithms, default=None
    )
    if alg is not None and method != "private_key_jwt":
        raise InvalidClientMetadataError(
            "token_endpoint_auth_signing_alg", "applies only to private_key_jwt"
        )
    return alg


def _resource_server(data: dict[str, Any], method: str) -> bool:
    """Not RFC 7591: marks an agency API, which may introspect the tokens made out to its
    ``resource_identifier`` (RFC 7662, RFC 8707)."""
    resource_server = fields.flag(data, "resource_server")
    if resource_server and method == "none":
        raise InvalidClientMetadataError(
            "resource_server", "a resource server must authenticate (not auth method none)"
        )
    return resource_server


# FAPI 2.0 Security Profile section 5.4: PS256, ES256 (or EdDSA, which we do not offer).
FAPI2_ALGORITHMS: Final = ("ES256", "PS256")


def _fapi2(metadata: ClientMetadata) -> ClientMetadata:
    """A client under the FAPI 2.0 Security Profile: refused unless its registration keeps
    to the profile, and then held to PAR and DPoP whatever else it says."""
    if not metadata.fapi2_security_profile:
        return metadata
    if metadata.token_endpoint_auth_method != "private_key_jwt":  # noqa: S105 (a method)
        raise InvalidClientMetadataError(
            "token_endpoint_auth_method", "a FAPI 2.0 client authenticates with private_key_jwt"
        )
    algorithms = {
        "token_endpoint_auth_signing_alg": metadata.token_endpoint_auth_signing_alg,
        "id_token_signed_response_alg": metadata.id_token_signed_response_alg,
        "request_object_signing_alg": metadata.request_object_signing_alg,
        "userinfo_signed_response_alg": metadata.userinfo_signed_response_alg,
    }
    for name, alg in algorithms.items():
        required = name in ("token_endpoint_auth_signing_alg", "id_token_signed_response_alg")
        if (alg is None and required) or (alg is not None and alg not in FAPI2_ALGORITHMS):
            raise InvalidClientMetadataError(
                name,
                f"a FAPI 2.0 client signs and is signed for with {' or '.join(FAPI2_ALGORITHMS)}",
            )
    return replace(
        metadata, require_pushed_authorization_requests=True, dpop_bound_access_tokens=True
    )


def _encryption(
    data: dict[str, Any], jwks: dict[str, Any] | None, uris: dict[str, str]
) -> dict[str, str]:
    """The ``*_encrypted_response_alg`` and ``_enc`` pairs: both or neither, only what we
    offer, and a key to encrypt to (checked now when the keys are inline)."""
    chosen: dict[str, str] = {}
    for purpose in ("id_token", "userinfo"):
        alg_field, enc_field = (
            f"{purpose}_encrypted_response_alg",
            f"{purpose}_encrypted_response_enc",
        )
        alg = fields.choice(data, alg_field, ENCRYPTION_ALGORITHMS, default=None)
        enc = fields.choice(data, enc_field, CONTENT_ENCRYPTION, default=None)
        if alg is None:
            if enc is not None:
                raise InvalidClientMetadataError(enc_field, f"needs {alg_field}")
            continue
        if enc is None:
            # The registration default, A128CBC-HS256, is not offered: say so, not guess.
            raise InvalidClientMetadataError(
                enc_field, f"must be given: {', '.join(CONTENT_ENCRYPTION)}"
            )
        if jwks is None and "jwks_uri" not in uris:
            raise InvalidClientMetadataError(
                alg_field, "needs jwks or jwks_uri with an encryption key"
            )
        inline = KeySet.import_key_set(jwks) if jwks is not None else None  # type: ignore[arg-type]
        if inline is not None and encryption_key_in(inline, alg) is None:
            raise InvalidClientMetadataError(
                alg_field, f"jwks holds no key to encrypt to with {alg}"
            )
        chosen |= {alg_field: alg, enc_field: enc}
    return chosen


def _resource_identifier(data: dict[str, Any], production: bool) -> str | None:
    """RFC 8707: the identifier a resource server's tokens are made out to."""
    if "resource_identifier" not in data:
        return None
    if data.get("resource_server") is not True:
        raise InvalidClientMetadataError(
            "resource_identifier", "only a resource server (resource_server: true) has one"
        )
    return fields.resource_uri(data["resource_identifier"], "resource_identifier", production)


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
    if "refresh_token" in grant_types and not _CITIZEN_GRANTS & set(grant_types):
        raise InvalidClientMetadataError(
            "grant_types", "refresh_token needs authorization_code or the device grant"
        )

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
