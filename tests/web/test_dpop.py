"""DPoP (RFC 9449): tokens bound to a key the client proves it holds, at the token endpoint
and UserInfo; proofs checked for method, URL, age, access-token hash, server nonce and
replay; bound tokens refused without their proof."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from sqlalchemy import func, select

from digital_id.app import create_app
from digital_id.db.types import utc_now
from digital_id.oidc.dpop import NONCE_WINDOW, DPoPNonces
from digital_id.oidc.models import SeenDPoPProof
from digital_id.web.housekeeping import purge_round
from tests.web.conftest import ISSUER, Agency, Provider, pkce_pair
from tests.web.test_authorization_endpoint import redirected
from tests.web.test_pushed_authorization_requests import authorization, start
from tests.web.test_revocation_and_introspection import machine_client

TOKEN_URL = ISSUER + "/token"
USERINFO_URL = ISSUER + "/userinfo"


class Holder:
    """A client's DPoP key, and proofs made with it as a client library makes them."""

    def __init__(self, key: ECKey | RSAKey | None = None, alg: str = "ES256") -> None:
        self.key = key or ECKey.generate_key("P-256")
        self.alg = alg

    @property
    def jkt(self) -> str:
        return str(self.key.thumbprint())

    def proof(
        self,
        method: str,
        url: str,
        *,
        nonce: str | None = None,
        access_token: str | None = None,
        header: dict[str, Any] | None = None,
        signer: Any = None,
        **claims: Any,
    ) -> str:
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if nonce is not None:
            body["nonce"] = nonce
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode()).digest()
            body["ath"] = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        body = {name: value for name, value in (body | claims).items() if value is not None}
        protected = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.key.as_dict(private=False)}
        protected = {
            name: value for name, value in (protected | (header or {})).items() if value is not None
        }
        return jwt.encode(protected, body, signer or self.key, algorithms=[protected["alg"]])


def machine(provider: Provider, **metadata: Any) -> Agency:
    return machine_client(provider, scope="pajak.read", **metadata)


def client_credentials(provider: Provider, agency: Agency, *proofs: str) -> httpx.Response:
    request = agency.authenticated({"grant_type": "client_credentials", "scope": "pajak.read"})
    headers = [("DPoP", proof) for proof in proofs]
    return provider.http.post("/token", headers=headers, **request)


def nonce_of(provider: Provider, agency: Agency, holder: Holder) -> str:
    """The server nonce, as a client learns it: from the refusal of its first proof."""
    refused = client_credentials(provider, agency, holder.proof("POST", TOKEN_URL))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "use_dpop_nonce"
    return refused.headers["dpop-nonce"]


def bound_token(provider: Provider, agency: Agency, holder: Holder) -> dict[str, Any]:
    nonce = nonce_of(provider, agency, holder)
    answer = client_credentials(provider, agency, holder.proof("POST", TOKEN_URL, nonce=nonce))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def seen_proofs(provider: Provider) -> int:
    with provider.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(SeenDPoPProof)).scalar_one()


def test_discovery_lists_the_proof_algorithms(provider):
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "RS256"]


def test_a_proof_without_the_server_nonce_is_answered_with_one(provider):
    agency, holder = machine(provider), Holder()
    refused = client_credentials(provider, agency, holder.proof("POST", TOKEN_URL))
    assert refused.status_code == 400
    assert refused.json()["error"] == "use_dpop_nonce"
    assert refused.headers["dpop-nonce"]
    assert seen_proofs(provider) == 0


def test_a_client_credentials_token_is_bound_to_the_proofs_key(provider):
    agency, holder = machine(provider), Holder()
    nonce = nonce_of(provider, agency, holder)
    answer = client_credentials(provider, agency, holder.proof("POST", TOKEN_URL, nonce=nonce))
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"
    assert answer.headers["dpop-nonce"]
    claims = provider.verify(answer.json()["access_token"])
    assert claims["cnf"] == {"jkt": holder.jkt}


def test_a_token_without_a_proof_stays_a_bearer_token(provider):
    agency = machine(provider)
    answer = client_credentials(provider, agency)
    assert answer.json()["token_type"] == "Bearer"
    assert "cnf" not in provider.verify(answer.json()["access_token"])


