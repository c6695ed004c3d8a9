"""Per-address rate limits count an IPv6 client by its /64, the least any subscriber is given,
against a live server behind a proxy that says who the client is (X-Forwarded-For)."""

from __future__ import annotations

import httpx
import pytest

from digital_id.throttle.limiter import address_subject
from tests.web.conftest import PIN, Provider, pkce_pair

WINDOW = 3600
WRONG_PIN = "135790"


@pytest.fixture
def settings(settings):
    return settings.model_copy(
        update={
            "rate_limit_login_per_ip": 4,
            "rate_limit_login_per_ip_seconds": WINDOW,
            "rate_limit_login_per_nik": 100,
        }
    )


def browser_at(live_provider: Provider, address: str) -> Provider:
    """The live provider seen from ``address``, as the trusted proxy (loopback) reports it."""
    http = httpx.Client(
        base_url=str(live_provider.http.base_url),
        headers={"X-Forwarded-For": address, "Connection": "close"},
    )
    return Provider(
        http,  # type: ignore[arg-type]
        live_provider.engine,
        live_provider.key_store,
        live_provider.settings,
        live_provider.tmp_path,
    )


def log_in(browser: Provider, agency, nik: str, pin: str = WRONG_PIN) -> httpx.Response:
    page = browser.authorize(agency, code_challenge=pkce_pair()[1], code_challenge_method="S256")
    return browser.log_in(page, nik, pin)


def test_addresses_of_one_ipv6_64_share_one_login_limit(live_provider):
    agency = live_provider.agency()
    for host in range(1, 5):  # a new address each time, as a sprayer with a /64 would
        sprayer = browser_at(live_provider, f"2001:db8:1:2::{host}")
        assert log_in(sprayer, agency, f"317101200990{host:04d}").status_code == 200

    refused = log_in(browser_at(live_provider, "2001:db8:1:2:ffff::9"), agency, "3171012009900009")

    assert refused.status_code == 429
    citizen = live_provider.citizen()
    neighbour = browser_at(live_provider, "2001:db8:1:3::1")  # another subscriber's /64
    assert 'name="decision"' in log_in(neighbour, agency, citizen["nik"], pin=PIN).text


@pytest.mark.parametrize(
    ("address", "subject"),
    [
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("203.0.113.7", "203.0.113.7"),
        (None, ""),
    ],
)
def test_the_rate_limit_subject_of_an_address(address, subject):
    assert address_subject(address) == subject
