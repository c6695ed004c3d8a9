"""The background thread in each server process that sends back-channel logouts.

It wakes when a logout has just been queued and every few seconds otherwise (for retries,
and for deliveries another worker queued or left behind). Failures are logged and retried;
they never reach a citizen's request.
"""

from __future__ import annotations

import logging
import threading

from digital_id.db.engine import database_unavailable
from digital_id.db.types import utc_now
from digital_id.keys.ring import KeyRing
from digital_id.sessions.backchannel import Courier

log = logging.getLogger(__name__)


class CourierThread:
    def __init__(self, courier: Courier, key_ring: KeyRing, *, interval: float) -> None:
        self._courier = courier
        self._key_ring = key_ring
        self._interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="logout-courier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                while (
                    not self._stopping.is_set()
                    and self._courier.deliver_due(
                        self._key_ring.current(), now=utc_now(), stopping=self._stopping.is_set
                    )
                    > 0
                ):
                    pass
            except Exception as exc:  # the database or key store is away: try again later
                if database_unavailable(exc):  # expected in an outage; one line, no traceback
                    log.warning(
                        "back-channel logout delivery paused: database unavailable (%s); will retry",
                        type(getattr(exc, "orig", None) or exc).__name__,
                    )
                else:
                    log.warning("back-channel logout delivery failed; will retry", exc_info=True)
            self._wake.wait(self._interval)
            self._wake.clear()