def test_a_client_registered_for_bound_tokens_gets_none_without_a_proof(provider):
    agency = machine(provider, dpop_bound_access_tokens=True)
    refused = client_credentials(provider, agency)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_dpop_proof"
    assert bound_token(provider, agency, Holder())["token_type"] == "DPoP"


def _other_key_signature(holder: Holder) -> str:
    return holder.proof("POST", TOKEN_URL, signer=ECKey.generate_key("P-256"))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda h, n: h.proof("POST", TOKEN_URL, nonce=n, header={"typ": "JWT"}), id="typ-jwt"),
        pytest.param(lambda h, n: h.proof("GET", TOKEN_URL, nonce=n), id="wrong-htm"),
        pytest.param(lambda h, n: h.proof("POST", ISSUER + "/introspect", nonce=n), id="wrong-htu"),
        pytest.param(lambda h, n: h.proof("POST", "https://elsewhere.example/token", nonce=n), id="other-host"),
        pytest.param(lambda h, n: h.proof("POST", TOKEN_URL, nonce=n, iat=int(time.time()) - 600), id="old-iat"),
        pytest.param(lambda h, n: h.proof("POST", TOKEN_URL, nonce=n, iat=int(time.time()) + 600), id="future-iat"),
        pytest.param(lambda h, n: h.proof("POST", TOKEN_URL, nonce=n, iat="now"), id="iat-not-a-number"),
        pytest.param(lambda h, n: h.proof("POST", TOKEN_URL, nonce=n, jti=None), id="no-jti"),
        pytest.param(lambda h, n: h.proof("POST", TOKEN_URL, nonce=n, jti="j" * 300), id="long-jti"),
        pytest.param(lambda h, n: _other_key_signature(h), id="signed-by-another-key"),
        pytest.param(
            lambda h, n: h.proof("POST", TOKEN_URL, nonce=n, header={"jwk": h.key.as_dict(private=True)}),
            id="private-key-in-jwk",
        ),
        pytest.param(
            lambda h, n: jwt.encode(
                {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "a2V5"}},
                {"jti": "x", "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time()), "nonce": n},
                OctKey.import_key(b"k" * 32),
                algorithms=["HS256"],
            ),
            id="hmac",
        ),
        pytest.param(lambda h, n: "not.a.proof", id="garbage"),
        pytest.param(lambda h, n: h.proof("POST", TOKEN_URL, nonce=n, header={"jwk": None}), id="no-jwk"),
    ],
)  # fmt: skip
def test_a_bad_proof_is_refused_and_issues_nothing(provider, make):
    agency, holder = machine(provider), Holder()
    nonce = nonce_of(provider, agency, holder)
    refused = client_credentials(provider, agency, make(holder, nonce))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_dpop_proof"
    assert "access_token" not in refused.json()


def test_a_nonce_in_any_characters_is_just_not_ours(provider):
    agency, holder = machine(provider), Holder()
    refused = client_credentials(provider, agency, holder.proof("POST", TOKEN_URL, nonce="é" * 10))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "use_dpop_nonce"
    assert "access_token" not in refused.json()


def test_two_dpop_headers_are_refused(provider):
    agency, holder = machine(provider), Holder()
    nonce = nonce_of(provider, agency, holder)
    refused = client_credentials(
        provider,
        agency,
        holder.proof("POST", TOKEN_URL, nonce=nonce),
        holder.proof("POST", TOKEN_URL, nonce=nonce),
    )
    assert refused.json()["error"] == "invalid_dpop_proof"


def test_a_forged_or_stale_nonce_is_answered_with_a_fresh_one(provider):
    agency, holder = machine(provider), Holder()
    for nonce in ("forged", DPoPNonces(b"another secret").current(utc_now())):
        refused = client_credentials(provider, agency, holder.proof("POST", TOKEN_URL, nonce=nonce))
        assert refused.json()["error"] == "use_dpop_nonce"


def test_a_proof_works_once(provider):
    agency, holder = machine(provider), Holder()
    nonce = nonce_of(provider, agency, holder)
    proof = holder.proof("POST", TOKEN_URL, nonce=nonce)
    assert client_credentials(provider, agency, proof).status_code == 200
    replay = client_credentials(provider, agency, proof)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_dpop_proof"


