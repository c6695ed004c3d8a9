"""Seen request objects: the jti of each request object that started a flow, until it expires.

Revision ID: e5b2c8d4f716
Revises: e4b7c2a9d160
Create Date: 2026-12-05 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5b2c8d4f716"
down_revision: str | None = "e4b7c2a9d160"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_request_objects",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("jti", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_seen_request_objects_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seen_request_objects")),
        sa.UniqueConstraint("client_id", "jti", name=op.f("uq_seen_request_objects_client_id_jti")),
    )
    op.create_index(
        op.f("ix_seen_request_objects_expires_at"), "seen_request_objects", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_table("seen_request_objects")
