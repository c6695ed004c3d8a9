"""DPoP-bound codes and refresh tokens: the key (RFC 7638 thumbprint) a code or a public
client's refresh token is bound to (RFC 9449 sections 5 and 10); empty for unbound ones.

Revision ID: c4f6a8b0d325
Revises: b3e5f7a9c214
Create Date: 2026-12-07 00:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4f6a8b0d325"
down_revision: str | None = "b3e5f7a9c214"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("authorization_codes") as table:
        table.add_column(sa.Column("dpop_jkt", sa.String(length=64), nullable=True))
    with op.batch_alter_table("refresh_tokens") as table:
        table.add_column(sa.Column("dpop_jkt", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as table:
        table.drop_column("dpop_jkt")
    with op.batch_alter_table("authorization_codes") as table:
        table.drop_column("dpop_jkt")
