"""Structured logs: one JSON object a line, the request's id in every line logged while
serving it, and what must never be logged masked even if some code tried."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from digital_id.app import create_app
from digital_id.config import ConfigError, load_settings
from digital_id.telemetry.logs import JsonFormatter, RedactingFilter, TextFormatter, redact

NIK = "3171011990100001"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


class Lines(logging.Handler):
    """Formats each record as it is emitted, in the emitting context, as a real handler does."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.addFilter(RedactingFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def json_lines():
    handler = Lines(JsonFormatter())
    logging.getLogger().addHandler(handler)
    yield handler.lines
    logging.getLogger().removeHandler(handler)


@pytest.fixture
def app(settings):
    # Not started: these requests need no services, and nothing else logs meanwhile.
    return create_app(settings)


def access_lines(lines: list[str]) -> list[dict]:
    entries = [json.loads(line) for line in lines]
    return [entry for entry in entries if entry["logger"] == "digital_id.access"]


def test_the_access_line_is_json_with_the_request_id_of_the_response(app, json_lines):
    response = TestClient(app).get("/healthz?login_hint=" + NIK)

    (entry,) = access_lines(json_lines)
    assert entry["request_id"] == response.headers["X-Request-ID"]
    assert entry["level"] == "INFO"
    assert entry["method"] == "GET"
    assert entry["route"] == "/healthz"
    assert entry["path"] == "/healthz"
    assert entry["status"] == 200
    assert entry["duration_ms"] >= 0
    assert entry["client_ip"] == "testclient"
    assert entry["timestamp"].endswith("+00:00")
    assert NIK not in json_lines[0]


def test_a_nik_offered_as_request_id_is_not_logged(app, json_lines):
    # Well-formed as an id, so it is used and echoed, but the log shows it masked.
    response = TestClient(app).get("/healthz", headers={"X-Request-ID": NIK})

    (entry,) = access_lines(json_lines)
    assert response.headers["X-Request-ID"] == NIK
    assert entry["request_id"] == "[redacted-nik]"
    assert NIK not in json_lines[0]


def test_an_offered_request_id_is_kept_and_a_bad_one_replaced(app, json_lines):
    http = TestClient(app)
    kept = http.get("/healthz", headers={"X-Request-ID": "trace-0123456789"})
    replaced = http.get("/healthz", headers={"X-Request-ID": "no spaces; or {braces} allowed"})

    first, second = access_lines(json_lines)
    assert kept.headers["X-Request-ID"] == first["request_id"] == "trace-0123456789"
    assert (
        replaced.headers["X-Request-ID"] == second["request_id"] != "no spaces; or {braces} allowed"
    )


def test_every_line_logged_while_serving_a_request_carries_its_id(app, json_lines):
    def handler() -> dict[str, str]:
        logging.getLogger("digital_id.somewhere").warning("inside the request")
        return {}

    app.add_api_route("/probe", handler)

    response = TestClient(app).get("/probe")
    outside = logging.getLogger("digital_id.somewhere")
    outside.warning("outside any request")

    entries = {entry["message"]: entry for entry in map(json.loads, json_lines)}
    assert entries["inside the request"]["request_id"] == response.headers["X-Request-ID"]
    assert entries["outside any request"]["request_id"] is None


def test_the_text_format_shows_the_request_id_too(app):
    handler = Lines(TextFormatter())
    logging.getLogger().addHandler(handler)
    try:
        response = TestClient(app).get("/healthz")
    finally:
        logging.getLogger().removeHandler(handler)

    (line,) = [line for line in handler.lines if "digital_id.access" in line]
    assert f"[{response.headers['X-Request-ID']}] GET /healthz 200 " in line
    assert line.endswith(" ms")


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"lookup of {NIK} failed", "lookup of [redacted-nik] failed"),
        (f"token {JWT} rejected", "token [redacted-jwt] rejected"),
        ("GET /cb?code=abc123XYZ&state=s1", "GET /cb?code=[redacted]&state=s1"),
        ("POST pin=246810&nik=1234", "POST pin=[redacted]&nik=[redacted]"),
        ("secret dgid_cs_AbCdEf0123456789 leaked", "secret [redacted-secret] leaked"),
        (
            "Issue token {'access_token': 'opaque', 'refresh_token': 'r-123'}",
            "Issue token {'access_token': '[redacted]', 'refresh_token': '[redacted]'}",
        ),
        ("Authorization: Bearer abcdefgh12345678", "Authorization: Bearer [redacted]"),
        ("GET /authorize 200 in 12.5 ms", "GET /authorize 200 in 12.5 ms"),
        ("NIK …0001 and 31710119901000012 digits", "NIK …0001 and 31710119901000012 digits"),
        ("request e13fdbcb9caf9631104406987553cda0", "request e13fdbcb9caf9631104406987553cda0"),
    ],
)
def test_redaction_masks_what_looks_like_a_secret_and_nothing_else(text, kept):
    assert redact(text) == kept


def test_the_filter_masks_arguments_tracebacks_and_extra_fields():
    # A logger of its own that does not propagate: the secrets it logs on purpose must not
    # reach the run's log, whose scan would rightly fail.
    log = logging.getLogger("tests.telemetry.redaction")
    log.propagate = False
    handler = Lines(JsonFormatter())
    log.addHandler(handler)
    try:
        raise ValueError(f"bad NIK {NIK}")
    except ValueError:
        log.error("login for %s with %s", NIK, JWT, exc_info=True, extra={"path": f"/x/{NIK}"})
    finally:
        log.removeHandler(handler)

    (line,) = handler.lines
    assert NIK not in line
    assert JWT not in line
    entry = json.loads(line)
    assert entry["message"] == "login for [redacted-nik] with [redacted-jwt]"
    assert "ValueError: bad NIK [redacted-nik]" in entry["exception"]
    assert entry["path"] == "/x/[redacted-nik]"


def test_logs_are_json_in_production_and_text_in_development_unless_chosen():
    production = {
        "env": "production",
        "issuer": "https://id.example.go.id",
        "keys_passphrase": "a-production-passphrase",
    }
    assert load_settings(**production).log_style == "json"
    assert load_settings().log_style == "text"
    assert load_settings(log_format="json").log_style == "json"
    assert load_settings(**production, log_format="text").log_style == "text"


def test_the_log_level_is_read_in_any_case_and_checked():
    assert load_settings(log_level="debug").log_level == "DEBUG"
    with pytest.raises(ConfigError, match="DIGITAL_ID_LOG_LEVEL"):
        load_settings(log_level="verbose")
