"""What the OpenAPI document says about requests the routes parse themselves and responses
they build by hand.

authlib reads the OAuth endpoints' raw form pairs, so FastAPI cannot infer those bodies or
answers from the function signatures. These small models and response tables document them
for ``openapi/openapi.json`` (and the fuzz test that holds the server to it); the pages' own
forms are documented by the models they are read with (``web.forms``).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

FORM = "application/x-www-form-urlencoded"
HTML = "text/html"
JWT = "application/jwt"

# --- bodies ------------------------------------------------------------------------------


class OAuthError(BaseModel):
    """An OAuth 2.0 error (RFC 6749 section 5.2; RFC 6750 section 3.1 for bearer tokens)."""

    model_config = ConfigDict(extra="allow")
    error: str = Field(examples=["invalid_request"])
    error_description: str | None = None


class TokenResponse(BaseModel):
    """A successful token response (RFC 6749 section 5.1; OpenID Connect Core 3.1.3.3)."""

    model_config = ConfigDict(extra="allow")
    access_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int
    scope: str | None = None
    id_token: str | None = None
    refresh_token: str | None = None


class PushedRequest(BaseModel):
    """The request URI of a pushed authorization request (RFC 9126 section 2.2)."""

    request_uri: str = Field(examples=["urn:ietf:params:oauth:request_uri:Vq3UqB2YvLMnVb1mZ9pH1g"])
    expires_in: int = Field(examples=[60])


class DeviceAuthorizationResponse(BaseModel):
    """A kiosk's codes (RFC 8628 section 3.2): it shows ``user_code`` and a QR code of
    ``verification_uri_complete``, and polls `/token` with ``device_code``."""

    device_code: str
    user_code: str = Field(examples=["WDJB-MJHT"])
    verification_uri: str = Field(examples=["https://id.example.go.id/device"])
    verification_uri_complete: str = Field(
        examples=["https://id.example.go.id/device?user_code=WDJB-MJHT"]
    )
    expires_in: int = Field(examples=[600])
    interval: int = Field(examples=[5])


class Introspection(BaseModel):
    """An introspection answer (RFC 7662 section 2.2): ``active`` alone when the token is not."""

    model_config = ConfigDict(extra="allow")
    active: bool
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    sub: str | None = None
    aud: str | list[str] | None = None
    iss: str | None = None


class UserInfo(BaseModel):
    """The consented claims (OpenID Connect Core 5.3.2); ``sub`` always."""

    model_config = ConfigDict(extra="allow")
    sub: str


class ProviderMetadata(BaseModel):
    """OpenID Provider metadata (OpenID Connect Discovery 1.0 section 3): the required fields;
    the rest are listed in the live document."""

    model_config = ConfigDict(extra="allow")
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]


class JsonWebKey(BaseModel):
    """A public signing key (RFC 7517 section 4)."""

    model_config = ConfigDict(extra="allow")
    kty: str
    kid: str
    alg: str
    use: str


class PersonalData(BaseModel):
    """The citizen's copy of their data: register record, agencies with access, releases."""

    record: dict[str, str]
    agencies: list[dict[str, Any]]
    access_history: list[dict[str, Any]]


class JsonWebKeySet(BaseModel):
    keys: list[JsonWebKey]


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class NotReady(BaseModel):
    status: str = Field(examples=["unavailable"])
    problems: list[str]


# --- forms -------------------------------------------------------------------------------


class TokenRequest(BaseModel):
    """RFC 6749 sections 4.1.3, 4.4.2 and 6, with PKCE (RFC 7636) and client authentication
    by HTTP Basic, form fields (``client_secret_post``) or a signed assertion (RFC 7523)."""

    grant_type: str = Field(examples=["authorization_code"])
    code: str = ""
    device_code: str = Field(
        default="",
        description="RFC 8628: with grant_type urn:ietf:params:oauth:grant-type:device_code.",
    )
    redirect_uri: str = ""
    code_verifier: str = ""
    refresh_token: str = ""
    scope: str = ""
    resource: str = Field(
        default="",
        description="RFC 8707: the agency API the access token is for; for a code or a refresh token, the one its grant is for.",
    )
    client_id: str = ""
    client_secret: str = ""
    client_assertion_type: str = ""
    client_assertion: str = ""


class TokenLookup(BaseModel):
    """A token to revoke (RFC 7009 section 2.1) or introspect (RFC 7662 section 2.1), with the
    same client authentication as the token endpoint."""

    token: str
    token_type_hint: str = Field(default="", examples=["refresh_token"])
    client_id: str = ""
    client_secret: str = ""
    client_assertion_type: str = ""
    client_assertion: str = ""


