"""The token and UserInfo paths stay within their statement budgets (issue 15): counted at
the server's engine, one request at a time, so a change that adds a round trip fails here.

The audit trail's and the rate limits' statements are counted apart: they have budgets and
owners of their own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from digital_id.app import create_app
from digital_id.audit.models import AuditEvent
from tests.web.conftest import ISSUER, Provider
from tests.web.test_refresh_tokens import OFFLINE, offline_agency, refresh
from tests.web.test_revocation_and_introspection import client_credentials, machine_client

OWN_BUDGETS = ("audit_", "rate_limit_")


@pytest.fixture
def server(provider: Provider) -> Iterator[Provider]:
    """A server as deployed (client registrations cached; here for a minute), with its
    logout courier stopped so that only requests send statements."""
    settings = provider.settings.model_copy(update={"clients_reload_seconds": 60})
    with TestClient(create_app(settings), base_url=ISSUER) as http:
        courier = http.app.state.services.courier
        if courier is not None:
            courier.stop()
        yield Provider(http, provider.engine, provider.key_store, settings, provider.tmp_path)


@contextmanager
def counted(server: Provider) -> Iterator[list[str]]:
    """The statements the server sends while the block runs, but the audit trail's and the
    rate limits'."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not any(table in statement for table in OWN_BUDGETS):
            statements.append(statement)

    engine = server.http.app.state.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_client_credentials_reads_the_client_once_then_from_the_cache(server):
    machine = machine_client(server)
    with counted(server) as first:
        assert client_credentials(server, machine, scope="pajak.read").status_code == 200
    assert len([s for s in first if "FROM clients " in s]) == 1, first
    assert len(first) == 2, first  # the client, and the registry's version (once a minute)
    with counted(server) as cached:
        assert client_credentials(server, machine, scope="pajak.read").status_code == 200
    assert cached == []


def test_userinfo_is_one_statement(server):
    citizen = server.citizen()
    token = server.tokens_for(server.agency(), citizen["nik"])["access_token"]
    assert server.userinfo(token).status_code == 200  # the release is recorded once
    with counted(server) as statements:
        assert server.userinfo(token).status_code == 200
    assert len(statements) == 1, statements


def test_refresh_locks_and_reads_in_one_statement_then_rotates(server):
    """The token, its grant (locked) and the rule's facts in one SELECT, then the rotation's
    three writes in one statement on PostgreSQL (the new token's INSERT, with the family's
    generation and the old token's grace window as data-modifying CTEs). SQLite has no row
    locks, so its write lock is one statement more, nor such CTEs: its writes are three."""
    agency = offline_agency(server)
    citizen = server.citizen()
    tokens = server.tokens_for(agency, citizen["nik"], **OFFLINE)
    with counted(server) as statements:
        assert refresh(server, agency, tokens["refresh_token"]).status_code == 200
    postgresql = server.http.app.state.engine.dialect.name == "postgresql"
    assert len(statements) == (2 if postgresql else 5), "\n".join(statements)


def test_client_credentials_with_private_key_jwt_adds_only_the_assertion_s_jti(server):
    machine = machine_client(server, method="private_key_jwt")
    assert client_credentials(server, machine, scope="pajak.read").status_code == 200
    with counted(server) as statements:
        assert client_credentials(server, machine, scope="pajak.read").status_code == 200
    assert len(statements) == 1, "\n".join(statements)  # the seen jti (housekeeping purges)


def test_a_client_credentials_token_s_event_is_group_committed_apart_from_the_request(server):
    """The request changed nothing but its audit event: the process's group committer writes
    it (with any other waiting then), and the request answers once that commit is done.
    (The first request read the client into the cache: it wrote its event itself.)"""
    machine = machine_client(server)
    assert client_credentials(server, machine, scope="pajak.read").status_code == 200
    appenders: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "audit_chains" in statement or "audit_events" in statement:
            appenders.append(threading.current_thread().name)

    engine = server.http.app.state.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(3):
            assert client_credentials(server, machine, scope="pajak.read").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert appenders, "no audit append"
    assert set(appenders) == {"audit-group-commit"}, appenders
    with Session(server.engine) as session:
        tags = session.scalars(select(AuditEvent.tag)).all()
    assert tags.count("token:issued") == 4, tags
