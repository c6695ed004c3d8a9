"""The ``digital-id`` command: one module per noun, each a thin layer over a service."""

from __future__ import annotations

import typer

from digital_id.cli import audit, citizens, clients, consent, db, keys, openapi, registry, serve
from digital_id.cli.common import load_cli_settings

app = typer.Typer(
    name="digital-id",
    help="Operate Digital ID: migrate the database, manage the register, run the server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(registry.app, name="registry")
app.add_typer(keys.app, name="keys")
app.add_typer(clients.app, name="clients")
app.add_typer(citizens.app, name="citizens")
app.add_typer(audit.app, name="audit")
app.add_typer(consent.app, name="consent")
app.add_typer(openapi.app, name="openapi")
app.command("serve")(serve.serve)


@app.callback()
def _root(ctx: typer.Context) -> None:
    ctx.obj = load_cli_settings()


def main() -> None:
    app()
