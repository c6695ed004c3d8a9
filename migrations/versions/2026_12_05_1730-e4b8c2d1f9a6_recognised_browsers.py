"""Recognised browsers: a failure counter and lock of their own, and the session's link to one.

Revision ID: e4b8c2d1f9a6
Revises: c37df130d437
Create Date: 2026-12-05 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4b8c2d1f9a6"
down_revision: str | None = "c37df130d437"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "recognised_browsers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=43), nullable=False),
        sa.Column("citizen_id", ID, nullable=False),
        sa.Column("recognised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("lock_count", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizens.id"],
            name=op.f("fk_recognised_browsers_citizen_id_citizens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recognised_browsers")),
        sa.UniqueConstraint("public_id", name=op.f("uq_recognised_browsers_public_id")),
    )
    op.create_index(
        op.f("ix_recognised_browsers_citizen_id"), "recognised_browsers", ["citizen_id"]
    )
    op.create_index(
        op.f("ix_recognised_browsers_expires_at"), "recognised_browsers", ["expires_at"]
    )
    with op.batch_alter_table("browser_sessions") as batch_op:
        batch_op.add_column(sa.Column("recognised_browser_id", ID, nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_browser_sessions_recognised_browser_id_recognised_browsers"),
            "recognised_browsers",
            ["recognised_browser_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("browser_sessions") as batch_op:
        batch_op.drop_constraint(
            op.f("fk_browser_sessions_recognised_browser_id_recognised_browsers"),
            type_="foreignkey",
        )
        batch_op.drop_column("recognised_browser_id")
    op.drop_table("recognised_browsers")
