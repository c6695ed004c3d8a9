"""A server process's cache of client registrations, read again when the registry changes.

The token endpoint asks for the same few agencies thousands of times a second; their
registrations change a few times a year. Each process keeps the rows it has read, and at
most every ``check_interval`` seconds reads one counter (``clients_version``) that a
database trigger bumps on every change to ``clients``, by any writer. When it has moved,
every cached registration is dropped and read again on its next use. So a client disabled,
deleted, updated or given a new secret (the CLI, in another process) is seen by every server
process within ``check_interval`` seconds (DIGITAL_ID_CLIENTS_RELOAD_SECONDS), plus the
requests already past their lookup. The same pattern as the key ring (``keys.ring``).
"""

from __future__ import annotations

import copy
import threading
import time

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from digital_id.clients.models import Client, ClientsVersion


class ClientCache:
    def __init__(self, *, check_interval: float) -> None:
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._entries: dict[str, Client] = {}
        self._version: int | None = None
        self._checked_at = -float("inf")

    def find(self, session: Session, client_id: str) -> Client | None:
        """The client registered as ``client_id`` (enabled or not), or None. The object is
        shared by every request of this process until the registry changes: never attached
        to a session, never to be modified."""
        version = self._current_version(session)
        with self._lock:
            cached = self._entries.get(client_id)
        if cached is not None:
            return cached
        row = session.scalars(select(Client).where(Client.client_id == client_id)).one_or_none()
        if row is None:
            return None  # unknown ids are not remembered: anyone may make up any number
        shared = _detached_copy(row)
        with self._lock:
            # Read under ``version``: if the registry moved on meanwhile, the row may be older
            # than what the next request must see, so it is not kept. Without a version (its
            # row is missing) nothing is kept either.
            if version is not None and self._version == version:
                self._entries[client_id] = shared
        return shared

    def _current_version(self, session: Session) -> int | None:
        now = time.monotonic()
        if now - self._checked_at < self.check_interval:
            return self._version
        version = session.scalar(select(ClientsVersion.version).where(ClientsVersion.id == 1))
        with self._lock:
            if version != self._version:
                self._entries.clear()
                self._version = version
            self._checked_at = max(self._checked_at, now)
            return self._version


def _detached_copy(row: Client) -> Client:
    """A transient copy of ``row``: no session's identity map, expiry or flush touches it."""
    return Client(
        **{
            attribute.key: copy.deepcopy(getattr(row, attribute.key))
            for attribute in inspect(Client).column_attrs
        }
    )