def test_one_proof_sent_many_times_at_once_gets_one_token(provider, issuer):
    """Real parallel requests to a live server: the seen-jti insert lets one through."""
    agency, holder = machine(provider), Holder()
    nonce = nonce_of(provider, agency, holder)
    proof = holder.proof("POST", issuer + "/token", nonce=nonce)
    request = agency.authenticated({"grant_type": "client_credentials", "scope": "pajak.read"})
    barrier = threading.Barrier(6)
    answers: list[int] = []

    def send() -> None:
        with httpx.Client(base_url=issuer) as http:
            barrier.wait()
            answers.append(http.post("/token", headers={"DPoP": proof}, **request).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [200, 400, 400, 400, 400, 400]


def test_without_nonces_a_fresh_proof_is_enough(provider):
    settings = provider.settings.model_copy(update={"dpop_nonce_required": False})
    agency, holder = machine(provider), Holder()
    with TestClient(create_app(settings), base_url=ISSUER) as http:
        relaxed = Provider(http, provider.engine, provider.key_store, settings, provider.tmp_path)
        answer = client_credentials(relaxed, agency, holder.proof("POST", TOKEN_URL))
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"
    assert "dpop-nonce" not in answer.headers


def test_an_rsa_key_proves_possession_too(provider):
    holder = Holder(RSAKey.generate_key(2048), alg="PS256")
    assert bound_token(provider, machine(provider), holder)["token_type"] == "DPoP"


def test_introspection_names_the_key_a_token_is_bound_to(provider):
    agency, holder = machine(provider), Holder()
    token = bound_token(provider, agency, holder)["access_token"]
    answer = provider.http.post("/introspect", **agency.authenticated({"token": token})).json()
    assert answer["active"] is True
    assert answer["token_type"] == "DPoP"
    assert answer["cnf"] == {"jkt": holder.jkt}


# --- UserInfo ------------------------------------------------------------------------------


def citizen_tokens(provider: Provider, holder: Holder) -> tuple[Agency, dict[str, Any]]:
    """A citizen's login whose code is redeemed with a proof: DPoP-bound tokens."""
    agency = provider.agency()
    code, verifier, _ = provider.code_for(agency, provider.citizen()["nik"])
    request = agency.token_request(code, verifier)
    first = provider.http.post(
        "/token", headers={"DPoP": holder.proof("POST", TOKEN_URL)}, **request
    )
    assert first.json()["error"] == "use_dpop_nonce"  # the code is not spent by that
    proof = holder.proof("POST", TOKEN_URL, nonce=first.headers["dpop-nonce"])
    answer = provider.http.post("/token", headers={"DPoP": proof}, **request)
    assert answer.status_code == 200, answer.text
    return agency, dict(answer.json())


def userinfo(provider: Provider, token: str, proof: str | None, scheme: str = "DPoP"):
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return provider.http.get("/userinfo", headers=headers)


def test_a_bound_token_reaches_userinfo_with_a_proof_of_its_key(provider):
    holder = Holder()
    _agency, tokens = citizen_tokens(provider, holder)
    assert tokens["token_type"] == "DPoP"
    token = tokens["access_token"]
    answer = userinfo(provider, token, holder.proof("GET", USERINFO_URL, access_token=token))
    assert answer.status_code == 200, answer.text
    assert answer.json()["sub"] == provider.verify(tokens["id_token"])["sub"]


def test_a_bound_token_presented_as_a_bearer_token_is_refused(provider):
    _agency, tokens = citizen_tokens(provider, Holder())
    refused = userinfo(provider, tokens["access_token"], None, scheme="Bearer")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    ("make", "error"),
    [
        pytest.param(lambda h, t: None, "invalid_dpop_proof", id="no-proof"),
        pytest.param(lambda h, t: h.proof("GET", USERINFO_URL), "invalid_dpop_proof", id="no-ath"),
        pytest.param(lambda h, t: h.proof("GET", USERINFO_URL, access_token=t + "x"), "invalid_dpop_proof", id="wrong-ath"),
        pytest.param(lambda h, t: h.proof("GET", USERINFO_URL, ath="é" * 43), "invalid_dpop_proof", id="non-ascii-ath"),
        pytest.param(lambda h, t: h.proof("POST", USERINFO_URL, access_token=t), "invalid_dpop_proof", id="wrong-htm"),
        pytest.param(lambda h, t: h.proof("GET", TOKEN_URL, access_token=t), "invalid_dpop_proof", id="wrong-htu"),
        pytest.param(lambda h, t: Holder().proof("GET", USERINFO_URL, access_token=t), "invalid_token", id="another-key"),
    ],
)  # fmt: skip
def test_userinfo_refuses_a_proof_that_does_not_hold(provider, make, error):
    holder = Holder()
    _agency, tokens = citizen_tokens(provider, holder)
    token = tokens["access_token"]
    refused = userinfo(provider, token, make(holder, token))
    assert refused.status_code == 401, refused.text
    assert refused.json() == {"error": error}
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith("DPoP ")
    assert f'error="{error}"' in challenge
    assert 'algs="ES256 PS256 RS256"' in challenge


