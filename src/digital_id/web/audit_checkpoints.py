"""The background thread in each server process that signs audit checkpoints.

Every ``interval`` seconds it writes a checkpoint over every audit chain's head, unless some
worker (of any server) wrote one within that interval, so a fleet writes about one per
interval. Failures are logged and retried (``db.periodic``); they never reach a citizen's
request.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from digital_id.audit import checkpoints
from digital_id.db.periodic import Periodic
from digital_id.db.types import utc_now
from digital_id.keys.ring import KeyRing

log = logging.getLogger(__name__)


class CheckpointThread(Periodic):
    def __init__(self, engine: Engine, key_ring: KeyRing, *, alg: str, interval: float) -> None:
        # The first after one interval: a server starting need not sign what is already signed.
        super().__init__(
            "audit-checkpoints",
            self.write_if_due,
            interval=interval,
            log=log,
            label="audit checkpoints",
        )
        self._engine = engine
        self._key_ring = key_ring
        self._alg = alg
        self._interval = interval

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
