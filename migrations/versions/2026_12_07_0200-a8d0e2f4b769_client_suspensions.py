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


def upgrade() -> None:
    with op.batch_alter_table("clients") as table:
        table.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("suspension_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as table:
        table.drop_column("suspension_reason")
        table.drop_column("suspended_at")
