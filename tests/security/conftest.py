"""The security tests drive the same running provider as the web tests; ``live_provider`` is
that provider served by uvicorn on a real port, for answers only a real server gives (a
500, headers sent from outside the app's middleware)."""

from collections.abc import Iterator

import httpx
import pytest

from tests.web.conftest import Provider, live_server, provider, settings
from tests.web.test_https_cookies import https_provider

__all__ = ["https_provider", "live_provider", "live_server", "provider", "settings"]


@pytest.fixture
def live_provider(provider: Provider, live_server: str) -> Iterator[Provider]:
    """The provider's helpers, acting over real HTTP: a new connection per request, as a
    server that answered 500 closes the one it was on."""
    with httpx.Client(base_url=live_server, headers={"Connection": "close"}) as http:
        yield Provider(
            http, provider.engine, provider.key_store, provider.settings, provider.tmp_path
        )
