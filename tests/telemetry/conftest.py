"""The running provider of tests/web, for telemetry seen from outside."""

from tests.web.conftest import live_server, provider, settings  # noqa: F401 (fixtures used here too)
