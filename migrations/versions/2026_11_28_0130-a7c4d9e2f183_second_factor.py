"""The second factor: sealed TOTP secrets and the last time step accepted.

Revision ID: a7c4d9e2f183
Revises: 8f1b2c3d4e67
Create Date: 2026-11-28 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c4d9e2f183"
down_revision: str | None = "8f1b2c3d4e67"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("totp_secret", sa.String(length=200)),
    ("totp_pending_secret", sa.String(length=200)),
    ("totp_last_step", sa.BigInteger()),
    ("totp_enrolled_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("citizen_accounts", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("citizen_accounts") as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