class AuthorizationRequest(BaseModel):
    """OpenID Connect Core 3.1.2.1 (``request``: a signed request object, section 6.1)."""

    response_type: str = Field(default="", examples=["code"])
    client_id: str = ""
    redirect_uri: str = ""
    scope: str = Field(default="", examples=["openid profile"])
    state: str = ""
    nonce: str = ""
    response_mode: str = ""
    prompt: str = ""
    max_age: str = ""
    ui_locales: str = ""
    login_hint: str = ""
    acr_values: str = ""
    claims: str = ""
    request: str = ""
    code_challenge: str = ""
    code_challenge_method: str = ""
    dpop_jkt: str = Field(
        default="",
        description="The thumbprint of the DPoP key the code is bound to (RFC 9449 section 10).",
    )
    resource: str = Field(
        default="",
        description="The agency API the access tokens are to be made out to (RFC 8707): one of the client's registered `resources`, or the UserInfo endpoint.",
    )
    request_uri: str = Field(
        default="",
        description="A request URI from `/par` (RFC 9126); with it, only `client_id` is read besides.",
    )


class PushedAuthorizationRequest(AuthorizationRequest):
    """An authorization request pushed to `/par` (RFC 9126 section 2.1), with the same client
    authentication as the token endpoint; `request_uri` is refused here."""

    client_secret: str = ""
    client_assertion_type: str = ""
    client_assertion: str = ""


class DeviceAuthorizationRequest(BaseModel):
    """A kiosk's device authorization request (RFC 8628 section 3.1), with the same client
    authentication as the token endpoint; ``claims`` and ``acr_values`` as at `/authorize`."""

    scope: str = Field(examples=["openid profile"])
    claims: str = ""
    acr_values: str = ""
    ui_locales: str = ""
    client_id: str = ""
    client_secret: str = ""
    client_assertion_type: str = ""
    client_assertion: str = ""


class UiLocales(BaseModel):
    ui_locales: str = Field(default="", description="The page's language: `id` or `en`.")


class LogoutRequest(BaseModel):
    """RP-Initiated Logout 1.0 section 2."""

    id_token_hint: str = ""
    post_logout_redirect_uri: str = ""
    client_id: str = ""
    state: str = ""
    ui_locales: str = ""


def form(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads ``model``'s fields from an urlencoded form."""
    return {
        "requestBody": {
            "required": required,
            "content": {FORM: {"schema": model.model_json_schema()}},
        }
    }


def query(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads ``model``'s fields from the query string."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {"type": "string"},
                **({"description": spec["description"]} if "description" in spec else {}),
            }
            for name, spec in schema["properties"].items()
        ]
    }


class JwtResponse(Response):
    """A compact JWT (RFC 7519 section 10.3.1)."""

    media_type = JWT


# --- answers -----------------------------------------------------------------------------

Responses = dict[int | str, dict[str, Any]]


def page(description: str) -> dict[str, Any]:
    return {"description": description, "content": {HTML: {"schema": {"type": "string"}}}}


def redirect(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "Location": {
                "description": "Where the browser goes next.",
                "required": True,
                "schema": {"type": "string"},
            }
        },
    }


def oauth_error(description: str) -> dict[str, Any]:
    return {"description": description, "model": OAuthError}


# RFC 9449: the proof of possession a request may carry (the token endpoint, UserInfo).
DPOP_PROOF: dict[str, Any] = {
    "parameters": [
        {
            "name": "DPoP",
            "in": "header",
            "required": False,
            "description": "A DPoP proof (RFC 9449): the access token issued is bound to its key. Needed for a DPoP-bound token at UserInfo (`Authorization: DPoP …`).",
            "schema": {"type": "string"},
        }
    ]
}
CHALLENGE = {
    "WWW-Authenticate": {
        "description": "The authentication scheme and, after a failed attempt, the error.",
        "required": True,
        "schema": {"type": "string"},
    }
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer"},
    }
}

# A page with a form refuses a missing or foreign CSRF token with the HTML error page.
CSRF_REFUSED: Responses = {400: page("The form's CSRF token is missing or not this browser's.")}
# Database outage: the request changed nothing; try again shortly.
PAGE_UNAVAILABLE: Responses = {503: page("The service is temporarily unavailable.")}
OAUTH_UNAVAILABLE: Responses = {
    503: oauth_error("`temporarily_unavailable`: the service cannot reach its database.")
}


def throttled_page() -> Responses:
    return {429: {**page("Too many attempts; wait before trying again."), "headers": RETRY_AFTER}}


def throttled_oauth() -> Responses:
    return {
        429: {**oauth_error("Too many requests; wait before trying again."), "headers": RETRY_AFTER}
    }
