"""The second factor's own failure counter and lock, apart from the PIN's.

Revision ID: e4b7c2a9d160
Revises: e4b8c2d1f9a6
Create Date: 2026-12-05 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4b7c2a9d160"
down_revision: str | None = "e4b8c2d1f9a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "citizen_accounts",
        sa.Column("otp_failed_attempts", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "citizen_accounts",
        sa.Column("otp_lock_count", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "citizen_accounts",
        sa.Column("otp_locked_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("citizen_accounts") as batch_op:
        batch_op.drop_column("otp_locked_until")
        batch_op.drop_column("otp_lock_count")
        batch_op.drop_column("otp_failed_attempts")
