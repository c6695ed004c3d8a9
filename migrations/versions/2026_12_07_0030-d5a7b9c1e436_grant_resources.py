"""Grant resources: the agency API (RFC 8707 resource identifier) a grant's access tokens are
made out to; empty for grants whose tokens are for the client itself.

Revision ID: d5a7b9c1e436
Revises: c4f6a8b0d325
Create Date: 2026-12-07 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d5a7b9c1e436"
down_revision: str | None = "c4f6a8b0d325"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("authorization_grants") as table:
        table.add_column(sa.Column("resource", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("authorization_grants") as table:
        table.drop_column("resource")
