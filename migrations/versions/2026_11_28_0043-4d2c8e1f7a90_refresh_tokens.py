"""Refresh tokens: one family per grant, stored hashed, rotated by generation.

Revision ID: 4d2c8e1f7a90
Revises: 9b4e7d1c2a35
Create Date: 2026-11-28 00:43:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4d2c8e1f7a90"
down_revision: str | None = "9b4e7d1c2a35"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "refresh_tokens",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("grant_id", ID, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idle_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["authorization_grants.id"],
            name=op.f("fk_refresh_tokens_grant_id_authorization_grants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    op.create_index(op.f("ix_refresh_tokens_grant_id"), "refresh_tokens", ["grant_id"])
    # Plain ADD COLUMN: both are nullable or defaulted, which SQLite allows without a rebuild.
    op.add_column(
        "authorization_grants",
        sa.Column("refresh_generation", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "authorization_grants",
        sa.Column("offline_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("authorization_grants") as batch_op:
        batch_op.drop_column("offline_until")
        batch_op.drop_column("refresh_generation")
    op.drop_table("refresh_tokens")
