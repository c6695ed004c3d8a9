"""Seen DPoP proofs: each proof's jti, per key, until the proof is too old to be accepted.

Revision ID: b3e5f7a9c214
Revises: a7d2e4f6b813
Create Date: 2026-12-07 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b3e5f7a9c214"
down_revision: str | None = "a7d2e4f6b813"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_dpop_proofs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("jkt", sa.String(length=64), nullable=False),
        sa.Column("jti", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seen_dpop_proofs")),
        sa.UniqueConstraint("jkt", "jti", name=op.f("uq_seen_dpop_proofs_jkt_jti")),
    )
    op.create_index(op.f("ix_seen_dpop_proofs_expires_at"), "seen_dpop_proofs", ["expires_at"])


def downgrade() -> None:
    op.drop_table("seen_dpop_proofs")
