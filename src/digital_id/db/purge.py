"""Purging rows nobody needs any more (expired codes, seen ``jti``s, revoked-token marks)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session


def purge_expired(session: Session, model: type[Any], condition: Any) -> None:
    """Delete rows nobody needs any more, skipping rows another worker is deleting right now
    (so two purges never wait on, or deadlock with, each other)."""
    doomed = select(model.id).where(condition).limit(500).with_for_update(skip_locked=True)
    session.execute(delete(model).where(model.id.in_(doomed)))
