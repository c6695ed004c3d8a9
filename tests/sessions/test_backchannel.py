"""The back-channel logout courier on SQLite and PostgreSQL, against an agency endpoint that
takes its time (as a hostile one would)."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from digital_id.clients import service as clients
from digital_id.db.types import utc_now
from digital_id.outbound import Outbound
from digital_id.sessions.backchannel import Courier, queue_logout
from digital_id.sessions.models import LogoutDelivery
from tests.local_http import LocalServer, QuietHandler

ISSUER = "http://127.0.0.1:8000"


class SlowAgency:
    """A backchannel_logout_uri that answers after ``delay`` seconds, noting how many of the
    courier's database connections were checked out while the courier waited for it."""

    def __init__(self, engine: Engine, delay: float) -> None:
        self.connections_held: list[int] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                threading.Event().wait(delay)
                outer.connections_held.append(engine.pool.checkedout())  # type: ignore[attr-defined]
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.local = LocalServer(Handler, "/backchannel-logout")
        self.url = self.local.url

    def close(self) -> None:
        self.local.close()


def test_no_database_connection_waits_on_an_agency_s_slow_endpoint(engine, key_store):
    key_store.generate("RS256", size=2048)
    agency = SlowAgency(engine, delay=0.5)
    try:
        with Session(engine) as session:
            registered = clients.register(
                session,
                {
                    "client_name#id": "Layanan Pajak",
                    "redirect_uris": ["https://pajak.example.go.id/callback"],
                    "backchannel_logout_uri": agency.url,
                },
                production=False,
                active_algorithms={"RS256"},
            )
            client = registered.client
            for sid in ("first-session", "second-session"):
                queue_logout(session, client, sub="pairwise-sub", sid=sid, now=utc_now())
            session.commit()
        courier = Courier(
            engine,
            ISSUER,
            retry_base=timedelta(seconds=1),
            outbound=Outbound(deadline_seconds=5, allow_loopback=True),
        )
        assert courier.deliver_due(key_store.snapshot(), now=utc_now()) == 2
    finally:
        agency.close()
    assert agency.connections_held == [0, 0]
    with Session(engine) as session:
        delivered = session.scalars(select(LogoutDelivery.delivered_at)).all()
    assert len(delivered) == 2
    assert all(delivered)
