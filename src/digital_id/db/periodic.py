"""A daemon thread that runs one round of a server process's background work every few
seconds: the shared mechanics of the rate limits' synchronisation, the audit checkpoints and
the housekeeping purges.

A round that fails (the database away, most often) is logged once, not once per round, and
retried at the next; nothing it does ever reaches a citizen's request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from digital_id.db.engine import database_unavailable


class Periodic:
    """Runs ``round`` every ``interval`` seconds from ``start()`` until ``stop()``; the first
    round comes one interval after the start, and with ``final_round`` one more runs as it
    stops (so what the process holds is not lost to a restart). Failures are logged on
    ``log`` as ``label``'s."""

    def __init__(
        self,
        name: str,
        round: Callable[[], object],
        *,
        interval: float,
        log: logging.Logger,
        label: str,
        final_round: bool = False,
    ) -> None:
        self._round = round
        self._interval = interval
        self._log = log
        self._label = label
        self._final_round = final_round
        self._failing = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self._guarded_round()
        if self._final_round:
            self._guarded_round()

    def _guarded_round(self) -> None:
        try:
            self._round()
        except Exception as exc:  # the database or key store is away: try again next round
            if not self._failing:
                self._failing = True
                if database_unavailable(exc):  # expected in an outage: one line, no traceback
                    self._log.warning(
                        "%s paused: database unavailable (%s); will retry",
                        self._label,
                        type(getattr(exc, "orig", None) or exc).__name__,
                    )
                else:
                    self._log.warning("%s failed; will retry", self._label, exc_info=True)
            return
        if self._failing:
            self._failing = False
            self._log.info("%s working again", self._label)
