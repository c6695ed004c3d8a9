"""``digital-id registry``: import, generate and look up population register records."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from digital_id.accounts.delegation_ending import end_lapsed_delegations
from digital_id.audit import trail
from digital_id.cli.common import (
    EXIT_USAGE,
    JsonOption,
    console,
    fail,
    iso,
    key_store,
    migrated_engine,
    pairwise_secret,
    print_json,
    print_record,
    settings_of,
)
from digital_id.db.types import utc_now
from digital_id.registry import families, service, synthetic
from digital_id.registry.importer import CitizenImporter, ImportSummary
from digital_id.registry.nik import InvalidNikError, mask_nik, parse_nik
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import (
    FileFormat,
    ImportFileError,
    RegisterFile,
    RejectReport,
)
from digital_id.sessions.ending import end_citizen_sessions

app = typer.Typer(help="The population register.", no_args_is_help=True)

ImportProgress = Callable[[ImportSummary, int], None]

EXIT_INTERRUPTED = 130


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV with a header row, or JSON Lines (.jsonl).")],
    file_format: Annotated[
        FileFormat | None,
        typer.Option("--format", help="Override the format the extension implies."),
    ] = None,
    allow_unknown_region: Annotated[
        bool,
        typer.Option(
            help="Accept district codes no longer in the region table (counted in the summary)."
        ),
    ] = False,
    errors: Annotated[
        Path | None, typer.Option(help="Where to write rejected rows (default: FILE.rejected.csv).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Rows per transaction (default: DIGITAL_ID_IMPORT_BATCH_SIZE)."),
    ] = None,
) -> None:
    """Validate FILE and upsert its valid rows by NIK; rejected rows go to an error report."""
    settings = settings_of(ctx)
    try:
        source = RegisterFile(file, file_format)
    except ImportFileError as exc:
        fail(str(exc), EXIT_USAGE)
    with source:
        engine = migrated_engine(ctx)
        report = RejectReport(errors or file.with_name(file.name + ".rejected.csv"))
        importer = CitizenImporter(
            engine,
            batch_size=batch_size or settings.import_batch_size,
            on_withdrawn=_logging_out(ctx),
        )
        validator = RecordValidator(load_regions(), allow_unknown_region=allow_unknown_region)
        started = time.perf_counter()
        try:
            with _interrupt_on_sigterm(), _import_progress(source.size) as on_batch:
                summary = importer.import_file(
                    source,
                    validator,
                    report,
                    on_batch=lambda s: on_batch(s, source.bytes_read),
                )
            # Families are judged whole, once every batch is in.
            with Session(engine) as session, session.begin():
                refused = families.refuse_impossible(session, now=utc_now())
                for family in refused:
                    trail.record(
                        session,
                        "registry:family_refused",
                        actor="operator",
                        details={"kk_number": family.masked, "reason": family.reason},
                    )
            # What guardians gave for children the import took out of their care ends now.
            ended = end_lapsed_delegations(
                engine,
                cache(lambda: (key_store(ctx).snapshot(), pairwise_secret(ctx))),
                issuer=settings.issuer,
                now=utc_now(),
            )
        except ImportFileError as exc:
            fail(f"{exc} (batches committed before it are kept)", EXIT_USAGE)
        finally:
            report.close()
            engine.dispose()
    _print_summary(summary, time.perf_counter() - started, report)
    if ended:
        console.print(
            f"{ended} consent(s) a parent gave for a child ended: the child is no longer in "
            "their care (agencies were told)."
        )
    for family in refused:
        console.print(
            f"[yellow]Family card {family.masked}:[/] {family.reason}; its relationships are "
            "refused until the register is corrected."
        )
    if summary.interrupted:
        console.print(
            "[yellow]Interrupted:[/] committed batches are kept; run the same import again to finish."
        )
        raise typer.Exit(EXIT_INTERRUPTED)


def _logging_out(ctx: typer.Context) -> Callable[[Session, list[int]], None]:
    """What an import does for citizens it marks deceased or blocked: their sessions end
    through the logout path (agencies get back-channel logouts) and their grants are revoked,
    in the batch's own transaction. The key store is opened only if that ever happens."""
    secret: list[bytes] = []

    def log_out(session: Session, citizen_ids: list[int]) -> None:
        if not secret:
            secret.append(pairwise_secret(ctx))
        now = utc_now()
        for citizen_id in citizen_ids:
            end_citizen_sessions(
                session,
                citizen_id,
                pairwise_secret=secret[0],
                now=now,
                reason="register_status_changed",
                actor="operator",
            )

    return log_out


