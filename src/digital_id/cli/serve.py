"""``digital-id serve``: run the HTTP server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
import uvicorn

from digital_id.app import REQUIRED_ALGORITHM
from digital_id.cli.common import console, fail, key_store, migrated_engine, settings_of
from digital_id.keys import KeyStoreError
from digital_id.telemetry.logs import log_config

# prometheus-client's own switch to multiprocess mode, read by each worker on import.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve Digital ID over HTTP: OpenID Connect, the login pages, health and readiness."""
    settings = settings_of(ctx)
    migrated_engine(ctx).dispose()  # refuse an unmigrated database before binding the port
    store = key_store(ctx)
    try:
        if settings.is_production:
            store.snapshot().signing_key(REQUIRED_ALGORITHM)
        elif (created := store.ensure_active(REQUIRED_ALGORITHM)) is not None:
            console.print(
                f"Development: generated the first {REQUIRED_ALGORITHM} signing key {created.kid}."
            )
    except KeyStoreError as exc:
        fail(str(exc))
    console.print(
        f"Digital ID {settings.env} server, issuer {settings.issuer}, on http://{host}:{port}"
    )
    with _metrics_shared_by(workers):
        uvicorn.run(
            "digital_id.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            proxy_headers=True,
            # Only the reverse proxy's word on the client address counts (audit trail, lockouts).
            forwarded_allow_ips=settings.forwarded_allow_ips,
            server_header=False,
            # Query strings carry login hints (NIKs) and codes, so uvicorn's request log is
            # off; the app writes its own access line with the route template instead.
            access_log=False,
            log_config=log_config(settings.log_level, settings.log_style),
        )


@contextmanager
def _metrics_shared_by(workers: int) -> Iterator[None]:
    """With several workers, a fresh directory for their metric files for this run only
    (files left by an earlier run would be added in), removed when the server stops."""
    if workers == 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="digital-id-metrics-") as directory:
        os.environ[METRICS_DIR_VARIABLE] = directory
        try:
            yield
        finally:
            del os.environ[METRICS_DIR_VARIABLE]
