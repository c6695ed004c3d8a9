"""``digital-id openapi``: the HTTP API's OpenAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from digital_id import openapi
from digital_id.cli.common import console, fail

app = typer.Typer(help="The OpenAPI document of the HTTP API.", no_args_is_help=True)


@app.command()
def export(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the document.")
    ] = openapi.DOCUMENT_PATH,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Write nothing; fail if OUTPUT differs from the application's API."
        ),
    ] = False,
) -> None:
    """Write the OpenAPI document (sorted keys, so diffs show only API changes)."""
    rendered = openapi.render()
    if check:
        if not openapi.is_current(output, rendered):
            fail(
                f"{output} is stale: it does not describe the current HTTP API; "
                f"run `{openapi.EXPORT_COMMAND} --output {output}` and commit the result"
            )
        console.print(f"{output} is current.")
        return
    openapi.export(output, rendered)
    console.print(f"Wrote {output}.")
