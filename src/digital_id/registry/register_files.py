"""Register files (CSV or JSON Lines) read row by row or in chunks of whole rows, and the
report of the rows rejected.

A chunk is parsed by :func:`chunk_rows` exactly as the file is parsed row by row (the same
rows, errors and line numbers relative to the chunk), so validation can run in other processes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal, TextIO

from digital_id.registry.nik import mask_nik
from digital_id.registry.records import RECORD_FIELDS, REQUIRED_FIELDS

FileFormat = Literal["csv", "jsonl"]
FORMAT_BY_SUFFIX: dict[str, FileFormat] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class ImportFileError(Exception):
    """The file as a whole cannot be imported (missing, wrong format, unknown column)."""


def detect_format(path: Path, declared: FileFormat | None = None) -> FileFormat:
    if declared is not None:
        return declared
    try:
        return FORMAT_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise ImportFileError(
            f"cannot tell the format of {path} from its extension; name it .csv or .jsonl, "
            "or pass --format csv|jsonl"
        ) from None


class RegisterFile:
    """A register file opened for streaming: rows with their line numbers, and progress in bytes."""

    def __init__(self, path: Path, file_format: FileFormat | None = None) -> None:
        self.path = path
        self.format = detect_format(path, file_format)
        if not path.is_file():
            raise ImportFileError(f"{path}: no such file")
        self.size = path.stat().st_size
        self.header: list[str] = []
        self.header_lines = 0  # lines before the first row (CSV); JSON Lines has none
        self._binary = path.open("rb")
        self._raw: BinaryIO | None = None
        # utf-8-sig: spreadsheets often start a CSV with a byte-order mark.
        self._text = io.TextIOWrapper(self._binary, encoding="utf-8-sig", newline="")
        # Read up to the first row now, so a bad header fails at open, before any work.
        self._rows = self._read()
        try:
            self._first = next(self._rows, None)
        except BaseException:
            self._text.close()
            raise

    def __enter__(self) -> RegisterFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._text.close()

    @property
    def bytes_read(self) -> int:
        if self._raw is None:
            return self._binary.tell()
        return self.size if self._raw.closed else self._raw.tell()

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(line, row)`` for every row after the header."""
        if self._first is not None:
            yield self._first
            yield from self._rows

    def _read(self) -> Iterator[tuple[int, dict[str, Any]]]:
        reader = self._csv_rows if self.format == "csv" else self._jsonl_rows
        try:
            yield from reader(self._text)
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"{self.path}: not UTF-8 text ({exc.reason})") from None

    def _csv_rows(self, text: TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
        reader = csv.reader(text, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise ImportFileError(f"{self.path}: not a CSV file ({exc})") from None
        if header is None:
            raise ImportFileError(f"{self.path}: the file is empty; expected a header row")
        header = [name.strip() for name in header]
        self._check_columns(header)
        self.header, self.header_lines = header, reader.line_num
        yield from _csv_body(reader, header)

    def _jsonl_rows(self, text: TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
        checked = False
        for line_number, line in enumerate(text, start=1):
            row = _jsonl_row(line, check_fields=checked)
            if row is None:
                continue
            if not checked:
                # The first object plays the part of a CSV header.
                if "__error__" in row:
                    raise ImportFileError(
                        f"{self.path}: line {line_number} is {row['__error__']}; expected JSON Lines"
                    )
                self._check_columns(list(row))
                checked = True
            yield line_number, row

    def raw_chunks(self, target_bytes: int) -> Iterator[bytes]:
        """The rows after the header as chunks of about ``target_bytes``, each ending at the
        end of a row; line ``header_lines + 1`` starts the first chunk.

        Read through a handle of its own: use either this or :meth:`rows`, not both.
        """
        with self.path.open("rb") as handle:
            self._raw = handle
            for _ in range(self.header_lines):
                handle.readline()
            pending: list[bytes] = []
            size = quotes = 0
            for line in handle:
                pending.append(line)
                size += len(line)
                if self.format == "csv":
                    quotes += line.count(b'"')
                # A CSV row may span lines inside quotes: cut only where the quotes seen are
                # balanced (always so in a well-formed file). A file with stray quotes is cut
                # anyway at four times the target, so memory stays bounded.
                if size >= target_bytes and (quotes % 2 == 0 or size >= 4 * target_bytes):
                    yield b"".join(pending)
                    pending, size, quotes = [], 0, 0
            if pending:
                yield b"".join(pending)

    def _check_columns(self, columns: list[str]) -> None:
        unknown = [c for c in columns if c not in RECORD_FIELDS]
        if unknown:
            raise ImportFileError(
                f"{self.path}: unknown column {unknown[0]!r}; columns are {', '.join(RECORD_FIELDS)}"
            )
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        if duplicated:
            raise ImportFileError(f"{self.path}: column {duplicated[0]!r} appears twice")
        missing = [c for c in REQUIRED_FIELDS if c not in columns]
        if missing:
            raise ImportFileError(f"{self.path}: missing column {missing[0]!r}")


def chunk_rows(
    file_format: FileFormat, text: str, header: list[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of a chunk from :meth:`RegisterFile.raw_chunks`, numbered from its first line.

    The columns were checked when the file was opened; ``header`` is the CSV header.
    """
    lines = io.StringIO(text, newline="")
    if file_format == "csv":
        yield from _csv_body(csv.reader(lines, strict=True), header)
        return
    for line_number, line in enumerate(lines, start=1):
        row = _jsonl_row(line)
        if row is not None:
            yield line_number, row


def _csv_body(reader: Any, header: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    width = len(header)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, {"__error__": f"malformed CSV ({exc})"}
            continue
        if not values:
            continue  # a blank line
        if len(values) != width:
            error = f"has {len(values)} fields but the header has {width}"
            yield reader.line_num, {"__error__": error, "nik": values[0] if values else ""}
            continue
        yield reader.line_num, dict(zip(header, values, strict=True))


def _jsonl_row(line: str, *, check_fields: bool = True) -> dict[str, Any] | None:
    """One line of JSON Lines as a row; None for a blank line. Only the first object is
    checked as a header (unknown fields end the import); later ones become error rows."""
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"__error__": f"not a JSON object ({exc.msg})"}
    if not isinstance(row, dict):
        return {"__error__": "not a JSON object"}
    unknown = sorted(set(row) - set(RECORD_FIELDS) - {"__error__"}) if check_fields else ()
    if unknown:
        return {"__error__": f"unknown field {unknown[0]!r}", "nik": row.get("nik", "")}
    return row


class RejectReport:
    """CSV of rejected rows: line, NIK masked to its last four digits, field, reason."""

    HEADER = ("line", "nik", "field", "reason")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: TextIO | None = None
        self._writer: Any = None

    def reject(self, line: int, raw_nik: object, field: str, reason: str) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(self.HEADER)
        nik = mask_nik(raw_nik) if isinstance(raw_nik, str) else ""
        self._writer.writerow((line, nik, field, reason))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    @property
    def written(self) -> bool:
        return self._handle is not None
