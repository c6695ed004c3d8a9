"""``digital-id db purge``: an operator purges rows nobody needs any more at once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from digital_id.cli import app
from digital_id.db.types import utc_now
from digital_id.throttle.models import RateLimitWindow

runner = CliRunner()


def test_db_purge_deletes_ended_rate_limit_windows_and_keeps_current_ones(engine, cli_env):
    now = utc_now()
    with engine.begin() as connection:
        connection.execute(
            insert(RateLimitWindow),
            [
                {
                    "subject_key": "a" * 64,
                    "window_ends_at": now - timedelta(minutes=1),
                    "scope": "login:ip",
                    "hits": 3,
                },
                {
                    "subject_key": "b" * 64,
                    "window_ends_at": now + timedelta(minutes=1),
                    "scope": "login:ip",
                    "hits": 1,
                },
            ],
        )
    result = runner.invoke(app, ["db", "purge"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "rate_limit_windows: 1 purged" in result.output
    with engine.connect() as connection:
        keys = connection.execute(select(RateLimitWindow.subject_key)).scalars().all()
        assert keys == ["b" * 64]
        assert connection.execute(select(func.count()).select_from(RateLimitWindow)).scalar() == 1
