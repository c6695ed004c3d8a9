"""Acting for a child: the guardian behind a grant, a consent and a consent receipt (None
when the citizen acted for themselves).

Revision ID: c0f2a4b6d981
Revises: b9e1f3a5c870
Create Date: 2026-12-07 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0f2a4b6d981"
down_revision: str | None = "b9e1f3a5c870"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each table gains the guardian's citizen id, a foreign key that goes with the guardian.
_COLUMNS = (
    ("authorization_grants", "actor_citizen_id"),
    ("consents", "given_by_citizen_id"),
    ("consent_receipts", "actor_citizen_id"),
)


def upgrade() -> None:
    for table_name, column in _COLUMNS:
        with op.batch_alter_table(table_name) as table:
            table.add_column(
                sa.Column(column, sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
            )
            table.create_foreign_key(
                f"fk_{table_name}_{column}_citizens",
                "citizens",
                [column],
                ["id"],
                ondelete="CASCADE",
            )
            table.create_index(f"ix_{table_name}_{column}", [column])


def downgrade() -> None:
    for table_name, column in reversed(_COLUMNS):
        with op.batch_alter_table(table_name) as table:
            table.drop_index(f"ix_{table_name}_{column}")
            table.drop_constraint(f"fk_{table_name}_{column}_citizens", type_="foreignkey")
            table.drop_column(column)
