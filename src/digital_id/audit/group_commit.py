"""Group commit of the audit events of transactions that changed nothing else.

Most machine-to-machine requests (a ``client_credentials`` token, above all) change nothing
in the database but their audit event. Each such request used to append its event in a
transaction of its own: a connection, a statement and a durable commit per request, most of
its cost. Here a server process's ``GroupCommitter`` thread takes every event waiting
at that moment, from any number of requests, appends them to one chain in one transaction
and commits once; each request answers only after the commit that holds its events (its own
commit blocks until then), so nothing acknowledged is lost to a crash, exactly as before.

Only a transaction that has sent no statement at all qualifies (``trail`` decides, as it
commits): one that read or wrote anything appends its events itself, in the same transaction
as its changes, so "no change without its event" is untouched. The more requests arrive
together, the larger the batches grow; under no load a batch is one event and costs what
the transaction would have.

A batch that fails is tried again one request at a time, so an event that cannot be written
fails only its own request; when the database is away, each request fails as it would have.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.audit.models import AuditEvent

MAX_BATCH = 500  # events per transaction: bounds one statement's size and a batch's latency
WAIT_SECONDS = 30.0  # a request waits no longer than this for its batch (a wedged database)


@dataclass
class _Submission:
    """One transaction's events, and how their batch ended."""

    events: list[AuditEvent]
    written: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupCommitter:
    """The thread of one server process that group-commits event-only transactions on
    ``engine``; registered with ``trail`` while it runs."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: deque[_Submission] = deque()
        self._ready = threading.Condition()
        self._accepting = False
        self._thread = threading.Thread(target=self._run, name="audit-group-commit", daemon=True)
        # For the tests and the benchmark: transactions committed, and requests taken into a
        # batch so far.
        self.batches = 0
        self.taken = 0

    def start(self) -> None:
        with self._ready:
            self._accepting = True
        self._thread.start()
        trail.group_commit_through(self._engine, self.submit)

    def stop(self) -> None:
        """Write what is waiting, then stop; later transactions append their events themselves."""
        trail.group_commit_through(self._engine, None)
        with self._ready:
            self._accepting = False
            self._ready.notify()
        self._thread.join(timeout=WAIT_SECONDS)

    def waiting(self) -> int:
        """How many transactions wait for the next batch."""
        with self._ready:
            return len(self._queue)

    def submit(self, events: list[AuditEvent]) -> bool:
        """Write ``events`` in the next batch and return once it is committed (raising what
        its commit raised); False, at once, if this committer has stopped and the caller
        must write them itself."""
        submission = _Submission(events)
        with self._ready:
            if not self._accepting:
                return False
            self._queue.append(submission)
            self._ready.notify()
        if not submission.written.wait(WAIT_SECONDS):
            raise TimeoutError("the audit trail's group commit did not answer in time")
        if submission.error is not None:
            raise submission.error
        return True

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._write([event for submission in batch for event in submission.events])
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].error = exc
                else:
                    self._write_one_by_one(batch)
            for submission in batch:
                submission.written.set()

    def _next_batch(self) -> list[_Submission] | None:
        """The transactions waiting now (at least one, up to ``max_batch`` events), or None
        once stopped with nothing left."""
        with self._ready:
            while not self._queue:
                if not self._accepting:
                    return None
                self._ready.wait()
            batch: list[_Submission] = []
            size = 0
            while self._queue and (
                not batch or size + len(self._queue[0].events) <= self._max_batch
            ):
                submission = self._queue.popleft()
                batch.append(submission)
                size += len(submission.events)
            self.taken += len(batch)
            return batch

    def _write_one_by_one(self, batch: list[_Submission]) -> None:
        for submission in batch:
            try:
                self._write(submission.events)
            except Exception as exc:
                submission.error = exc

    def _write(self, events: list[AuditEvent]) -> None:
        with Session(self._engine) as session:
            session.begin()
            trail.append_now(session, events)
            session.commit()
        self.batches += 1