def test_a_userinfo_proof_works_once(provider):
    holder = Holder()
    _agency, tokens = citizen_tokens(provider, holder)
    token = tokens["access_token"]
    proof = holder.proof("GET", USERINFO_URL, access_token=token)
    assert userinfo(provider, token, proof).status_code == 200
    assert userinfo(provider, token, proof).json() == {"error": "invalid_dpop_proof"}


def test_a_bearer_token_presented_with_the_dpop_scheme_is_refused(provider):
    tokens = provider.tokens_for(provider.agency(), provider.citizen()["nik"])
    token = tokens["access_token"]
    refused = userinfo(provider, token, Holder().proof("GET", USERINFO_URL, access_token=token))
    assert refused.status_code == 401
    assert refused.json() == {"error": "invalid_token"}
    assert refused.headers["www-authenticate"].startswith("DPoP ")


# --- the nonces and the replay cache -------------------------------------------------------


def test_a_nonce_is_good_for_its_window_and_the_next_only():
    nonces, now = DPoPNonces(b"s" * 32), utc_now()
    nonce = nonces.current(now)
    assert nonces.accepts(nonce, now + timedelta(seconds=NONCE_WINDOW))
    assert not nonces.accepts(nonce, now + timedelta(seconds=2 * NONCE_WINDOW + 1))
    assert not DPoPNonces(b"t" * 32).accepts(nonce, now)
    assert not nonces.accepts(None, now)


def test_housekeeping_purges_proofs_too_old_to_pass(provider):
    bound_token(provider, machine(provider), Holder())
    assert seen_proofs(provider) == 1
    assert purge_round(provider.engine, utc_now())["seen_dpop_proofs"] == 0
    purged = purge_round(provider.engine, utc_now() + timedelta(minutes=5))
    assert purged["seen_dpop_proofs"] == 1
    assert seen_proofs(provider) == 0


# --- codes and refresh tokens bound to a key ------------------------------------------------


def redeem(provider: Provider, agency: Agency, code: str, verifier: str, holder: Holder | None):
    """The code's token request, with a proof by ``holder`` (learning the nonce first)."""
    request = agency.token_request(code, verifier)
    if holder is None:
        return provider.http.post("/token", **request)
    first = provider.http.post(
        "/token", headers={"DPoP": holder.proof("POST", TOKEN_URL)}, **request
    )
    assert first.json()["error"] == "use_dpop_nonce"
    proof = holder.proof("POST", TOKEN_URL, nonce=first.headers["dpop-nonce"])
    return provider.http.post("/token", headers={"DPoP": proof}, **request)


@pytest.mark.parametrize("presenter", ["another-key", "no-proof"])
def test_a_code_bound_with_dpop_jkt_is_redeemed_only_with_that_key(provider, presenter):
    holder = Holder()
    agency = provider.agency()
    code, verifier, _ = provider.code_for(agency, provider.citizen()["nik"], dpop_jkt=holder.jkt)
    thief = Holder() if presenter == "another-key" else None
    refused = redeem(provider, agency, code, verifier, thief)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_dpop_proof"

    code, verifier, _ = provider.code_for(agency, provider.citizen()["nik"], dpop_jkt=holder.jkt)
    answer = redeem(provider, agency, code, verifier, holder)
    assert answer.status_code == 200, answer.text
    assert provider.verify(answer.json()["access_token"])["cnf"] == {"jkt": holder.jkt}


