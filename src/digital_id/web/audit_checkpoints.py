"""The background thread in each server process that signs audit checkpoints.

Every ``interval`` seconds it writes a checkpoint over every audit chain's head, unless some
worker (of any server) wrote one within that interval, so a fleet writes about one per
interval. Failures are logged and retried; they never reach a citizen's request.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from digital_id.audit import checkpoints
from digital_id.db.engine import database_unavailable
from digital_id.db.types import utc_now
from digital_id.keys.ring import KeyRing

log = logging.getLogger(__name__)


class CheckpointThread:
    def __init__(self, engine: Engine, key_ring: KeyRing, *, alg: str, interval: float) -> None:
        self._engine = engine
        self._key_ring = key_ring
        self._alg = alg
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        # The first after one interval: a server starting need not sign what is already signed.
        while not self._stopping.wait(self._interval):
            try:
                self.write_if_due()
            except Exception as exc:  # the database or key store is away: try again later
                if database_unavailable(exc):
                    log.warning("audit checkpoint skipped: database unavailable; will retry")
                else:
                    log.warning("audit checkpoint failed; will retry", exc_info=True)

    def write_if_due(self) -> None:
        key = self._key_ring.current().signing_key(self._alg)
        with Session(self._engine) as session, session.begin():
            checkpoints.write_if_due(
                session,
                key,
                self._alg,
                every=timedelta(seconds=self._interval * 0.9),  # not skipped for a late wake
                now=utc_now(),
            )
