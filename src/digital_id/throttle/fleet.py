"""Rate limits counted in each process's memory and synchronised with the fleet in the
background: a hit costs a hash and a lock, no database round trip.

Each process keeps, per subject and window, the fleet's total as the database last told it
(``known``), the hits it is sending now (``sending``) and the hits it counted since
(``unsent``), and passes a hit while ``known + sending + unsent < hits``. A background
thread (``FleetSync``) sends the counted hits every ``interval`` seconds in one batched
upsert, ``hits = hits + delta … RETURNING hits``, which also tells it the fleet's total for
every window it sent: one statement per round, however many subjects. A window this process
did not count in since the last round needs no fresh total: it passed nothing on the old one.

Tolerance. With W processes, where one process passes at most m hits of a subject between
two of its rounds (m ≈ its rate times (interval + a round's duration)), the fleet passes at most
``hits + (W - 1) · m`` in a window, and some schedules of rounds reach that bound.
Proof: take R, the latest round (in the database's order) after which its own process
passed a hit before its next round. That process passed only while R's total plus its hits
since stayed within ``hits``. Any other process passes after R only until its next round (a
pass after that would make a later such round than R), and its hits missing from R's total
are those since its last round before R: one interval, at most m. One process alone never
passes more than ``hits``: the total it knows includes every hit it sent. While the database
is away nothing is sent, so each process stops at ``hits`` on its own: at most W · hits.
tests/throttle/test_fleet.py checks the bound on random schedules and one that reaches it.

Which limits count this way: those on the token path (a client's token budget, failed client
authentications per address), where a client secret's entropy, not the count, stops guessing
and the tolerance is a few hundred milliseconds of traffic. The login limits (PIN guesses
per NIK and per address) stay exact, in the database (``RateLimiter.charge``): a budget of
ten guesses cannot spare m more per process.

The same rows as the exact limiter (``rate_limit_windows``), the same HMAC-keyed subjects:
no address or client id is stored, and a refused hit is not counted, as a refused exact
charge is rolled back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digital_id.db.periodic import Periodic
from digital_id.db.types import utc_now
from digital_id.throttle.limiter import Charge, Limit, RateLimiter, refusal
from digital_id.throttle.models import RateLimitWindow

log = logging.getLogger(__name__)

# Windows held in memory past which a round forgets those it has nothing to send for and
# never refused: one per client, and per address that failed client authentication, per
# window. A forgotten window is learnt again at the next round it is counted in; until then
# this process is as unaware of it as a new one, and may pass one round's hits more (the
# bounds above hold below this many subjects a window, a flood of addresses aside).
HELD_WINDOWS = 100_000
# Rows per upsert: SQLite allows 32,766 parameters a statement, four per row here.
ROWS_PER_STATEMENT = 1_000

Window = tuple[str, datetime]
"""A subject's key and the end of one of its windows."""


@dataclass
class _Count:
    scope: str
    known: int = 0
    sending: int = 0
    unsent: int = 0
    refused: bool = False

    @property
    def seen(self) -> int:
        return self.known + self.sending + self.unsent


