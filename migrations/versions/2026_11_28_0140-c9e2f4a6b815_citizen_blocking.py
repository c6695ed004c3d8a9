"""Operator blocking of a citizen account, apart from the register's status.

Revision ID: c9e2f4a6b815
Revises: b5d1e8f2c934
Create Date: 2026-11-28 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c9e2f4a6b815"
down_revision: str | None = "b5d1e8f2c934"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "citizen_accounts", sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("citizen_accounts") as batch_op:
        batch_op.drop_column("blocked_at")