def test_a_malformed_dpop_jkt_is_refused(provider):
    agency = provider.agency()
    with pytest.raises(AssertionError):
        provider.code_for(agency, provider.citizen()["nik"], dpop_jkt="not-a-thumbprint")


def test_a_proof_at_par_binds_the_code_to_its_key(provider):
    holder, agency, citizen = Holder(), provider.agency(), provider.citizen()
    verifier, challenge = pkce_pair()
    form = agency.authenticated(authorization(agency, challenge))
    par_url = ISSUER + "/par"
    first = provider.http.post("/par", headers={"DPoP": holder.proof("POST", par_url)}, **form)
    assert first.json()["error"] == "use_dpop_nonce"
    proof = holder.proof("POST", par_url, nonce=first.headers["dpop-nonce"])
    pushed = provider.http.post("/par", headers={"DPoP": proof}, **form)
    assert pushed.status_code == 201, pushed.text
    page = start(provider, agency, pushed.json()["request_uri"])
    code = redirected(provider.decide(provider.log_in(page, citizen["nik"])))["code"]
    assert (
        redeem(provider, agency, code, verifier, Holder()).json()["error"] == "invalid_dpop_proof"
    )


def public_app(provider: Provider) -> Agency:
    return provider.agency(
        "none",
        grant_types=["authorization_code", "refresh_token"],
        scope="openid profile offline_access",
    )


def refresh(provider: Provider, agency: Agency, token: str, holder: Holder | None, nonce: str):
    request = agency.authenticated({"grant_type": "refresh_token", "refresh_token": token})
    headers = {"DPoP": holder.proof("POST", TOKEN_URL, nonce=nonce)} if holder else {}
    return provider.http.post("/token", headers=headers, **request)


def test_a_public_clients_refresh_token_is_bound_to_its_key(provider):
    holder, agency = Holder(), public_app(provider)
    code, verifier, _ = provider.code_for(
        agency, provider.citizen()["nik"], scope="openid profile offline_access", prompt="consent"
    )
    tokens = redeem(provider, agency, code, verifier, holder)
    assert tokens.status_code == 200, tokens.text
    nonce = tokens.headers["dpop-nonce"]
    refresh_token = tokens.json()["refresh_token"]

    for thief in (None, Holder()):
        refused = refresh(provider, agency, refresh_token, thief, nonce)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_dpop_proof"
    renewed = refresh(provider, agency, refresh_token, holder, nonce)
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["token_type"] == "DPoP"
    # The next generation is bound to the same key.
    again = refresh(provider, agency, renewed.json()["refresh_token"], Holder(), nonce)
    assert again.json()["error"] == "invalid_dpop_proof"


def test_a_confidential_clients_refresh_token_is_not_bound(provider):
    """It is bound to the client's own credential; a refresh with a proof binds the new
    access token, one without gives a bearer token."""
    holder = Holder()
    agency = provider.agency(
        grant_types=["authorization_code", "refresh_token"],
        scope="openid profile offline_access",
    )
    code, verifier, _ = provider.code_for(
        agency, provider.citizen()["nik"], scope="openid profile offline_access", prompt="consent"
    )
    tokens = redeem(provider, agency, code, verifier, holder).json()
    renewed = refresh(provider, agency, tokens["refresh_token"], None, "")
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["token_type"] == "Bearer"


def test_a_proof_from_a_client_that_fails_to_authenticate_is_not_kept(provider):
    """No one writes to the replay cache without credentials; the proof stays usable by the
    real client."""
    agency, holder = machine(provider), Holder()
    nonce = nonce_of(provider, agency, holder)
    proof = holder.proof("POST", TOKEN_URL, nonce=nonce)
    request = {"data": {"grant_type": "client_credentials"}, "auth": (agency.client_id, "wrong")}
    refused = provider.http.post("/token", headers={"DPoP": proof}, **request)
    assert refused.status_code == 401
    assert seen_proofs(provider) == 0
    assert client_credentials(provider, agency, proof).status_code == 200
    assert seen_proofs(provider) == 1
