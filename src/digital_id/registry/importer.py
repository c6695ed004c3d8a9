"""Bulk import of register files (CSV or JSON Lines) into the ``citizens`` table.

Rows stream from the file and are validated: one by one in this process for a small file, on
every core (:mod:`~digital_id.registry.chunk_validation`) for a large one on PostgreSQL. Valid
ones are upserted by NIK in batches, one transaction per batch: an interrupted or crashed
import leaves every committed batch intact and nothing of the batch in flight. Each batch goes
through the database's own bulk path into a temporary staging table (``COPY`` on PostgreSQL,
``executemany`` on SQLite), then one set-based upsert bumps ``record_version`` only where a
field really changed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    Select,
    Table,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from digital_id.db.engine import dialect_insert
from digital_id.db.types import UtcDateTime, utc_now
from digital_id.registry.batch_writer import BatchWriter
from digital_id.registry.chunk_validation import (
    CHUNK_BYTES,
    ChunkJob,
    ChunkResult,
    ValidationPool,
)
from digital_id.registry.models import Citizen
from digital_id.registry.records import (
    RECORD_FIELDS,
    CitizenRecord,
    InvalidRecordError,
    RecordValidator,
)
from digital_id.registry.register_files import RegisterFile, RejectReport

CITIZENS = cast(Table, Citizen.__table__)
# Below this size a file is validated in-process: starting worker processes (each imports
# the validator and loads the region table) costs more than it saves.
POOL_MIN_BYTES = 4 << 20

# A batch: validated records (validated here) or their COPY lines (validated by workers).
Batch = list[CitizenRecord] | list[bytes]
Reject = tuple[int, object, str, str]  # line, NIK as the file spells it, field, reason


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
        workers: int | None = None,
        pool_min_bytes: int = POOL_MIN_BYTES,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        """``on_withdrawn`` is called inside each batch's transaction with the ids of citizens
        the batch changed to a status other than active (deceased, blocked): whatever must
        happen to them then (their sessions ended, agencies told) commits with the change
        or not at all. ``workers`` validating processes (default: one per core) are used by
        :meth:`import_file` on PostgreSQL for files of at least ``pool_min_bytes``, each
        given chunks of about ``chunk_bytes``."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.engine = engine
        self.batch_size = batch_size
        self.on_withdrawn = on_withdrawn
        self.workers = workers if workers is not None else len(os.sched_getaffinity(0))
        self.pool_min_bytes = pool_min_bytes
        self.chunk_bytes = chunk_bytes
        citizens = CITIZENS
        self._staging = Table(
            "citizen_import",
            MetaData(),
            *(Column(name, citizens.c[name].type) for name in RECORD_FIELDS),
            prefixes=["TEMPORARY"],
        )
        self._upsert = self._build_upsert()
        self._outcome = self._build_outcome() if engine.dialect.name == "postgresql" else None

    def _build_upsert(self) -> ReturningInsert[int, int, str]:
        citizens = CITIZENS
        insert_here = dialect_insert(self.engine.dialect.name)
        now = bindparam("now", type_=UtcDateTime())
        source = select(
            *self._staging.c,
            literal(1).label("record_version"),
            now.label("created_at"),
            now.label("updated_at"),
        ).where(true())  # SQLite needs a WHERE to parse INSERT ... SELECT ... ON CONFLICT
        statement = insert_here(citizens).from_select(
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

    def _build_outcome(self) -> Select[int, int, Sequence[Any]]:
        """PostgreSQL counts the rows written itself and sends back one row, not every row:
        (inserted, updated, ids of citizens updated to a status other than active)."""
        written = self._upsert.cte("written")
        withdrawn = and_(written.c.record_version > 1, written.c.status != "active")
        return select(
            func.count().filter(written.c.record_version == 1),
            func.count().filter(written.c.record_version > 1),
            func.array_agg(written.c.id).filter(withdrawn),
        )

    def _upsert_staged(self, connection: Connection, now: datetime) -> tuple[int, int, list[int]]:
        """Upsert the staging table: how many rows were inserted, updated, and withdrawn."""
        if self._outcome is not None:
            inserted, updated, withdrawn = connection.execute(self._outcome, {"now": now}).one()
            return inserted, updated, list(withdrawn or ())
        written = connection.execute(self._upsert, {"now": now}).all()
        inserted = sum(1 for row in written if row[1] == 1)
        withdrawn = [row[0] for row in written if row[1] > 1 and row[2] != "active"]
        return inserted, len(written) - inserted, withdrawn

    def uses_pool(self, source: RegisterFile) -> bool:
        return (
            self.engine.dialect.name == "postgresql"
            and self.workers > 1
            and source.size >= self.pool_min_bytes
        )

    def import_file(
        self,
        source: RegisterFile,
        validator: RecordValidator,
        report: RejectReport,
        on_batch: Callable[[ImportSummary], None] | None = None,
    ) -> ImportSummary:
        """Import ``source``, validating on every core when :meth:`uses_pool` says so."""
        if not self.uses_pool(source):
            return self.run(source.rows(), validator, report, on_batch)
        job = ChunkJob(
            source.path,
            source.format,
            source.header,
            validator.allow_unknown_region,
            validator.today,
        )
        pool = ValidationPool(job, self.workers)
        try:
            results = pool.results(source.raw_chunks(self.chunk_bytes))
            return self._run_validated(results, source.header_lines, report, on_batch)
        finally:
            pool.close()

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
            writer = BatchWriter[Batch](
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

    def _run_validated(
        self,
        results: Iterator[ChunkResult],
        first_line: int,
        report: RejectReport,
        on_batch: Callable[[ImportSummary], None] | None,
    ) -> ImportSummary:
        """Upsert chunks validated by workers, as :meth:`run` upserts rows it validates."""
        summary = ImportSummary()
        seen: set[int] = set()
        batch: list[bytes] = []
        unknown = bytearray()  # one flag per row of ``batch``
        with self.engine.connect() as connection, self._staging_table(connection):
            writer = BatchWriter[Batch](
                lambda b, u: self._write_batch(connection, b, u, summary, on_batch)
            )
            try:
                base = first_line  # the line before the chunk's first
                for result in results:
                    summary.rows_read += result.rows_read
                    rejects: list[Reject] = [
                        (base + line, nik, name, reason)
                        for line, nik, name, reason in result.rejects
                    ]
                    distinct = set(result.niks)
                    if len(distinct) == len(result.niks) and seen.isdisjoint(distinct):
                        seen |= distinct  # the common case: no NIK seen before
                        batch += result.copy_rows
                        unknown += result.unknown_region
                    else:
                        self._drop_repeated_niks(result, base, seen, rejects, batch, unknown)
                    summary.rejected += len(rejects)
                    for line, nik, name, reason in sorted(rejects, key=lambda r: r[0]):
                        report.reject(line, nik, name, reason)
                    base += result.lines
                    while len(batch) >= self.batch_size:
                        size = self.batch_size
                        writer.submit(batch[:size], unknown[:size].count(1))
                        del batch[:size], unknown[:size]
                if batch:
                    writer.submit(batch, unknown.count(1))
            except KeyboardInterrupt:
                summary.interrupted = True  # as in run(): the partial batch is dropped
            finally:
                writer.close()
        return summary

    @staticmethod
    def _drop_repeated_niks(
        result: ChunkResult,
        base: int,
        seen: set[int],
        rejects: list[Reject],
        batch: list[bytes],
        unknown: bytearray,
    ) -> None:
        for index, nik in enumerate(result.niks):
            if nik in seen:
                raw_nik = result.raw_niks.get(index, f"{nik:016d}")
                reason = "appears on an earlier line of this file"
                rejects.append((base + result.row_lines[index], raw_nik, "nik", reason))
                continue
            seen.add(nik)
            batch.append(result.copy_rows[index])
            unknown.append(result.unknown_region[index])

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
        batch: Batch,
        unknown_region: int,
        summary: ImportSummary,
        on_batch: Callable[[ImportSummary], None] | None,
    ) -> None:
        started = time.perf_counter()
        now: datetime = utc_now()
        with connection.begin():
            self._fill_staging(connection, batch)
            inserted, updated, withdrawn = self._upsert_staged(connection, now)
            if withdrawn and self.on_withdrawn is not None:
                with Session(bind=connection) as session:
                    self.on_withdrawn(session, withdrawn)
                    session.commit()  # within the batch's transaction, which commits it
        summary.inserted += inserted
        summary.updated += updated
        summary.unchanged += len(batch) - inserted - updated
        summary.unknown_region += unknown_region
        summary.batches += 1
        summary.batch_seconds.append(time.perf_counter() - started)
        if on_batch is not None:
            on_batch(summary)

    def _fill_staging(self, connection: Connection, batch: Batch) -> None:
        columns = ", ".join(RECORD_FIELDS)
        if self.engine.dialect.name == "postgresql":
            connection.exec_driver_sql("TRUNCATE citizen_import")
            driver_connection: Any = connection.connection.driver_connection
            with (
                driver_connection.cursor() as cursor,
                cursor.copy(f"COPY citizen_import ({columns}) FROM STDIN") as copy,
            ):
                if batch and isinstance(batch[0], bytes):
                    copy.write(b"".join(batch))  # COPY lines from workers
                else:
                    for record in batch:
                        copy.write_row(record)
            return
        batch = cast(list[CitizenRecord], batch)
        connection.exec_driver_sql("DELETE FROM citizen_import")
        placeholders = ", ".join("?" for _ in RECORD_FIELDS)
        # SQLAlchemy stores a SQLite DATE as ISO text; the raw cursor must store the same.
        birth_date = RECORD_FIELDS.index("birth_date")
        connection.exec_driver_sql(
            f"INSERT INTO citizen_import ({columns}) VALUES ({placeholders})",  # noqa: S608 (fixed column names)
            [(*r[:birth_date], r.birth_date.isoformat(), *r[birth_date + 1 :]) for r in batch],
        )
