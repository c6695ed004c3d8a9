"""Purging rows nobody needs any more (expired codes, seen ``jti``s, revoked-token marks),
in batches that never wait on another worker's."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

PURGE_BATCH = 500


def purge_expired(session: Session, model: type[Any], condition: Any) -> int:
    """Delete up to ``PURGE_BATCH`` rows nobody needs any more, skipping rows another worker
    is deleting right now (so two purges never wait on, or deadlock with, each other); how
    many went."""
    doomed = select(model.id).where(condition).limit(PURGE_BATCH).with_for_update(skip_locked=True)
    return deleted_count(session.execute(delete(model).where(model.id.in_(doomed))))


def deleted_count(result: Any) -> int:
    """The rows a DELETE removed (a DELETE's result is a cursor result, which SQLAlchemy's
    ``Session.execute`` does not say in its type)."""
    return int(cast(CursorResult[Any], result).rowcount)
