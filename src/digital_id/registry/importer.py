"""Bulk import of register files (CSV or JSON Lines) into the ``citizens`` table.

Rows stream from the file, are validated one by one, and valid ones are upserted by NIK in
batches, one transaction per batch: an interrupted or crashed import leaves every committed
batch intact and nothing of the batch in flight. Each batch goes through the database's own
bulk path into a temporary staging table (``COPY`` on PostgreSQL, ``executemany`` on SQLite),
then one set-based upsert bumps ``record_version`` only where a field really changed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    Table,
    bindparam,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from digital_id.db.types import UtcDateTime, utc_now
from digital_id.registry.models import Citizen
from digital_id.registry.records import (
    RECORD_FIELDS,
    CitizenRecord,
    InvalidRecordError,
    RecordValidator,
)
from digital_id.registry.register_files import RejectReport

CITIZENS = cast(Table, Citizen.__table__)


@dataclass
class ImportSummary:
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    unknown_region: int = 0
    batches: int = 0
    interrupted: bool = False
    batch_seconds: list[float] = field(default_factory=list)

    @property
    def committed(self) -> int:
        return self.inserted + self.updated + self.unchanged


class CitizenImporter:
    """Upserts validated records by NIK, one transaction per batch."""

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 20_000,
        on_withdrawn: Callable[[Session, list[int]], None] | None = None,
    ) -> None:
        """``on_withdrawn`` is called inside each batch's transaction with the ids of citizens
        the batch changed to a status other than active (deceased, blocked): whatever must
        happen to them then (their sessions ended, agencies told) commits with the change
        or not at all."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.engine = engine
        self.batch_size = batch_size
        self.on_withdrawn = on_withdrawn
        citizens = CITIZENS
        self._staging = Table(
            "citizen_import",
            MetaData(),
            *(Column(name, citizens.c[name].type) for name in RECORD_FIELDS),
            prefixes=["TEMPORARY"],
        )
        self._upsert = self._build_upsert()

    def _build_upsert(self) -> ReturningInsert[int, int, str]:
        citizens = CITIZENS
        dialect_insert = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        )
        now = bindparam("now", type_=UtcDateTime())
        source = select(
            *self._staging.c,
            literal(1).label("record_version"),
            now.label("created_at"),
            now.label("updated_at"),
        ).where(true())  # SQLite needs a WHERE to parse INSERT ... SELECT ... ON CONFLICT
        statement = dialect_insert(citizens).from_select(
            [*RECORD_FIELDS, "record_version", "created_at", "updated_at"], source
        )
        excluded = statement.excluded
        changed = or_(
            *(citizens.c[name].is_distinct_from(excluded[name]) for name in RECORD_FIELDS[1:])
        )
        upsert = statement.on_conflict_do_update(
            index_elements=["nik"],
            set_={
                **{name: excluded[name] for name in RECORD_FIELDS if name != "nik"},
                "record_version": citizens.c.record_version + 1,
                "updated_at": excluded.updated_at,
            },
            where=changed,
        )
        # The rows written come back: version 1 was inserted, a higher one updated; rows
        # left out were unchanged. (Driver rowcounts for INSERT ... SELECT are unreliable.)
        return upsert.returning(citizens.c.id, citizens.c.record_version, citizens.c.status)

    def run(
        self,
        rows: Iterator[tuple[int, dict[str, Any]]],
        validator: RecordValidator,
        report: RejectReport,
        on_batch: Callable[[ImportSummary], None] | None = None,
    ) -> ImportSummary:
        """Validate ``rows`` and upsert the valid ones; stop cleanly on KeyboardInterrupt.

        Validation runs on this thread while a writer thread commits the previous batch:
        both drivers release the GIL while the database works, so the two overlap.
        """
        summary = ImportSummary()
        # NIKs already accepted from this file, as integers (a fraction of the memory of
        # strings): a second row for the same NIK is a data error, not a silent overwrite.
        seen: set[int] = set()
        batch: list[CitizenRecord] = []
        batch_unknown_region = 0
        with self.engine.connect() as connection, self._staging_table(connection):
            writer = _BatchWriter(
                lambda b, u: self._write_batch(connection, b, u, summary, on_batch)
            )
            try:
                for line, row in rows:
                    summary.rows_read += 1
                    raw_nik = row.get("nik", "")
                    error = row.get("__error__")
                    if error is not None:
                        report.reject(line, raw_nik, "row", error)
                        summary.rejected += 1
                        continue
                    try:
                        validated = validator.validate(row)
                    except InvalidRecordError as exc:
                        report.reject(line, raw_nik, exc.field, exc.reason)
                        summary.rejected += 1
                        continue
                    key = int(validated.record.nik)
                    if key in seen:
                        report.reject(
                            line, raw_nik, "nik", "appears on an earlier line of this file"
                        )
                        summary.rejected += 1
                        continue
                    seen.add(key)
                    batch.append(validated.record)
                    batch_unknown_region += validated.unknown_region
                    if len(batch) >= self.batch_size:
                        writer.submit(batch, batch_unknown_region)
                        batch, batch_unknown_region = [], 0
                if batch:
                    writer.submit(batch, batch_unknown_region)
            except KeyboardInterrupt:
                # Whole batches already handed to the writer are committed; the partial batch
                # still being read is dropped. Nothing half-written can reach the database.
                summary.interrupted = True
            finally:
                writer.close()
        return summary

    @contextmanager
    def _staging_table(self, connection: Connection) -> Iterator[None]:
        if self.engine.dialect.name == "sqlite":
            # A bulk load touches index pages all over the file: a 64 MiB page cache for this
            # one connection (the default is 2 MiB) and an in-memory staging table.
            connection.exec_driver_sql("PRAGMA cache_size=-65536")
            connection.exec_driver_sql("PRAGMA temp_store=MEMORY")
            connection.commit()
        with connection.begin():
            self._staging.create(connection)
        try:
            yield
        finally:
            if not connection.closed and not connection.invalidated:
                if connection.in_transaction():
                    connection.rollback()
                with connection.begin():
                    self._staging.drop(connection)

    def _write_batch(
        self,
        connection: Connection,
        batch: list[CitizenRecord],
        unknown_region: int,
        summary: ImportSummary,
        on_batch: Callable[[ImportSummary], None] | None,
    ) -> None:
        started = time.perf_counter()
        now: datetime = utc_now()
        with connection.begin():
            self._fill_staging(connection, batch)
            written = connection.execute(self._upsert, {"now": now}).all()
            withdrawn = [row[0] for row in written if row[1] > 1 and row[2] != "active"]
            if withdrawn and self.on_withdrawn is not None:
                with Session(bind=connection) as session:
                    self.on_withdrawn(session, withdrawn)
                    session.commit()  # within the batch's transaction, which commits it
        versions = [row[1] for row in written]
        inserted = versions.count(1)
        summary.inserted += inserted
        summary.updated += len(versions) - inserted
        summary.unchanged += len(batch) - len(versions)
        summary.unknown_region += unknown_region
        summary.batches += 1
        summary.batch_seconds.append(time.perf_counter() - started)
        if on_batch is not None:
            on_batch(summary)

    def _fill_staging(self, connection: Connection, batch: list[CitizenRecord]) -> None:
        columns = ", ".join(RECORD_FIELDS)
        if self.engine.dialect.name == "postgresql":
            connection.exec_driver_sql("TRUNCATE citizen_import")
            driver_connection: Any = connection.connection.driver_connection
            with (
                driver_connection.cursor() as cursor,
                cursor.copy(f"COPY citizen_import ({columns}) FROM STDIN") as copy,
            ):
                for record in batch:
                    copy.write_row(record)
            return
        connection.exec_driver_sql("DELETE FROM citizen_import")
        placeholders = ", ".join("?" for _ in RECORD_FIELDS)
        # SQLAlchemy stores a SQLite DATE as ISO text; the raw cursor must store the same.
        birth_date = RECORD_FIELDS.index("birth_date")
        connection.exec_driver_sql(
            f"INSERT INTO citizen_import ({columns}) VALUES ({placeholders})",  # noqa: S608 (fixed column names)
            [(*r[:birth_date], r.birth_date.isoformat(), *r[birth_date + 1 :]) for r in batch],
        )


class _BatchWriter:
    """Commits batches on one background thread, in order, one transaction each.

    The queue holds at most one batch, so memory stays bounded at about three batches. An
    error in the writer surfaces on the reading thread at its next ``submit`` or at
    ``close``; ``close`` always waits for the writer, ignoring further Ctrl-C, so the
    connection is never closed under a transaction in progress.
    """

    def __init__(self, write: Callable[[list[CitizenRecord], int], None]) -> None:
        self._write = write
        self._queue: queue.Queue[tuple[list[CitizenRecord], int] | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="citizen-import-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: list[CitizenRecord], unknown_region: int) -> None:
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
