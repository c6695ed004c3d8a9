"""Agency registration metadata: each rule, each message."""

import pytest

from digital_id.clients.metadata import validate_metadata
from digital_id.clients.metadata_fields import InvalidClientMetadataError

BASE = {
    "client_name#id": "Layanan Pajak",
    "client_name#en": "Tax Service",
    "redirect_uris": ["https://pajak.example.go.id/callback"],
}


def rejected(production: bool = True, **changes) -> InvalidClientMetadataError:
    data = {**BASE, **changes}
    with pytest.raises(InvalidClientMetadataError) as error:
        validate_metadata({k: v for k, v in data.items() if v is not None}, production=production)
    return error.value


def test_defaults_are_the_secure_ones():
    metadata = validate_metadata(BASE, production=True)
    assert metadata.client_name == {"id": "Layanan Pajak", "en": "Tax Service"}
    assert metadata.grant_types == ("authorization_code",)
    assert metadata.response_types == ("code",)
    assert metadata.subject_type == "pairwise"
    assert metadata.id_token_signed_response_alg == "RS256"
    assert metadata.scope == ("openid",)


def test_loopback_http_and_native_app_schemes_are_allowed_in_production():
    uris = [
        "http://127.0.0.1:8080/cb",
        "http://[::1]/cb",
        "http://localhost/cb",
        "id.go.pajak.app:/oauth2redirect",
    ]
    data = {
        **BASE,
        "redirect_uris": uris,
        "sector_identifier_uri": "https://pajak.example.go.id/uris.json",
    }
    assert validate_metadata(data, production=True).redirect_uris == tuple(uris)


@pytest.mark.parametrize(
    ("changes", "field", "message", "error"),
    [
        (
            {"redirect_uris": ["https://a.example/cb", "https://a.example/cb#x"]},
            "redirect_uris[1]",
            "fragments are not allowed",
            "invalid_redirect_uri",
        ),
        (
            {"redirect_uris": ["http://pajak.example.go.id/cb"]},
            "redirect_uris[0]",
            "must use https in production (http only for loopback)",
            "invalid_redirect_uri",
        ),
        (
            {"redirect_uris": ["https://*.example.go.id/cb"]},
            "redirect_uris[0]",
            "wildcards are not allowed; register each URI exactly",
            "invalid_redirect_uri",
        ),
        (
            {"redirect_uris": ["/relative"]},
            "redirect_uris[0]",
            "must be an absolute URI",
            "invalid_redirect_uri",
        ),
        (
            {"redirect_uris": ["javascript:alert(1)"]},
            "redirect_uris[0]",
            "scheme 'javascript' is neither https nor a reverse-domain app scheme",
            "invalid_redirect_uri",
        ),
        (
            {"redirect_uris": []},
            "redirect_uris",
            "at least one is required for the authorization_code grant",
            "invalid_redirect_uri",
        ),
        (
            {"redirect_uris": ["https://a.example/cb", "https://a.example/cb"]},
            "redirect_uris",
            "lists the same URI twice",
            "invalid_redirect_uri",
        ),
        (
            {"post_logout_redirect_uris": ["https://a.example/bye#top"]},
            "post_logout_redirect_uris[0]",
            "fragments are not allowed",
            "invalid_client_metadata",
        ),
        (
            {"response_types": ["token"]},
            "response_types[0]",
            "'token' is not one of code",
            "invalid_client_metadata",
        ),
        (
            {"grant_types": ["implicit"]},
            "grant_types[0]",
            "'implicit' is not one of authorization_code, refresh_token, client_credentials",
            "invalid_client_metadata",
        ),
        (
            {"token_endpoint_auth_method": "client_secret_jwt"},
            "token_endpoint_auth_method",
            "'client_secret_jwt' is not one of",
            "invalid_client_metadata",
        ),
        (
            {"token_endpoint_auth_method": "private_key_jwt"},
            "token_endpoint_auth_method",
            "private_key_jwt needs jwks or jwks_uri",
            "invalid_client_metadata",
        ),
        (
            {"jwks": {"keys": []}, "jwks_uri": "https://a.example/jwks"},
            "jwks",
            "give jwks or jwks_uri, not both",
            "invalid_client_metadata",
        ),
        (
            {"jwks": {"k": 1}},
            "jwks",
            "must be a JWK Set: an object with a keys array",
            "invalid_client_metadata",
        ),
        (
            {
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "client_credentials"],
            },
            "grant_types",
            "a public client (auth method none) cannot use client_credentials",
            "invalid_client_metadata",
        ),
        (
            {"grant_types": ["refresh_token", "client_credentials"], "redirect_uris": []},
            "grant_types",
            "refresh_token needs authorization_code or the device grant",
            "invalid_client_metadata",
        ),
        (
            {"scope": "profile"},
            "scope",
            "must include openid for the authorization_code and device_code grants",
            "invalid_client_metadata",
        ),
        (
            {"scope": 'openid "quoted"'},
            "scope[1]",
            "'\"quoted\"' is not a valid scope token",
            "invalid_client_metadata",
        ),
        (
            {"subject_type": "random"},
            "subject_type",
            "'random' is not one of pairwise, public",
            "invalid_client_metadata",
        ),
        (
            {"id_token_signed_response_alg": "none"},
            "id_token_signed_response_alg",
            "'none' is not one of RS256, PS256, ES256",
            "invalid_client_metadata",
        ),
        (
            {"logo_uri": "http://a.example/logo.png"},
            "logo_uri",
            "must use https in production",
            "invalid_client_metadata",
        ),
        (
            {"policy_uri": "ftp://a.example/p"},
            "policy_uri",
            "must be an absolute http(s) URL",
            "invalid_client_metadata",
        ),
        (
            {"contacts": ["not-an-email"]},
            "contacts[0]",
            "'not-an-email' is not an e-mail address",
            "invalid_client_metadata",
        ),
        (
            {"contacts": "a@b.example"},
            "contacts",
            "must be an array of strings",
            "invalid_client_metadata",
        ),
        (
            {"client_name#id": None, "client_name#en": None},
            "client_name",
            "is required",
            "invalid_client_metadata",
        ),
        (
            {"redirect_uri": ["https://typo.example"]},
            "redirect_uri",
            "is not a registration field this server knows",
            "invalid_client_metadata",
        ),
    ],
)
def test_each_rule_names_the_field_and_the_reason(changes, field, message, error):
    exc = rejected(**changes)
    assert exc.field == field
    assert exc.reason.startswith(message)
    assert exc.error == error
    assert str(exc).startswith(f"{field}: ")


