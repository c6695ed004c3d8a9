"""The running provider of tests/web, for telemetry seen from outside, and a metrics listener
for it, as ``digital-id serve`` starts one."""

from collections.abc import Iterator

import pytest

from digital_id.telemetry.metrics import serve_metrics
from tests.web.conftest import live_server, provider, settings  # noqa: F401 (fixtures used here too)


@pytest.fixture
def metrics_url() -> Iterator[str]:
    """A metrics listener of this process (where the provider's app counts), on a free port."""
    server = serve_metrics("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
