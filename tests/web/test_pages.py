"""The citizen's pages: language, catalogue, CSRF, headers and cookies, accessibility,
activation, logout and the consent page, over HTTP on both databases."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.accounts.activation import issue_activation_code
from digital_id.accounts.models import CitizenAccount
from digital_id.consent.models import Consent
from digital_id.grants.models import AuthorizationGrant
from digital_id.oidc.claims import SUPPORTED_CLAIMS
from digital_id.sessions.models import BrowserSession
from digital_id.web.i18n import catalogue
from tests.web.conftest import PIN, hidden, pkce_pair, query_of

WEB = resources.files("digital_id.web")
TEMPLATES = sorted(
    (entry.name, entry.read_text(encoding="utf-8"))
    for entry in WEB.joinpath("templates").iterdir()
    if entry.name.endswith(".html")
)
BIRTH_DATE_PIN = "201090"  # the factory's birth date, 1990-10-20, as DDMMYY
NEW_PIN = "975318"


# --- reading pages -----------------------------------------------------------------------


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))


def elements(page: str, tag: str, **attrs: str) -> list[dict[str, str]]:
    """The attributes of every ``tag`` in the page that has all of ``attrs``."""
    parser = _Elements()
    parser.feed(page)
    return [
        found
        for name, found in parser.found
        if name == tag and all(found.get(key) == value for key, value in attrs.items())
    ]


def page_language(page: str) -> str:
    (root,) = elements(page, "html")
    return root["lang"]


def says(response: httpx.Response, key: str, language: str = "id", **values: str) -> bool:
    return catalogue(language)[key].format(**values) in html.unescape(response.text)


def action_of(page: httpx.Response) -> str:
    (form,) = elements(page.text, "form", method="post")
    return form["action"]


def pkce() -> dict[str, str]:
    return {"code_challenge": pkce_pair()[1], "code_challenge_method": "S256"}


def set_cookies(response: httpx.Response) -> dict[str, list[str]]:
    """Each cookie the response sets, by name, with its attributes in lower case."""
    cookies = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        cookies[name] = [part.strip().lower() for part in rest.split(";")[1:]]
    return cookies


def activation_code(provider: Any, nik: str) -> str:
    with Session(provider.engine) as session:
        code = issue_activation_code(session, nik)
        session.commit()
    return code


def activate(provider: Any, nik: str, code: str, pin: str, pin_confirm: str | None = None):
    form = provider.http.get("/activate")
    assert form.status_code == 200
    return provider.http.post(
        action_of(form),
        data={
            "csrf_token": hidden(form.text, "csrf_token"),
            "nik": nik,
            "code": code,
            "pin": pin,
            "pin_confirm": pin if pin_confirm is None else pin_confirm,
        },
    )


# --- 1. language -------------------------------------------------------------------------


def test_pages_are_in_bahasa_indonesia_by_default(provider):
    page = provider.authorize(provider.agency(), **pkce())
    assert page.status_code == 200
    assert page_language(page.text) == "id"
    assert says(page, "login.title")
    assert says(page, "login.intro", agency="Kantor Pajak Daerah")
    assert catalogue("en")["login.pin_help"] not in page.text


def test_ui_locales_en_on_the_authorization_request_gives_english(provider):
    citizen = provider.citizen()
    page = provider.authorize(provider.agency(), ui_locales="en", **pkce())
    assert page_language(page.text) == "en"
    assert says(page, "login.intro", "en", agency="Regional Tax Office")
    consent = provider.log_in(page, citizen["nik"])  # the language travels with the request
    assert page_language(consent.text) == "en"
    assert says(consent, "consent.approve", "en")


def test_accept_language_en_gives_english(provider):
    provider.http.headers["Accept-Language"] = "en-US,en;q=0.9"
    page = provider.authorize(provider.agency(), **pkce())
    assert page_language(page.text) == "en"
    assert says(page, "login.title", "en")
    assert page_language(provider.http.get("/activate").text) == "en"


def test_a_language_the_browser_marks_not_acceptable_is_not_chosen(provider):
    provider.http.headers["Accept-Language"] = "en;q=0, fr"
    assert page_language(provider.http.get("/activate").text) == "id"


def test_activation_and_logout_answer_in_the_language_they_were_shown_in(provider):
    login = provider.authorize(provider.agency(), ui_locales="en", **pkce())
    (link,) = [a for a in elements(login.text, "a") if a["href"].startswith("/activate")]
    for path in (link["href"], "/logout?ui_locales=en"):
        form = provider.http.get(path)
        assert page_language(form.text) == "en", path
        answer = provider.http.post(
            action_of(form),
            data={"csrf_token": hidden(form.text, "csrf_token"), "nik": "1" * 16, "code": "x"},
        )
        assert page_language(answer.text) == "en", path


def test_the_language_switch_sets_a_cookie_and_returns_to_the_page(provider):
    page = provider.authorize(provider.agency(), **pkce())
    (switch,) = elements(page.text, "a", hreflang="en")
    assert switch["href"].startswith("/language?")
    response = provider.http.get(switch["href"], follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/authorize?")
    assert "dgid_lang" in set_cookies(response)
    again = provider.http.get(response.headers["location"], follow_redirects=False)
    assert page_language(again.text) == "en"
    assert says(again, "login.title", "en")
    (back,) = elements(again.text, "a", hreflang="id")
    assert back["lang"] == "id"  # the switch names the other language in that language


def test_the_language_switch_redirects_only_to_a_local_path(provider):
    for target in ("https://evil.example/phish", "//evil.example/phish", "https:evil.example"):
        response = provider.http.get(
            "/language?" + urlencode({"to": "en", "next": target}), follow_redirects=False
        )
        assert response.status_code == 303, target
        assert response.headers["location"] == "/", target
    # Browsers read a backslash as a slash, so it must not start a scheme-relative URL either.
    response = provider.http.get(
        "/language?" + urlencode({"to": "en", "next": "/\\evil.example"}), follow_redirects=False
    )
    assert not re.match(r"^/[/\\]", response.headers["location"]), response.headers["location"]


# --- 2. the message catalogue --------------------------------------------------------------


def test_both_catalogues_have_exactly_the_same_keys():
    indonesian = json.loads(WEB.joinpath("locales/id.json").read_text(encoding="utf-8"))
    english = json.loads(WEB.joinpath("locales/en.json").read_text(encoding="utf-8"))
    assert set(indonesian) - set(english) == set()
    assert set(english) - set(indonesian) == set()
    assert all(value.strip() for value in [*indonesian.values(), *english.values()])


def test_every_key_the_templates_name_exists():
    named = {
        (template, match.group(2))
        for template, source in TEMPLATES
        for match in re.finditer(r"""\bt\(\s*(["'])([^"']+)\1\s*[,)]""", source)
    }
    assert len(named) > 20  # the pattern does find them
    for language in ("id", "en"):
        missing = {(template, key) for template, key in named if key not in catalogue(language)}
        assert missing == set(), language


def test_every_supported_claim_has_a_description():
    for language in ("id", "en"):
        missing = [
            claim
            for claim in SUPPORTED_CLAIMS
            if claim != "sub" and f"claim.{claim}" not in catalogue(language)
        ]
        assert missing == [], language


def test_every_pin_rule_has_a_message():
    source = "".join(
        resources.files("digital_id.accounts").joinpath(module).read_text(encoding="utf-8")
        for module in ("pins.py",)
    )
    rules = set(re.findall(r'InvalidPinError\(\s*"([a-z_]+)"', source))
    assert rules == {"format", "repeated", "sequence", "birth_date", "mismatch"}
    for language in ("id", "en"):
        missing = {rule for rule in rules if f"activate.pin.{rule}" not in catalogue(language)}
        assert missing == set(), language


def test_templates_hold_no_hard_coded_text():
    for template, source in TEMPLATES:
        text = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", "", source, flags=re.DOTALL)
        text = re.sub(r"<[^>]*>", "", text)
        assert not re.search(r"[^\W\d_]", text), (template, text.strip())


# --- 3. CSRF -------------------------------------------------------------------------------


class CsrfScene:
    """A browser at every form at once: a login page, a consent page (logged in), the
    activation and the logout page; and a snapshot of everything a POST could change."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.http = provider.http
        self.citizen = provider.citizen()
        self.newcomer = provider.citizen(pin=None, serial=77)
        self.code = activation_code(provider, self.newcomer["nik"])
        agency = provider.agency()
        login_page = provider.authorize(agency, **pkce())
        consent_page = provider.log_in(login_page, self.citizen["nik"])
        assert 'name="decision"' in consent_page.text
        self.token = hidden(consent_page.text, "csrf_token")
        self.posts = {
            "/authorize/login (right PIN)": (
                "/authorize/login",
                {
                    "authorization_request": hidden(login_page.text, "authorization_request"),
                    "nik": self.citizen["nik"],
                    "pin": PIN,
                },
            ),
            "/authorize/login (wrong PIN)": (
                "/authorize/login",
                {
                    "authorization_request": hidden(login_page.text, "authorization_request"),
                    "nik": self.citizen["nik"],
                    "pin": "135792",
                },
            ),
            "/authorize/consent": (
                "/authorize/consent",
                {
                    "authorization_request": hidden(consent_page.text, "authorization_request"),
                    "login_proof": hidden(consent_page.text, "login_proof"),
                    "decision": "approve",
                },
            ),
            "/activate": (
                "/activate",
                {"nik": self.newcomer["nik"], "code": self.code, "pin": PIN, "pin_confirm": PIN},
            ),
            "/logout": ("/logout", {}),
        }

    def snapshot(self) -> tuple[Any, ...]:
        with Session(self.provider.engine) as session:
            return (
                session.execute(select(BrowserSession.id, BrowserSession.ended_at)).all(),
                session.execute(select(Consent.id, Consent.revoked_at)).all(),
                session.execute(select(AuthorizationGrant.id)).all(),
                session.execute(
                    select(
                        CitizenAccount.id,
                        CitizenAccount.pin_hash,
                        CitizenAccount.failed_attempts,
                        CitizenAccount.activation_code_hash,
                    )
                ).all(),
            )

    def assert_all_refused(self, token: str | None, *, drop_browser_cookie: bool = False) -> None:
        before = self.snapshot()
        for label, (path, form) in self.posts.items():
            if drop_browser_cookie:
                self.http.cookies.delete("dgid_browser")
            data = form if token is None else {**form, "csrf_token": token}
            response = self.http.post(path, data=data, follow_redirects=False)
            if path == "/logout" and token is None:
                # A logout POST without the token is an RP-initiated logout without an
                # id_token_hint: the citizen is asked to confirm, and nothing ends.
                assert response.status_code == 200, (label, response.text[:500])
                assert 'name="csrf_token"' in response.text, label
            else:
                assert response.status_code == 400, (label, response.text[:500])
                assert says(response, "error.csrf"), label
            assert "dgid_session" not in set_cookies(response), label
            assert self.snapshot() == before, label
        assert self.http.cookies.get("dgid_session")  # still the same login


def test_a_post_without_the_csrf_token_is_refused(provider):
    CsrfScene(provider).assert_all_refused(None)


def test_a_post_with_a_wrong_csrf_token_is_refused(provider):
    scene = CsrfScene(provider)
    scene.assert_all_refused("0" * len(scene.token))
    scene.assert_all_refused(scene.token[:-1])
    scene.assert_all_refused("é" * len(scene.token))  # not ASCII: refused, not a server error


def test_a_post_without_the_browser_cookie_is_refused(provider):
    scene = CsrfScene(provider)
    scene.assert_all_refused(scene.token, drop_browser_cookie=True)


# --- 4. headers and cookies ----------------------------------------------------------------


def test_pages_send_the_security_headers(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    login = provider.authorize(agency, **pkce())
    pages = {
        "login": login,
        "consent": provider.log_in(login, citizen["nik"]),
        "error": provider.authorize(agency, redirect_uri="https://evil.example/cb", **pkce()),
        "activate": provider.http.get("/activate"),
        "logout": provider.http.get("/logout"),
    }
    assert 'name="decision"' in pages["consent"].text
    assert pages["error"].status_code == 400
    for name, response in pages.items():
        headers = response.headers
        assert headers["x-frame-options"] == "DENY", name
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy, name
        assert "unsafe-inline" not in policy, name
        assert headers["cache-control"] == "no-store", name
        assert headers["referrer-policy"] == "no-referrer", name
        assert headers["x-content-type-options"] == "nosniff", name


def test_the_cookies_are_http_only_and_same_site_lax(provider):
    citizen = provider.citizen()
    page = provider.authorize(provider.agency(), **pkce())
    logged_in = provider.log_in(page, citizen["nik"])
    for name, attributes in [
        ("dgid_browser", set_cookies(page)["dgid_browser"]),
        ("dgid_session", set_cookies(logged_in)["dgid_session"]),
    ]:
        assert "httponly" in attributes, name
        assert "samesite=lax" in attributes, name
        assert "secure" not in attributes, name  # the test issuer is http


# --- 5. accessibility ----------------------------------------------------------------------


def test_every_login_input_has_a_label(provider):
    page = provider.authorize(provider.agency(), **pkce()).text
    visible = [field for field in elements(page, "input") if field.get("type") != "hidden"]
    labelled = {label["for"] for label in elements(page, "label")}
    assert {field["name"] for field in visible} == {"nik", "pin"}
    assert {field["id"] for field in visible} == labelled


def test_the_login_inputs_are_numeric_and_the_pin_is_hidden_and_not_remembered(provider):
    page = provider.authorize(provider.agency(), **pkce()).text
    (nik,) = elements(page, "input", name="nik")
    (pin,) = elements(page, "input", name="pin")
    assert nik["inputmode"] == pin["inputmode"] == "numeric"
    assert pin["type"] == "password"
    assert pin["autocomplete"] == "off"


def test_a_failed_login_is_announced_as_an_alert(provider):
    citizen = provider.citizen()
    page = provider.authorize(provider.agency(), **pkce())
    assert not elements(page.text, "p", role="alert")
    failed = provider.log_in(page, citizen["nik"], "135792")
    (alert,) = elements(failed.text, "p", role="alert")
    assert alert["id"] in elements(failed.text, "input", name="nik")[0]["aria-describedby"]
    assert says(failed, "login.failed")


def test_pages_have_the_viewport_meta_tag(provider):
    for page in (provider.authorize(provider.agency(), **pkce()), provider.http.get("/activate")):
        (viewport,) = elements(page.text, "meta", name="viewport")
        assert "width=device-width" in viewport["content"]


# --- 6. activation -------------------------------------------------------------------------


def test_a_citizen_activates_with_the_code_and_logs_in_with_the_new_pin(provider):
    citizen = provider.citizen(pin=None)
    code = activation_code(provider, citizen["nik"])
    agency = provider.agency()
    before = provider.log_in(provider.authorize(agency, **pkce()), citizen["nik"])
    assert 'role="alert"' in before.text  # no PIN yet
    activated = activate(provider, citizen["nik"], code.lower(), NEW_PIN)
    assert activated.status_code == 200, activated.text[:500]
    assert says(activated, "activated.title")
    consent = provider.log_in(provider.authorize(agency, **pkce()), citizen["nik"], NEW_PIN)
    assert 'name="decision"' in consent.text
    assert "code" in query_of(provider.decide(consent).headers["location"])


def test_a_wrong_activation_code_is_refused(provider):
    citizen = provider.citizen(pin=None)
    activation_code(provider, citizen["nik"])
    response = activate(provider, citizen["nik"], "ABCD-EFGH-JKMN", NEW_PIN)
    assert response.status_code == 400
    assert says(response, "activate.invalid_code")
    assert not says(response, "activated.title")


@pytest.mark.parametrize(
    ("pin", "pin_confirm", "rule"),
    [
        (NEW_PIN, "975319", "mismatch"),
        ("123456", None, "sequence"),
        ("111111", None, "repeated"),
        (BIRTH_DATE_PIN, None, "birth_date"),
    ],
)
def test_a_pin_that_breaks_a_rule_is_refused_with_its_message(provider, pin, pin_confirm, rule):
    citizen = provider.citizen(pin=None)
    code = activation_code(provider, citizen["nik"])
    response = activate(provider, citizen["nik"], code, pin, pin_confirm)
    assert response.status_code == 400
    assert says(response, f"activate.pin.{rule}")
    (alert,) = elements(response.text, "p", role="alert")
    assert alert["id"] in elements(response.text, "input", name="pin")[0]["aria-describedby"]
    assert activate(provider, citizen["nik"], code, NEW_PIN).status_code == 200  # code kept


def test_an_activation_code_cannot_be_used_twice(provider):
    citizen = provider.citizen(pin=None)
    code = activation_code(provider, citizen["nik"])
    assert activate(provider, citizen["nik"], code, NEW_PIN).status_code == 200
    again = activate(provider, citizen["nik"], code, "864209")
    assert again.status_code == 400
    assert says(again, "activate.invalid_code")
    page = provider.authorize(provider.agency(), **pkce())
    assert 'name="decision"' in provider.log_in(page, citizen["nik"], NEW_PIN).text


# --- 7. logout -----------------------------------------------------------------------------


def log_out(provider: Any) -> httpx.Response:
    form = provider.http.get("/logout")
    assert form.status_code == 200
    assert says(form, "logout.body")
    return provider.http.post(action_of(form), data={"csrf_token": hidden(form.text, "csrf_token")})


def test_logging_out_shows_the_logged_out_page_and_ends_single_sign_on(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.code_for(agency, citizen["nik"])
    answer = query_of(provider.authorize(agency, prompt="none", **pkce()).headers["location"])
    assert "code" in answer  # logged in before
    response = log_out(provider)
    assert response.status_code == 200
    assert says(response, "logged_out.title")
    assert "max-age=0" in set_cookies(response)["dgid_session"]
    answer = query_of(provider.authorize(agency, prompt="none", **pkce()).headers["location"])
    assert answer["error"] == "login_required"


def test_an_access_token_from_before_logout_is_refused_at_userinfo(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    assert provider.userinfo(tokens["access_token"]).status_code == 200
    assert log_out(provider).status_code == 200
    response = provider.userinfo(tokens["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


# --- 8. the consent page -------------------------------------------------------------------


def consent_page(provider: Any, citizen: dict[str, Any], agency: Any, **params: str):
    page = provider.authorize(agency, **pkce(), **params)
    if 'name="pin"' in page.text:
        page = provider.log_in(page, citizen["nik"])
    assert 'name="decision"' in page.text, page.text[:500]
    return page


def test_the_consent_page_names_the_agency_in_the_page_language(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    indonesian = consent_page(provider, citizen, agency)
    assert says(indonesian, "consent.intro", agency="Kantor Pajak Daerah")
    assert "Regional Tax Office" not in indonesian.text
    english = consent_page(provider, citizen, agency, ui_locales="en")
    assert page_language(english.text) == "en"
    assert says(english, "consent.intro", "en", agency="Regional Tax Office")
    assert "Kantor Pajak Daerah" not in english.text


def test_the_consent_page_shows_a_logo_only_from_an_https_uri(provider):
    citizen = provider.citizen()
    https = provider.agency(logo_uri="https://pajak.example.go.id/logo.png")
    http = provider.agency(
        redirect_uris=["https://bansos.example.go.id/cb"],
        logo_uri="http://bansos.example.go.id/logo.png",
    )
    (logo,) = elements(consent_page(provider, citizen, https).text, "img")
    assert logo["src"] == "https://pajak.example.go.id/logo.png"
    assert logo["alt"] == catalogue("id")["consent.logo"].format(agency="Kantor Pajak Daerah")
    assert elements(consent_page(provider, citizen, http).text, "img") == []


def test_the_consent_page_links_the_privacy_policy_when_one_is_registered(provider):
    citizen = provider.citizen()
    with_policy = provider.agency(policy_uri="https://pajak.example.go.id/privasi")
    without = provider.agency(redirect_uris=["https://bansos.example.go.id/cb"])
    page = consent_page(provider, citizen, with_policy)
    (link,) = elements(page.text, "a", href="https://pajak.example.go.id/privasi")
    assert "noopener" in link["rel"]
    assert says(page, "consent.policy", agency="Kantor Pajak Daerah")
    other = consent_page(provider, citizen, without)
    assert not says(other, "consent.policy", agency="Kantor Pajak Daerah")
    assert not [a for a in elements(other.text, "a") if a["href"].startswith("https://")]
