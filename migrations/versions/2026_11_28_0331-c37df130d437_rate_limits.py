"""Rate limits: fixed-window counters shared by every worker.

Revision ID: c37df130d437
Revises: d3a7b1c9e024
Create Date: 2026-11-28 03:31:28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c37df130d437"
down_revision: str | None = "d3a7b1c9e024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_windows",
        sa.Column("subject_key", sa.String(length=64), nullable=False),
        sa.Column("window_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "subject_key", "window_ends_at", name=op.f("pk_rate_limit_windows")
        ),
    )
    op.create_index(
        op.f("ix_rate_limit_windows_window_ends_at"), "rate_limit_windows", ["window_ends_at"]
    )


def downgrade() -> None:
    op.drop_table("rate_limit_windows")