def test_http_redirects_are_fine_in_development():
    metadata = validate_metadata(
        {**BASE, "redirect_uris": ["http://agency.test/cb"]}, production=False
    )
    assert metadata.redirect_uris == ("http://agency.test/cb",)


def test_client_credentials_only_needs_no_redirect_uri():
    data = {
        "client_name": "Agency API",
        "grant_types": ["client_credentials"],
        "scope": "register.read",
    }
    metadata = validate_metadata(data, production=True)
    assert metadata.redirect_uris == ()
    assert metadata.client_name == {"id": "Agency API"}


def _public_and_private_jwk():
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", private=True)
    return key.as_dict(private=False), key.as_dict(private=True)


def test_private_key_jwt_client_registers_its_public_key():
    public, _ = _public_and_private_jwk()
    data = {**BASE, "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}}
    assert validate_metadata(data, production=True).jwks == {"keys": [public]}


def test_a_private_key_in_jwks_is_refused():
    _, private = _public_and_private_jwk()
    exc = rejected(token_endpoint_auth_method="private_key_jwt", jwks={"keys": [private]})
    assert (
        str(exc)
        == "jwks.keys[0]: holds private or symmetric key material; register the public key only"
    )


def test_an_empty_jwks_is_refused():
    exc = rejected(token_endpoint_auth_method="private_key_jwt", jwks={"keys": []})
    assert str(exc) == "jwks: must hold at least one key"


def test_a_malformed_jwk_is_refused():
    exc = rejected(
        token_endpoint_auth_method="private_key_jwt", jwks={"keys": [{"kty": "EC", "crv": "P-256"}]}
    )
    assert exc.field == "jwks"
    assert exc.reason.startswith("is not a valid JWK Set")


def test_pairwise_clients_with_several_redirect_hosts_need_a_sector_identifier():
    uris = ["https://a.example.go.id/cb", "https://b.example.go.id/cb"]
    exc = rejected(redirect_uris=uris)
    assert exc.field == "sector_identifier_uri"
    assert validate_metadata(
        {**BASE, "redirect_uris": uris, "subject_type": "public"}, production=True
    )
    with_sector = {
        **BASE,
        "redirect_uris": uris,
        "sector_identifier_uri": "https://sector.example.go.id/uris.json",
    }
    assert (
        validate_metadata(with_sector, production=True)
        .uris["sector_identifier_uri"]
        .endswith("uris.json")
    )


def test_back_channel_logout_registration_fields():
    from digital_id.clients.metadata import validate_metadata
    from digital_id.clients.metadata_fields import InvalidClientMetadataError

    base = {
        "client_name": "Layanan",
        "redirect_uris": ["https://layanan.example.go.id/cb"],
        "scope": "openid",
    }
    metadata = validate_metadata(
        {
            **base,
            "backchannel_logout_uri": "https://layanan.example.go.id/bc",
            "backchannel_logout_session_required": True,
        },
        production=True,
    )
    assert metadata.to_registration()["backchannel_logout_session_required"] is True
    with pytest.raises(InvalidClientMetadataError, match="fragments"):
        validate_metadata(
            {**base, "backchannel_logout_uri": "https://layanan.example.go.id/bc#x"},
            production=True,
        )
    with pytest.raises(InvalidClientMetadataError, match="true or false"):
        validate_metadata({**base, "backchannel_logout_session_required": "yes"}, production=True)


def test_signing_algorithms_for_assertions_and_request_objects_can_be_registered():
    """RFC 7591 and OpenID Connect Registration 1.0 fields, once refused as unknown."""
    data = {
        **BASE,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": "https://pajak.example.go.id/jwks.json",
        "token_endpoint_auth_signing_alg": "ES256",
        "request_object_signing_alg": "PS256",
    }
    registration = validate_metadata(data, production=True).to_registration()
    assert registration["token_endpoint_auth_signing_alg"] == "ES256"
    assert registration["request_object_signing_alg"] == "PS256"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"token_endpoint_auth_signing_alg": "HS256"}, "token_endpoint_auth_signing_alg"),
        ({"token_endpoint_auth_signing_alg": "none"}, "token_endpoint_auth_signing_alg"),
        ({"request_object_signing_alg": "none"}, "request_object_signing_alg"),
        # client_secret_basic signs no assertion
        ({"token_endpoint_auth_signing_alg": "RS256"}, "token_endpoint_auth_signing_alg"),
    ],
)
def test_signing_algorithms_must_be_asymmetric_and_apply(changes, field):
    assert rejected(**changes).field == field
