"""The security tests drive the same running provider as the web tests."""

from tests.web.conftest import live_server, provider, settings
from tests.web.test_https_cookies import https_provider

__all__ = ["https_provider", "live_server", "provider", "settings"]
