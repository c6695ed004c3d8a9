"""Audit chains: many hash chains, each with its head row, and signed checkpoints over them.

The one chain that existed becomes chain 1, and its head row chain 1's head, so every event
keeps its sequence number and hash and still verifies.

Revision ID: f1a3c5e7b902
Revises: e5b2c8d4f716
Create Date: 2026-12-06 02:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f1a3c5e7b902"
down_revision: str | None = "e5b2c8d4f716"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_chains",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("sequence", ID, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("appended_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chains")),
    )
    # The table is new, so the first generated id is 1: the old head becomes chain 1's (and,
    # with no process holding it, is taken by the first that needs a chain an hour on).
    op.execute(
        "INSERT INTO audit_chains (sequence, hash, appended_at) "
        "SELECT sequence, hash, CURRENT_TIMESTAMP FROM audit_head WHERE sequence > 0"
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_index(op.f("ix_audit_checkpoints_created_at"), "audit_checkpoints", ["created_at"])
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("chain", ID, nullable=False, server_default="1"))
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("chain", server_default=None, existing_type=ID)
        batch.drop_constraint(op.f("uq_audit_events_sequence"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_audit_events_chain_sequence"), ["chain", "sequence"]
        )
        batch.create_foreign_key(
            op.f("fk_audit_events_chain_audit_chains"), "audit_chains", ["chain"], ["id"]
        )
    op.drop_table("audit_head")


def downgrade() -> None:
    connection = op.get_bind()
    if connection.scalar(sa.text("SELECT count(*) FROM audit_events WHERE chain <> 1")):
        # One chain cannot hold the others' events under their sequence numbers and hashes.
        raise RuntimeError("audit events in chains other than 1 cannot be downgraded")
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence", ID, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    row = connection.execute(
        sa.text("SELECT sequence, hash FROM audit_chains WHERE id = 1")
    ).first()
    sequence, hash_ = (row[0], row[1]) if row is not None else (0, "0" * 64)
    op.bulk_insert(head, [{"id": 1, "sequence": sequence, "hash": hash_}])
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint(op.f("fk_audit_events_chain_audit_chains"), type_="foreignkey")
        batch.drop_constraint(op.f("uq_audit_events_chain_sequence"), type_="unique")
        batch.create_unique_constraint(op.f("uq_audit_events_sequence"), ["sequence"])
        batch.drop_column("chain")
    op.drop_index(op.f("ix_audit_checkpoints_created_at"), table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chains")