@app.command()
def generate(
    count: Annotated[int, typer.Option(min=1, help="How many citizens to write.")],
    out: Annotated[Path, typer.Option(help="Output file: .csv or .jsonl.")],
    seed: Annotated[int, typer.Option(help="Same seed, same file.")] = 0,
) -> None:
    """Write realistic, valid synthetic citizens in the import format."""
    try:
        file_format = synthetic.format_for(out)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    started = time.perf_counter()
    written = synthetic.write_file(out, synthetic.generate_citizens(count, seed=seed), file_format)
    elapsed = time.perf_counter() - started
    console.print(
        f"Wrote {written:,} synthetic citizens to {out} in {elapsed:.1f} s ({written / elapsed:,.0f} rows/s)."
    )


@app.command()
def show(
    ctx: typer.Context,
    nik: Annotated[str, typer.Argument(help="The 16-digit NIK.")],
    as_json: JsonOption = False,
) -> None:
    """Print one citizen's record."""
    try:
        parse_nik(nik, allow_unknown_region=True)
    except InvalidNikError as exc:
        fail(f"NIK {mask_nik(nik)}: {exc.reason}", EXIT_USAGE)
    engine = migrated_engine(ctx)
    try:
        with Session(engine) as session:
            citizen = service.find_by_nik(session, nik)
    finally:
        engine.dispose()
    if citizen is None:
        fail(f"no citizen with NIK {mask_nik(nik)} in the register")
    address = load_regions().resolve(citizen.district_code)
    if as_json:
        print_json(
            {
                "nik": citizen.nik,
                "kk_number": citizen.kk_number,
                "full_name": citizen.full_name,
                "birth_place": citizen.birth_place,
                "birth_date": citizen.birth_date.isoformat(),
                "sex": citizen.sex,
                "blood_type": citizen.blood_type,
                "religion": citizen.religion,
                "marital_status": citizen.marital_status,
                "occupation": citizen.occupation,
                "nationality": citizen.nationality,
                "street": citizen.street,
                "rt": citizen.rt,
                "rw": citizen.rw,
                "village": citizen.village,
                "district_code": citizen.district_code,
                "district": address.district.name if address else None,
                "regency": address.regency.name if address else None,
                "province": address.province.name if address else None,
                "status": citizen.status,
                "record_version": citizen.record_version,
                "updated_at": iso(citizen.updated_at),
            }
        )
        return
    print_record(
        [
            ("NIK", citizen.nik),
            ("KK number", citizen.kk_number),
            ("Name", citizen.full_name),
            ("Born", f"{citizen.birth_place}, {citizen.birth_date:%d-%m-%Y}"),
            ("Sex", citizen.sex),
            ("Blood type", citizen.blood_type),
            ("Religion", citizen.religion),
            ("Marital status", citizen.marital_status),
            ("Occupation", citizen.occupation),
            ("Nationality", citizen.nationality),
            ("Street", citizen.street),
            ("RT/RW", f"{citizen.rt}/{citizen.rw}"),
            ("Village", citizen.village),
            (
                "District",
                f"{citizen.district_code} {address.district.name}"
                if address
                else f"{citizen.district_code} (not in the region table)",
            ),
            ("Regency", address.regency.name if address else "-"),
            ("Province", address.province.name if address else "-"),
            ("Status", citizen.status),
            ("Record version", str(citizen.record_version)),
            ("Updated", citizen.updated_at.isoformat(timespec="seconds")),
        ]
    )


def _print_summary(summary: ImportSummary, elapsed: float, report: RejectReport) -> None:
    table = Table(title="Import summary", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in (
        ("rows read", summary.rows_read),
        ("inserted", summary.inserted),
        ("updated", summary.updated),
        ("unchanged", summary.unchanged),
        ("rejected", summary.rejected),
        ("accepted with unknown region", summary.unknown_region),
    ):
        table.add_row(label, f"{value:,}")
    rate = summary.rows_read / elapsed if elapsed > 0 else 0.0
    table.add_row("time", f"{elapsed:.1f} s ({rate:,.0f} rows/s)")
    console.print(table)
    if report.written:
        console.print(f"Rejected rows (NIK masked) are listed in {report.path}")


@contextmanager
def _import_progress(total_bytes: int) -> Iterator[ImportProgress]:
    progress = Progress(
        TextColumn("Importing"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:>12,} rows  {task.fields[rate]:>9,.0f} rows/s"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("import", total=total_bytes or 1, rows=0, rate=0.0)
    started = time.perf_counter()

    def on_batch(summary: ImportSummary, bytes_read: int) -> None:
        elapsed = max(time.perf_counter() - started, 1e-9)
        progress.update(
            task, completed=bytes_read, rows=summary.rows_read, rate=summary.rows_read / elapsed
        )

    with progress:
        yield on_batch


@contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """Treat SIGTERM (a container stopping) like Ctrl-C: finish cleanly at a batch boundary."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
