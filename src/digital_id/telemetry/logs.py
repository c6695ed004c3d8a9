"""Structured logs: one JSON object per line on stderr, each carrying the request's id.

The standard library's logging does the work; only the formatter, the redaction filter and
the request-id context are ours (a JSON formatter is a few lines, and redaction has to see
every record anyway, so python-json-logger would save little and add a dependency).

What is logged must never hold a PIN, a one-time code, an authorization code, a token, a
client secret or a full NIK. Code is written not to log them; ``RedactingFilter`` is the
second line of defence, masking anything shaped like one in a message, its arguments, a
traceback or an extra field.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

from digital_id.config import LogFormat, LogLevel

# Set by the request middleware for the duration of a request, so every line logged while
# serving it (by us, by uvicorn, by a library) can be matched with the X-Request-ID header.
request_id: ContextVar[str | None] = ContextVar("digital_id_request_id", default=None)

ACCESS_LOGGER = "digital_id.access"
# Libraries whose ordinary lines would carry secrets, held at WARNING whatever the log level:
# httpx logs every request's full URL (query strings carry codes and tokens), authlib's debug
# lines print whole token responses, SQLAlchemy's print statement parameters (NIKs).
QUIET_LIBRARIES: Final = ("httpx", "httpx2", "httpcore", "authlib", "sqlalchemy")

_SENSITIVE_NAMES = (
    r"pin|new_pin|old_pin|pin_confirm|otp|code|nik|login_hint|client_secret|code_verifier"
    r"|client_assertion|access_token|refresh_token|id_token|logout_token|token|password"
)
# Each pattern with a cheap test of whether it could match at all: most lines (an access
# line's route, a startup message) pass every test, and logging stays fast.
_REDACTIONS: Final[tuple[tuple[Callable[[str], bool], re.Pattern[str], str], ...]] = (
    # A NIK: 16 digits standing alone (not inside a hex id or a base64 string).
    (
        lambda text: True,
        re.compile(r"(?<![0-9A-Za-z])[0-9]{16}(?![0-9A-Za-z])"),
        "[redacted-nik]",
    ),
    # A JWT (JWS compact serialisation): ID and access tokens, assertions, request objects.
    (
        lambda text: "eyJ" in text,
        re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
        "[redacted-jwt]",
    ),
    # A client secret, recognisable by its prefix (digital_id.clients.service).
    (
        lambda text: "dgid_cs_" in text,
        re.compile(r"\bdgid_cs_[A-Za-z0-9_-]+"),
        "[redacted-secret]",
    ),
    # name=value, as in a query string or form body.
    (
        lambda text: "=" in text,
        re.compile(rf"(?i)\b({_SENSITIVE_NAMES})=[^&\s\"',;)]+"),
        r"\1=[redacted]",
    ),
    # 'name': 'value', as in the repr of a dict (authlib's debug lines print token dicts).
    (
        lambda text: ":" in text,
        re.compile(rf"(?i)(['\"])({_SENSITIVE_NAMES})\1(\s*:\s*)(['\"])[^'\"]*\4"),
        r"\1\2\1\3\4[redacted]\4",
    ),
    # An Authorization header's credentials.
    (
        lambda text: "Bearer" in text or "Basic" in text or "bearer" in text or "basic" in text,
        re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
        r"\1 [redacted]",
    ),
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "request_id", "color_message", "taskName"}
)


def redact(text: str) -> str:
    for could_match, pattern, replacement in _REDACTIONS:
        if could_match(text):
            text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks NIK-, JWT- and secret-shaped values in a record before any handler writes it."""

    _tracebacks = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._tracebacks.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name, value in extra_fields(record).items():
            if isinstance(value, str):
                setattr(record, name, redact(value))
        # A caller may send any well-formed X-Request-ID, a NIK among them.
        current = _request_id_of(record)
        if current is not None:
            record.request_id = redact(current)
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: value
        for name, value in record.__dict__.items()
        if name not in _STANDARD_ATTRIBUTES and not name.startswith("_")
    }


def _request_id_of(record: logging.LogRecord) -> str | None:
    # An id passed explicitly (the access line) wins; otherwise the request being served.
    explicit = record.__dict__.get("request_id")
    return explicit if isinstance(explicit, str) else request_id.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, message, request_id, pid, the
    record's extra fields, and the traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id_of(record),
            "pid": record.process,
        }
        entry.update(extra_fields(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        # ASCII only: a request can carry U+2028 and the like, which line-based log shippers
        # would take for the end of a line.
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """For a developer's terminal: one readable line, with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = _request_id_of(record) or "-"
        return super().format(record)


def log_config(level: LogLevel, style: LogFormat) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary: every logger, uvicorn's included, writes
    through one redacting handler on stderr. uvicorn applies it in each worker process."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": f"{__name__}.RedactingFilter"}},
        "formatters": {
            "json": {"()": f"{__name__}.JsonFormatter"},
            "text": {"()": f"{__name__}.TextFormatter"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": style,
                "filters": ["redact"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own handlers would bypass the format and the redaction: propagate instead.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            **{library: {"level": "WARNING"} for library in QUIET_LIBRARIES},
            "alembic.runtime.plugins": {"level": "WARNING"},  # a line per plugin at start-up
        },
    }
