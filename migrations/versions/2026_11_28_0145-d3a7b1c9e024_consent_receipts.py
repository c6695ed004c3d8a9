"""Consent receipts: a signed JWT for every consent decision.

Revision ID: d3a7b1c9e024
Revises: c9e2f4a6b815
Create Date: 2026-11-28 01:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d3a7b1c9e024"
down_revision: str | None = "c9e2f4a6b815"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_receipts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("receipt_id", sa.String(length=32), nullable=False),
        sa.Column("citizen_id", ID, nullable=False),
        sa.Column("client_id", ID, nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizens.id"],
            name=op.f("fk_consent_receipts_citizen_id_citizens"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_consent_receipts_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_receipts")),
        sa.UniqueConstraint("receipt_id", name=op.f("uq_consent_receipts_receipt_id")),
    )
    op.create_index(op.f("ix_consent_receipts_citizen_id"), "consent_receipts", ["citizen_id"])


def downgrade() -> None:
    op.drop_table("consent_receipts")
