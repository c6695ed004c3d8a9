"""Storage plumbing shared by every domain package: the declarative base, engines, migrations."""

from digital_id.db.base import Base
from digital_id.db.engine import create_engine_for, session_factory

__all__ = ["Base", "create_engine_for", "session_factory"]
