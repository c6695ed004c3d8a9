"""``digital-id consent``: check a citizen's consent receipt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from digital_id.cli.common import EXIT_FAILED, EXIT_USAGE, console, fail, key_store, settings_of
from digital_id.consent.receipts import InvalidReceiptError, verify
from digital_id.keys.errors import KeyStoreError

app = typer.Typer(help="Consent receipts.", no_args_is_help=True)


@app.command("verify-receipt")
def verify_receipt(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The receipt (the JWT, as downloaded).")],
    jwks: Annotated[
        Path | None,
        typer.Option(
            "--jwks", help="A saved copy of the public JWKS (default: this server's key store)."
        ),
    ] = None,
) -> None:
    """Check that Digital ID signed the receipt and it is unaltered; print what it records."""
    try:
        token = file.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"{file}: {exc.strerror}", EXIT_USAGE)
    try:
        if jwks is not None:
            keys = KeySet.import_key_set(json.loads(jwks.read_text(encoding="utf-8")))
        else:
            keys = KeySet.import_key_set(key_store(ctx).snapshot().public_jwks())  # type: ignore[arg-type]
    except (OSError, ValueError, JoseError, KeyStoreError) as exc:
        fail(f"cannot load the public keys: {exc}", EXIT_USAGE)
    try:
        receipt = verify(token, keys, issuer=settings_of(ctx).issuer)
    except InvalidReceiptError as exc:
        fail(f"{file}: not a valid receipt: {exc}", EXIT_FAILED)
    agency = receipt.get("agency", {})
    console.print(
        f"Valid receipt {receipt['jti']}: {receipt['decision']} for {agency.get('name')} "
        f"({agency.get('client_id')}) at {receipt['decided_at']}: {', '.join(receipt['claims'])}"
    )
