"""Family relationships: each citizen's relationship within their family card (SHDK), "" when
the register does not say.

Revision ID: b9e1f3a5c870
Revises: a8d0e2f4b769
Create Date: 2026-12-07 02:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b9e1f3a5c870"
down_revision: str | None = "a8d0e2f4b769"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("citizens") as table:
        table.add_column(
            sa.Column(
                "family_relationship", sa.String(length=20), nullable=False, server_default=""
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("citizens") as table:
        table.drop_column("family_relationship")
