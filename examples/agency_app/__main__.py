"""``python -m examples.agency_app``: run the demo agency, configured from the environment."""

from __future__ import annotations

import argparse
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import uvicorn

from examples.agency_app.app import AgencyConfig, create_app

DEFAULTS: Final = {
    "AGENCY_NAME": "Kantor Pajak Daerah (demo)",
    "AGENCY_ISSUER": "http://127.0.0.1:8000",
    "AGENCY_BASE_URL": "http://127.0.0.1:8001",
    "AGENCY_SCOPE": "openid profile",
}
REQUIRED: Final = ("AGENCY_CLIENT_ID", "AGENCY_PRIVATE_JWK_FILE")
DEFAULT_PORT: Final = 8001
ENVIRONMENT_HELP: Final = """\
environment:
  AGENCY_CLIENT_ID          client_id Digital ID assigned at registration (required)
  AGENCY_PRIVATE_JWK_FILE   path to the agency's private JWK, JSON with a kid (required)
  AGENCY_NAME               display name (default: Kantor Pajak Daerah (demo))
  AGENCY_ISSUER             Digital ID issuer URL (default: http://127.0.0.1:8000)
  AGENCY_BASE_URL           this app's URL; register {base}/callback as redirect URI,
                            {base}/logged-out as post-logout redirect URI and
                            {base}/backchannel-logout as backchannel_logout_uri
                            (default: http://127.0.0.1:8001)
  AGENCY_SCOPE              scopes to request (default: openid profile)
  AGENCY_SESSION_SECRET     key for the session cookie's signature (default: random at
                            every start, which logs everyone out on restart)
"""


def config_from_environment(environ: Mapping[str, str]) -> AgencyConfig:
    """The configuration the variables in ``environ`` describe, or ValueError naming the problem."""
    missing = [name for name in REQUIRED if not environ.get(name)]
    if missing:
        raise ValueError(f"set {', '.join(missing)}")
    jwk_file = Path(environ["AGENCY_PRIVATE_JWK_FILE"])
    try:
        private_jwk = json.loads(jwk_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(
            f"AGENCY_PRIVATE_JWK_FILE: cannot read {jwk_file} ({exc.strerror})"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"AGENCY_PRIVATE_JWK_FILE: {jwk_file} is not JSON ({exc})") from None
    if not isinstance(private_jwk, dict):
        raise ValueError(f"AGENCY_PRIVATE_JWK_FILE: {jwk_file} must hold one JWK object")

    def setting(name: str) -> str:
        return environ.get(name) or DEFAULTS[name]

    return AgencyConfig(
        name=setting("AGENCY_NAME"),
        issuer=setting("AGENCY_ISSUER"),
        client_id=environ["AGENCY_CLIENT_ID"],
        private_jwk=private_jwk,
        base_url=setting("AGENCY_BASE_URL"),
        scope=setting("AGENCY_SCOPE"),
        session_secret=environ.get("AGENCY_SESSION_SECRET") or secrets.token_urlsafe(32),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.agency_app",
        description="A demo agency web app that logs citizens in with Digital ID.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument(
        "--port", type=int, help=f"port (default: the port of AGENCY_BASE_URL, else {DEFAULT_PORT})"
    )
    args = parser.parse_args(argv)
    try:
        config = config_from_environment(os.environ)
    except ValueError as exc:
        parser.error(str(exc))
    port = args.port or urlsplit(config.base_url).port or DEFAULT_PORT
    uvicorn.run(create_app(config), host=args.host, port=port)


if __name__ == "__main__":
    main()
