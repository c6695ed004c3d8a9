"""The population register: one row per resident, keyed by NIK.

Revision ID: 5e6fa5af5716
Revises:
Create Date: 2026-11-27 23:04:17

Migrations spell out their types and vocabularies instead of importing them from the
application, so a later change to the code cannot rewrite history.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e6fa5af5716"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "citizens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("nik", sa.String(length=16), nullable=False),
        sa.Column("kk_number", sa.String(length=16), nullable=False),
        sa.Column("full_name", sa.String(length=120), nullable=False),
        sa.Column("birth_place", sa.String(length=80), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("blood_type", sa.String(length=3), nullable=False),
        sa.Column("religion", sa.String(length=40), nullable=False),
        sa.Column("marital_status", sa.String(length=20), nullable=False),
        sa.Column("occupation", sa.String(length=80), nullable=False),
        sa.Column("nationality", sa.String(length=3), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("rt", sa.String(length=3), nullable=False),
        sa.Column("rw", sa.String(length=3), nullable=False),
        sa.Column("village", sa.String(length=80), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("record_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "blood_type IN ('A', 'B', 'AB', 'O', 'A+', 'A-', 'B+', 'B-', 'AB+', 'AB-', 'O+', 'O-', '-')",
            name=op.f("ck_citizens_blood_type"),
        ),
        sa.CheckConstraint(
            "marital_status IN ('BELUM KAWIN', 'KAWIN', 'CERAI HIDUP', 'CERAI MATI')",
            name=op.f("ck_citizens_marital_status"),
        ),
        sa.CheckConstraint("nationality IN ('WNI', 'WNA')", name=op.f("ck_citizens_nationality")),
        sa.CheckConstraint(
            "religion IN ('ISLAM', 'KRISTEN', 'KATOLIK', 'HINDU', 'BUDDHA', 'KONGHUCU', "
            "'KEPERCAYAAN TERHADAP TUHAN YME')",
            name=op.f("ck_citizens_religion"),
        ),
        sa.CheckConstraint("sex IN ('L', 'P')", name=op.f("ck_citizens_sex")),
        sa.CheckConstraint(
            "status IN ('active', 'deceased', 'blocked')", name=op.f("ck_citizens_status")
        ),
        sa.CheckConstraint("record_version >= 1", name=op.f("ck_citizens_record_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_citizens")),
        sa.UniqueConstraint("nik", name=op.f("uq_citizens_nik")),
    )
    op.create_index("ix_citizens_kk_number", "citizens", ["kk_number"])


def downgrade() -> None:
    op.drop_index("ix_citizens_kk_number", table_name="citizens")
    op.drop_table("citizens")
