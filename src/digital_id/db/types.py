"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer
from sqlalchemy.types import TypeDecorator


def storable(text: str) -> bool:
    """Whether ``text`` could be a stored value. PostgreSQL text cannot hold a NUL character
    (and refuses a query that compares with one), so a lookup by such a value must find
    nothing without asking the database, the same on SQLite."""
    return "\x00" not in text


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntegerId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones and hands back naive values,
    so everything is stored as UTC and comes back aware, and naive input is refused rather
    than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


# Western Indonesia Time (Jakarta, where agreements are signed and reports are due): UTC+7
# all year, a fixed offset that needs no time-zone database.
WIB = timezone(timedelta(hours=7), "WIB")
