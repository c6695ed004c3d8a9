"""``python -m examples.demo setup`` prepares the demo; ``... agency NAME`` runs one agency.

Setup is idempotent: it keeps each agency's key and client_id under ``var/demo/`` and updates
the registration on later runs, and gives the same three citizens the same PINs; the third is
a parent who may act for a child (the social-aid agency accepts delegation). Development
only: it sets PINs directly, which the CLI refuses in production.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.accounts.activation import set_pin
from digital_id.accounts.delegation import children_in_care
from digital_id.accounts.pins import InvalidPinError, PinHasher
from digital_id.clients import service as clients
from digital_id.config import load_settings
from digital_id.db.engine import create_engine_for
from digital_id.keys.files import ensure_private_directory, write_atomic
from digital_id.keys.store import KeyStore
from digital_id.registry.models import Citizen
from digital_id.registry.service import age_on
from examples.agency_app.app import AgencyConfig, create_app
from examples.agency_app.keys import generate_client_key, public_jwks
from examples.kiosk_app.app import DEVICE_GRANT, KioskConfig
from examples.kiosk_app.app import create_app as create_kiosk_app

DEMO_DIR = Path("var/demo")
DEMO_PINS = ("246810", "135790", "864213")


@dataclass(frozen=True)
class DemoAgency:
    slug: str
    names: dict[str, str]
    base_url: str
    scope: str
    accepts_delegation: bool = False  # a parent may log in for their child

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        """RP-Initiated Logout 1.0: where Digital ID sends the browser after logging out."""
        return f"{self.base_url}/logged-out"

    @property
    def backchannel_logout_uri(self) -> str:
        """Back-Channel Logout 1.0: where Digital ID POSTs the logout token."""
        return f"{self.base_url}/backchannel-logout"


# Different hosts, so the two agencies are different sectors and see different `sub` values.
AGENCIES = (
    DemoAgency(
        "tax",
        {"id": "Badan Pendapatan Daerah (demo)", "en": "Regional Tax Office (demo)"},
        "http://127.0.0.1:8001",
        "openid profile nik address",
    ),
    DemoAgency(
        "aid",
        {"id": "Layanan Bantuan Sosial (demo)", "en": "Social Aid Service (demo)"},
        "http://localhost:8002",
        "openid profile age family",
        accepts_delegation=True,
    ),
)


# The third agency is a kiosk at a service counter: the device grant, no redirect URI.
KIOSK = DemoAgency(
    "kiosk",
    {"id": "Anjungan Layanan Pajak (demo)", "en": "Tax Service Kiosk (demo)"},
    "http://127.0.0.1:8003",
    "openid profile",
)
KIOSK_LOCATION = "MPP Digital Kabupaten Banyuwangi, loket 3 (demo)"


def setup() -> None:
    settings = load_settings()
    if settings.is_production:
        raise SystemExit("the demo sets PINs directly and is refused in production")
    console = Console()
    ensure_private_directory(DEMO_DIR)
    store = KeyStore(settings.keys_dir, settings.keys_passphrase.get_secret_value())
    for alg in settings.signing_algorithms:
        store.ensure_active(alg)
    engine = create_engine_for(settings.database_url)
    hasher = PinHasher(
        store.secret("pin_pepper"),
        memory_kib=settings.pin_argon2_memory_kib,
        time_cost=settings.pin_argon2_time_cost,
    )
    with Session(engine, expire_on_commit=False) as session, session.begin():
        for agency in AGENCIES:
            _register(session, agency, settings.issuer)
        _register(session, KIOSK, settings.issuer)
        citizens = _demo_citizens(session, hasher)
    engine.dispose()

    table = Table(title="Demo citizens (development only)")
    for column in ("NIK", "PIN", "Name", "Born", "May act for (at the social-aid demo)"):
        table.add_column(column)
    for citizen, pin, children in citizens:
        table.add_row(citizen.nik, pin, citizen.full_name, citizen.birth_date.isoformat(), children)
    console.print(table)
    for agency in (*AGENCIES, KIOSK):
        console.print(f"{agency.names['en']}: {agency.base_url}  (scopes: {agency.scope})")


def _register(session: Session, agency: DemoAgency, issuer: str) -> None:
    key_file = DEMO_DIR / f"{agency.slug}.jwk.json"
    if not key_file.exists():
        write_atomic(key_file, json.dumps(generate_client_key("RS256")).encode())
    private_jwk = json.loads(key_file.read_text())
    metadata: dict[str, Any] = {
        **{f"client_name#{lang}": name for lang, name in agency.names.items()},
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": public_jwks(private_jwk),
        "scope": agency.scope,
    }
    if agency is KIOSK:
        metadata |= {
            "redirect_uris": [],
            "grant_types": [DEVICE_GRANT],
            "device_location": KIOSK_LOCATION,
        }
    else:
        metadata |= {
            "redirect_uris": [agency.redirect_uri],
            "post_logout_redirect_uris": [agency.post_logout_redirect_uri],
            "backchannel_logout_uri": agency.backchannel_logout_uri,
            "grant_types": ["authorization_code"],
            "accepts_delegation": agency.accepts_delegation,
        }
    config_file = DEMO_DIR / f"{agency.slug}.json"
    client_id = json.loads(config_file.read_text())["client_id"] if config_file.exists() else None
    try:
        if client_id is None:
            raise clients.UnknownClientError("not registered yet")
        clients.update(session, client_id, metadata, production=False, active_algorithms={"RS256"})
    except clients.UnknownClientError:
        registered = clients.register(
            session, metadata, production=False, active_algorithms={"RS256"}
        )
        client_id = registered.client.client_id
    config = {
        "client_id": client_id,
        "name": agency.names["id"],
        "issuer": issuer,
        "base_url": agency.base_url,
        "scope": agency.scope,
    }
    write_atomic(config_file, json.dumps(config, indent=2).encode())


def _demo_citizens(session: Session, hasher: PinHasher) -> list[tuple[Citizen, str, str]]:
    """Three active adults of the register, each with a known PIN and the children they may
    act for: the first two with none, the third a parent with a child in their care."""
    today = date.today()
    chosen: list[tuple[Citizen, str, str]] = []
    for citizen in session.scalars(
        select(Citizen).where(Citizen.status == "active").order_by(Citizen.id).limit(5000)
    ):
        if len(chosen) == len(DEMO_PINS) or age_on(citizen.birth_date, today) < 18:
            continue
        children = children_in_care(session, citizen, today)
        if bool(children) != (len(chosen) == len(DEMO_PINS) - 1):
            continue
        pin = DEMO_PINS[len(chosen)]
        try:
            set_pin(session, hasher, nik=citizen.nik, pin=pin)
        except InvalidPinError:
            continue  # the PIN happens to be this citizen's birth date
        named = ", ".join(
            f"{child.full_name} ({age_on(child.birth_date, today)})" for child in children
        )
        chosen.append((citizen, pin, named or "-"))
    if len(chosen) < len(DEMO_PINS):
        raise SystemExit(
            "the register holds too few active adults and parents; import the synthetic "
            "citizens first"
        )
    return chosen


def run_agency(slug: str) -> None:
    config: dict[str, Any] = json.loads((DEMO_DIR / f"{slug}.json").read_text())
    private_jwk = json.loads((DEMO_DIR / f"{slug}.jwk.json").read_text())
    agency = AgencyConfig(
        name=config["name"],
        issuer=config["issuer"],
        client_id=config["client_id"],
        private_jwk=private_jwk,
        base_url=config["base_url"],
        scope=config["scope"],
        session_secret=secrets.token_urlsafe(32),
    )
    port = int(config["base_url"].rsplit(":", 1)[1])
    host = config["base_url"].split("//", 1)[1].rsplit(":", 1)[0]
    uvicorn.run(
        create_app(agency),
        host="127.0.0.1" if host == "localhost" else host,
        port=port,
        log_level="warning",
    )


def run_kiosk() -> None:
    config: dict[str, Any] = json.loads((DEMO_DIR / f"{KIOSK.slug}.json").read_text())
    kiosk = KioskConfig(
        name=config["name"],
        issuer=config["issuer"],
        client_id=config["client_id"],
        private_jwk=json.loads((DEMO_DIR / f"{KIOSK.slug}.jwk.json").read_text()),
        scope=config["scope"],
    )
    uvicorn.run(create_kiosk_app(kiosk), host="127.0.0.1", port=8003, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.demo")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="register the demo agencies and give three citizens PINs")
    agency = commands.add_parser("agency", help="run one demo agency")
    agency.add_argument("slug", choices=[a.slug for a in AGENCIES])
    commands.add_parser("kiosk", help="run the demo kiosk (the device grant)")
    args = parser.parse_args(argv)
    if args.command == "setup":
        setup()
    elif args.command == "kiosk":
        run_kiosk()
    else:
        run_agency(args.slug)


if __name__ == "__main__":
    main(sys.argv[1:])