class FleetLimiter:
    """Counts hits in this process and decides on them at once; ``synchronise`` sends them
    to the database and learns the fleet's totals. One per process, shared by its threads."""

    def __init__(self, keys: RateLimiter, engine: Engine) -> None:
        # The exact limiter's keys: the same subject, the same row, whichever counts it.
        self._keys = keys
        self._engine = engine
        self._counts: dict[Window, _Count] = {}
        self._lock = threading.Lock()  # held for dictionary work only, never across I/O
        self._round = threading.Lock()  # one round at a time: the thread's, or a forced one

    def count(self, charges: Iterable[Charge], *, now: datetime) -> None:
        """Count one hit for each charge, or raise ``RateLimitedError`` and count none if one
        of them is spent (in this process's view of the fleet)."""
        keyed = self._keyed(charges, now)
        if not keyed:
            return
        with self._lock:
            counts = [(limit, self._counts.get(window)) for window, limit in keyed]
            over = [limit for limit, count in counts if count and count.seen >= limit.hits]
            if over:
                for limit, count in counts:
                    if count and count.seen >= limit.hits:
                        count.refused = True
                raise refusal(over, now)
            for window, limit in keyed:
                count = self._counts.get(window)
                if count is None:
                    count = self._counts[window] = _Count(limit.scope)
                count.unsent += 1

    def refuse_remembered(self, charges: Iterable[Charge], *, now: datetime) -> None:
        """Raise ``RateLimitedError`` if this process already refused one of these subjects
        in the current window (no statement, and nothing counted)."""
        keyed = self._keyed(charges, now)
        with self._lock:
            over = [
                limit
                for window, limit in keyed
                if (count := self._counts.get(window)) is not None and count.refused
            ]
        if over:
            raise refusal(over, now)

    def synchronise(self, now: datetime | None = None) -> int:
        """One round: send every hit counted since the last, in one transaction, and keep
        the fleet's totals the database answers with. Returns how many windows were sent.
        If the database fails, the hits are kept to be sent with the next round, and the
        error is raised; counting goes on meanwhile."""
        now = now or utc_now()
        with self._round:
            batch = self._take_unsent(now)
            if not batch:
                return 0
            try:
                totals = self._send(batch)
            except BaseException:
                with self._lock:
                    for window in batch:
                        if (count := self._counts.get(window)) is not None:
                            count.unsent += count.sending
                            count.sending = 0
                raise
            with self._lock:
                for window, total in totals.items():
                    if (count := self._counts.get(window)) is not None:
                        count.known, count.sending = max(count.known, total), 0
            return len(batch)

    def _take_unsent(self, now: datetime) -> dict[Window, tuple[str, int]]:
        with self._lock:
            ended = [window for window in self._counts if window[1] <= now]
            for window in ended:  # no decision will read them again
                del self._counts[window]
            if len(self._counts) > HELD_WINDOWS:
                for window, count in list(self._counts.items()):
                    if not (count.unsent or count.refused):
                        del self._counts[window]
            batch: dict[Window, tuple[str, int]] = {}
            for window, count in self._counts.items():
                if count.unsent:
                    count.sending, count.unsent = count.unsent, 0
                    batch[window] = (count.scope, count.sending)
            return batch

    def _send(self, batch: dict[Window, tuple[str, int]]) -> dict[Window, int]:
        # Sorted, so two processes sending the same rows lock them in one order (no deadlock).
        rows = [
            {"subject_key": key, "window_ends_at": ends, "scope": scope, "hits": hits}
            for (key, ends), (scope, hits) in sorted(batch.items())
        ]
        totals: dict[Window, int] = {}
        # Ended windows are the housekeeping job's (web.housekeeping): a round only upserts.
        with Session(self._engine) as session, session.begin():
            for start in range(0, len(rows), ROWS_PER_STATEMENT):
                chunk = rows[start : start + ROWS_PER_STATEMENT]
                for key, ends, hits in session.execute(self._upsert(chunk)):
                    totals[(key, ends)] = hits
        return totals

    def _upsert(self, rows: list[dict[str, Any]]) -> Any:
        table = RateLimitWindow.__table__
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(table).values(rows)
        return insert.on_conflict_do_update(
            index_elements=[table.c.subject_key, table.c.window_ends_at],
            set_={"hits": table.c.hits + insert.excluded.hits},
        ).returning(table.c.subject_key, table.c.window_ends_at, table.c.hits)

    def _keyed(self, charges: Iterable[Charge], now: datetime) -> list[tuple[Window, Limit]]:
        return [
            ((self._keys.subject_key(limit, value), limit.window_end(now)), limit)
            for limit, value in charges
            if limit.enabled and value
        ]


class FleetSync(Periodic):
    """The background thread in each server process that runs the limiter's rounds every
    ``interval`` seconds, and one last round when it stops (so a restart loses no count).

    A failed round (the database away) is logged once and retried each interval; requests
    never wait for a round: they only take the limiter's dictionary lock."""

    def __init__(self, limiter: FleetLimiter, *, interval: float) -> None:
        super().__init__(
            "rate-limit-sync",
            limiter.synchronise,
            interval=interval,
            log=log,
            label="rate-limit counts",
            final_round=True,
        )
