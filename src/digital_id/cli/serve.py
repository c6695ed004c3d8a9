"""``digital-id serve``: run the HTTP server."""

from __future__ import annotations

import logging.config
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
import uvicorn

from digital_id.cli.common import console, fail, key_store, migrated_engine, settings_of
from digital_id.cli.workers import (
    PortUnavailableError,
    WorkerStartupError,
    reuse_port_available,
    run_workers,
)
from digital_id.keys import KeyStoreError
from digital_id.keys.store import SECRET_NAMES
from digital_id.telemetry import metrics
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
    metrics_host: Annotated[
        str | None,
        typer.Option(help="Address of the metrics listener [default: DIGITAL_ID_METRICS_HOST]."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Port of the metrics listener [default: DIGITAL_ID_METRICS_PORT].",
        ),
    ] = None,
) -> None:
    """Serve Digital ID over HTTP: OpenID Connect, the login pages, health and readiness; and
    Prometheus metrics on a listener of their own (loopback by default)."""
    settings = settings_of(ctx)
    migrated_engine(ctx).dispose()  # refuse an unmigrated database before binding the port
    store = key_store(ctx)
    try:
        for alg in settings.signing_algorithms:
            if settings.is_production:
                store.snapshot().signing_key(alg)
            elif (created := store.ensure_active(alg)) is not None:
                console.print(f"Development: generated the first {alg} signing key {created.kid}.")
        if not settings.is_production:
            # Made here, before the workers start: a worker that made one would change the
            # manifest under the others, and each would decrypt every key again.
            for name in SECRET_NAMES:
                store.secret(name)
    except KeyStoreError as exc:
        fail(str(exc))
    console.print(
        f"Digital ID {settings.env} server, issuer {settings.issuer}, on http://{host}:{port}"
    )
    metrics_address = (metrics_host or settings.metrics_host, metrics_port or settings.metrics_port)
    with (
        _metrics_shared_by(workers) as workers_directory,
        _metrics_listener(metrics_address, workers_directory, enabled=settings.metrics_enabled),
    ):
        config: dict[str, Any] = {
            "app": "digital_id.app:create_app",
            "factory": True,
            "proxy_headers": True,
            # Only the reverse proxy's word on the client address counts (audit trail, lockouts).
            "forwarded_allow_ips": settings.forwarded_allow_ips,
            "server_header": False,
            # Query strings carry login hints (NIKs) and codes, so uvicorn's request log is
            # off; the app writes its own access line with the route template instead.
            "access_log": False,
            "log_config": log_config(settings.log_level, settings.log_style),
        }
        if workers == 1 or not reuse_port_available():
            uvicorn.run(host=host, port=port, workers=workers, **config)
            return
        logging.config.dictConfig(config["log_config"])  # the supervisor's own lines
        try:
            run_workers(workers, host, port, config)
        except (PortUnavailableError, WorkerStartupError) as exc:
            fail(str(exc))


@contextmanager
def _metrics_shared_by(workers: int) -> Iterator[str | None]:
    """With several workers, a fresh directory for their metric files for this run only
    (files left by an earlier run would be added in), removed when the server stops."""
    if workers == 1:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="digital-id-metrics-") as directory:
        os.environ[METRICS_DIR_VARIABLE] = directory
        try:
            yield directory
        finally:
            del os.environ[METRICS_DIR_VARIABLE]


@contextmanager
def _metrics_listener(
    address: tuple[str, int], workers_directory: str | None, *, enabled: bool
) -> Iterator[None]:
    """The metrics listener, in this process (which supervises the workers, or is the one
    worker), for as long as the server runs. An address that cannot be bound stops the start:
    a server whose monitoring silently failed would be found out only in an incident."""
    if not enabled:
        yield
        return
    host, port = address
    try:
        server = metrics.serve_metrics(host, port, workers_directory=workers_directory)
    except OSError as exc:
        fail(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); set "
            "DIGITAL_ID_METRICS_PORT or --metrics-port, or DIGITAL_ID_METRICS_ENABLED=false"
        )
    console.print(f"Prometheus metrics on http://{_url_host(host)}:{port}/metrics")
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
