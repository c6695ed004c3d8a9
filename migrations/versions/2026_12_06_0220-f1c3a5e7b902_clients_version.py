"""Clients version: one counter every change to the clients table bumps, so a server's
cache of client registrations knows when to read them again.

A trigger bumps it, not the code that changes a client, so every writer counts: the CLI in
another process, a migration, an operator's SQL.

Revision ID: f1c3a5e7b902
Revises: f1a3c5e7b902
Create Date: 2026-12-06 02:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f1c3a5e7b902"
down_revision: str | None = "f1a3c5e7b902"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written as an insert, so a missing row (a database emptied table by table) comes back.
_BUMP = (
    "INSERT OR REPLACE INTO clients_version (id, version) "
    "VALUES (1, coalesce((SELECT version FROM clients_version WHERE id = 1), 0) + 1)"
)
_BUMP_POSTGRESQL = (
    "INSERT INTO clients_version (id, version) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = clients_version.version + 1"
)


def upgrade() -> None:
    op.create_table(
        "clients_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients_version")),
    )
    op.execute("INSERT INTO clients_version (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bump_clients_version() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {_BUMP_POSTGRESQL}; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            "ON clients FOR EACH STATEMENT EXECUTE FUNCTION bump_clients_version()"
        )
    else:
        for change in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER clients_{change.lower()}d AFTER {change} ON clients "
                f"BEGIN {_BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER clients_changed ON clients")
        op.execute("DROP FUNCTION bump_clients_version()")
    else:
        for change in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER clients_{change}d")
    op.drop_table("clients_version")
