"""The CSP's form-action: forms post to us, and a page whose post may end at an agency (its
redirect after the login or consent, or form_post) allows that agency's origin and no other."""

from __future__ import annotations

from tests.web.conftest import pkce_pair


def form_action(response) -> list[str]:
    policy = response.headers["content-security-policy"]
    (directive,) = [part.strip() for part in policy.split(";") if "form-action" in part]
    return directive.split()[1:]


def test_pages_post_only_to_us(live_provider):
    for path in ("/activate", "/account", "/logout", "/healthz"):
        assert form_action(live_provider.http.get(path)) == ["'self'"], path


def test_the_authorization_pages_allow_the_requesting_agency_only(live_provider):
    citizen = live_provider.citizen()
    agency = live_provider.agency()
    login = live_provider.authorize(
        agency, code_challenge=pkce_pair()[1], code_challenge_method="S256"
    )
    consent = live_provider.log_in(login, citizen["nik"])

    for page in (login, consent):
        assert form_action(page) == ["'self'", "https://pajak.example.go.id"]


def test_a_form_post_response_allows_the_agency_it_posts_to(live_provider):
    citizen = live_provider.citizen()
    agency = live_provider.agency()
    live_provider.code_for(agency, citizen["nik"])  # consented, session open

    answer = live_provider.authorize(
        agency,
        response_mode="form_post",
        code_challenge=pkce_pair()[1],
        code_challenge_method="S256",
    )

    assert 'action="https://pajak.example.go.id/callback"' in answer.text
    assert form_action(answer) == ["'self'", "https://pajak.example.go.id"]
