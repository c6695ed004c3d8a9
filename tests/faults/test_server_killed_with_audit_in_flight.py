"""``kill -9`` of the whole server (supervisor and both workers) while audited token requests
are in flight: every request that was answered 200 has its audit event in the database,
and the trail, with the checkpoints the server signed while it ran, still verifies."""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time

import httpx
from sqlalchemy import select

from digital_id.audit.models import AuditCheckpoint, AuditEvent
from digital_id.config import load_settings
from tests.conftest import TEST_PASSPHRASE
from tests.processes import digital_id, digital_id_server, require_postgresql, server_env
from tests.web.conftest import Provider, free_port
from tests.web.test_revocation_and_introspection import machine_client

CALLERS = 8
ANSWERED_BEFORE_THE_KILL = 60


def test_every_answered_token_request_has_its_audit_event_after_a_kill_9(
    database_url, engine, key_store, keys_dir, tmp_path
):
    require_postgresql(database_url)
    key_store.generate("RS256", size=2048)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = server_env(
        database_url, keys_dir, issuer, rate_limit_token_per_client="0",
        audit_checkpoint_seconds="0.5",
    )  # fmt: skip
    settings = load_settings(
        database_url=database_url, keys_dir=keys_dir, keys_passphrase=TEST_PASSPHRASE,
        issuer=issuer, pin_argon2_memory_kib=64, pin_argon2_time_cost=1,
    )  # fmt: skip
    answered: list[str] = []  # the request ids answered 200
    failed: list[int | None] = []  # statuses other than 200 before the kill (None: no answer)
    killed = threading.Event()

    with (
        digital_id_server(env, port, tmp_path / "server.log", workers=2) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        arrange = Provider(  # type: ignore[arg-type]
            http, engine=engine, key_store=key_store, settings=settings, tmp_path=tmp_path
        )
        agencies = [machine_client(arrange) for _ in range(4)]

        def call(number: int) -> None:
            agency = agencies[number % len(agencies)]
            with httpx.Client(base_url=server.url, timeout=10) as client:
                while not killed.is_set():
                    request_id = secrets.token_hex(16)
                    form = agency.authenticated({"grant_type": "client_credentials"})
                    form.setdefault("headers", {})["X-Request-ID"] = request_id
                    try:
                        response = client.post("/token", **form)
                    except httpx.TransportError:
                        if not killed.is_set():
                            failed.append(None)
                        continue
                    if response.status_code == 200:
                        answered.append(request_id)
                    elif not killed.is_set():
                        failed.append(response.status_code)

        callers = [threading.Thread(target=call, args=(n,)) for n in range(CALLERS)]
        for caller in callers:
            caller.start()
        deadline = time.monotonic() + 60
        while len(answered) < ANSWERED_BEFORE_THE_KILL and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # past a checkpoint or two
        killed.set()  # from now on, failures are the kill's (answers still count)
        os.killpg(server.process.pid, signal.SIGKILL)  # the supervisor and every worker
        for caller in callers:
            caller.join(timeout=30)

    assert len(answered) >= ANSWERED_BEFORE_THE_KILL, server.log_tail()
    assert failed == []
    with engine.connect() as connection:
        recorded = set(
            connection.scalars(
                select(AuditEvent.request_id).where(AuditEvent.tag == "token:issued")
            )
        )
        signed = connection.scalars(select(AuditCheckpoint.id)).all()
    assert [request_id for request_id in answered if request_id not in recorded] == []
    assert signed, "the server signed no checkpoint while it ran"
    verified = digital_id(env, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert f"{len(signed)} signed checkpoints" in verified.stdout
