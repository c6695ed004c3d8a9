"""Validating a register file's chunks on every core, each chunk's rows as ``COPY`` lines.

A pool of worker processes parses and validates chunks of whole rows
(:meth:`RegisterFile.raw_chunks`) with the same code as the row-by-row import, and returns
each chunk's valid rows already in PostgreSQL's ``COPY`` text format, with their NIKs, so the
importing process only checks for repeated NIKs, writes the reject report and streams bytes.
Results come back in the file's order. This module imports nothing of the database layer:
it is what each worker process loads.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import threading
import time
from array import array
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from digital_id.registry.records import InvalidRecordError, RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import FileFormat, ImportFileError, chunk_rows

CHUNK_BYTES = 1 << 20  # about 6,500 rows: small enough to keep all cores busy to the end

# PostgreSQL's COPY text format escapes these four characters with a backslash. psycopg
# formats COPY rows only through a connection's cursor, which a worker has not, so the
# format is written here (https://www.postgresql.org/docs/current/sql-copy.html).
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass(slots=True)
class ChunkResult:
    """One chunk's outcome; line numbers count from the chunk's first line (1)."""

    lines: int = 0
    rows_read: int = 0
    copy_rows: list[bytes] = field(default_factory=list)
    niks: array[int] = field(default_factory=lambda: array("q"))
    row_lines: array[int] = field(default_factory=lambda: array("q"))
    unknown_region: bytearray = field(default_factory=bytearray)
    raw_niks: dict[int, object] = field(default_factory=dict)  # where the file spelled it otherwise
    rejects: list[tuple[int, object, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ChunkJob:
    """What every worker needs to know about the file, sent once when it starts."""

    path: Path
    file_format: FileFormat
    header: list[str]
    allow_unknown_region: bool
    today: date


_worker: tuple[ChunkJob, RecordValidator] | None = None  # set when a worker process starts


def _start_worker(job: ChunkJob, parent: int) -> None:
    global _worker  # noqa: PLW0603 (one job and validator per worker process)
    # Ctrl-C reaches the whole process group: the importing process decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    validator = RecordValidator(
        load_regions(), allow_unknown_region=job.allow_unknown_region, today=job.today
    )
    _worker = (job, validator)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    # A killed importer cannot shut its pool down; its workers must not outlive it.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def validate_chunk(data: bytes, first: bool) -> ChunkResult:
    """Parse and validate one chunk (in a worker process)."""
    if _worker is None:
        raise RuntimeError("validate_chunk runs in a worker started by ValidationPool")
    job, validator = _worker
    try:
        # utf-8-sig: a byte-order mark can only open the file, so only its first chunk.
        text = data.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{job.path}: not UTF-8 text ({exc.reason})") from None
    # Lines as the file is read row by row (newline="" splits at \n, \r and \r\n).
    result = ChunkResult(lines=sum(1 for _ in io.StringIO(text, newline="")))
    validate = validator.validate
    for line, row in chunk_rows(job.file_format, text, job.header):
        result.rows_read += 1
        raw_nik = row.get("nik", "")
        error = row.get("__error__")
        if error is not None:
            result.rejects.append((line, raw_nik, "row", error))
            continue
        try:
            validated = validate(row)
        except InvalidRecordError as exc:
            result.rejects.append((line, raw_nik, exc.field, exc.reason))
            continue
        record = validated.record
        if raw_nik != record.nik:
            result.raw_niks[len(result.copy_rows)] = raw_nik
        fields = [*record[:4], record.birth_date.isoformat(), *record[5:]]
        copy_line = "\t".join(fields)
        if "\\" in copy_line or "\n" in copy_line or "\r" in copy_line:
            copy_line = "\t".join(value.translate(_COPY_ESCAPES) for value in fields)
        result.copy_rows.append((copy_line + "\n").encode())
        result.niks.append(int(record.nik))
        result.row_lines.append(line)
        result.unknown_region.append(validated.unknown_region)
    return result


class ValidationPool:
    """Worker processes validating chunks, at most twice ``workers`` chunks in flight."""

    def __init__(self, job: ChunkJob, workers: int) -> None:
        # spawn: forking a process that runs a database writer thread is unsafe.
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(job, os.getpid()),
        )
        self._in_flight = 2 * workers

    def results(self, chunks: Iterator[bytes]) -> Iterator[ChunkResult]:
        """Each chunk's result, in the order of ``chunks``."""
        pending: deque[Future[ChunkResult]] = deque()
        first = True
        for chunk in chunks:
            pending.append(self._executor.submit(validate_chunk, chunk, first))
            first = False
            if len(pending) >= self._in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
