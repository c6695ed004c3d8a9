"""Committing an import's batches on a background thread, in order, one transaction each."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Batch = TypeVar("Batch")


class BatchWriter(Generic[Batch]):
    """Commits batches on one background thread, in order, one transaction each.

    The queue holds at most one batch, so memory stays bounded at about three batches. An
    error in the writer surfaces on the reading thread at its next ``submit`` or at
    ``close``; ``close`` always waits for the writer, ignoring further Ctrl-C, so the
    connection is never closed under a transaction in progress.
    """

    def __init__(self, write: Callable[[Batch, int], None]) -> None:
        self._write = write
        self._queue: queue.Queue[tuple[Batch, int] | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="citizen-import-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch, unknown_region: int) -> None:
        while True:
            self._raise_writer_error()
            try:
                self._queue.put((batch, unknown_region), timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        while True:
            try:
                if self._thread.is_alive():
                    with contextlib.suppress(queue.Full):
                        self._queue.put(None, timeout=0.1)
                    self._thread.join(timeout=0.1)
                if not self._thread.is_alive():
                    break
            except KeyboardInterrupt:
                continue  # already stopping; the batch in progress must finish or roll back
        self._raise_writer_error()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so the reader is never left blocked on a full queue
            try:
                self._write(*item)
            except BaseException as exc:
                self._error = exc

    def _raise_writer_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
