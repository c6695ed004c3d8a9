"""``digital-id serve``: run the HTTP server."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from digital_id.cli.common import console, migrated_engine, settings_of


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve Digital ID over HTTP (the OpenID Connect endpoints arrive with the next releases)."""
    settings = settings_of(ctx)
    migrated_engine(ctx).dispose()  # refuse an unmigrated database before binding the port
    if settings.uses_development_passphrase:
        console.print(
            "[bold yellow]warning:[/] using the development key passphrase; never do this in production."
        )
    console.print(
        f"Digital ID {settings.env} server, issuer {settings.issuer}, on http://{host}:{port}"
    )
    uvicorn.run(
        "digital_id.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        server_header=False,
    )
