"""A process's cache of client registrations: kept while the registry stands still, dropped
when any writer changes it (the database's trigger bumps the version), on both databases."""

from __future__ import annotations

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from digital_id.clients import service
from digital_id.clients.cache import ClientCache
from tests.clients.test_service import register


def reads_of_clients(engine, action) -> int:
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        if "FROM clients " in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(seen)


def test_a_registration_is_read_once_while_the_registry_stands_still(engine, session):
    client_id = register(session).client.client_id
    cache = ClientCache(check_interval=0)
    with Session(engine) as reader:
        assert reads_of_clients(engine, lambda: cache.find(reader, client_id)) == 1
        assert reads_of_clients(engine, lambda: cache.find(reader, client_id)) == 0
        assert cache.find(reader, "dgid_unknown") is None


def test_any_change_to_clients_drops_the_cache(engine, session):
    client_id = register(session).client.client_id
    cache = ClientCache(check_interval=0)
    changes = [
        lambda: service.set_enabled(session, client_id, enabled=False),
        # Plain SQL, as an operator might: the trigger counts it all the same.
        lambda: session.execute(text("UPDATE clients SET enabled = true")),
        lambda: session.execute(text("DELETE FROM clients")),
    ]
    expected_enabled = [False, True, None]
    for change, enabled in zip(changes, expected_enabled, strict=True):
        with Session(engine) as reader:
            cache.find(reader, client_id)
        change()
        session.commit()
        with Session(engine) as reader:
            found = cache.find(reader, client_id)
        assert (found.enabled if found is not None else None) is enabled


def test_within_the_interval_the_cache_answers_without_asking(engine, session):
    client_id = register(session).client.client_id
    cache = ClientCache(check_interval=3600)
    with Session(engine) as reader:
        cache.find(reader, client_id)
    service.set_enabled(session, client_id, enabled=False)
    session.commit()
    with Session(engine) as reader:
        assert reads_of_clients(engine, lambda: cache.find(reader, client_id)) == 0
        assert cache.find(reader, client_id).enabled is True  # stale, within its bound
