"""Client suspensions: an operator's suspension of an agency's data-sharing agreement, with
its reason; nothing is released while it holds.

Revision ID: a8d0e2f4b769
Revises: f7c9d1e3a658
Create Date: 2026-12-07 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a8d0e2f4b769"
down_revision: str | None = "f7c9d1e3a658"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, never a batch: on SQLite a batch recreates the table, which would lose
# the triggers that keep clients_version (revision f1c3a5e7b902). SQLite adds and drops a
# column in place since 3.35.


def upgrade() -> None:
    op.add_column("clients", sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("clients", sa.Column("suspension_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    op.drop_column("clients", "suspension_reason")
    op.drop_column("clients", "suspended_at")
