"""Pushed authorization requests (RFC 9126): each validated request a client pushed, named by
the digest of its request URI, until its flow can no longer need it.

Revision ID: a7d2e4f6b813
Revises: f1c3a5e7b902
Create Date: 2026-12-07 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7d2e4f6b813"
down_revision: str | None = "f1c3a5e7b902"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pushed_authorization_requests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("reference_digest", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kept_until", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_pushed_authorization_requests_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pushed_authorization_requests")),
        sa.UniqueConstraint(
            "reference_digest", name=op.f("uq_pushed_authorization_requests_reference_digest")
        ),
    )
    op.create_index(
        op.f("ix_pushed_authorization_requests_kept_until"),
        "pushed_authorization_requests",
        ["kept_until"],
    )


def downgrade() -> None:
    op.drop_table("pushed_authorization_requests")
