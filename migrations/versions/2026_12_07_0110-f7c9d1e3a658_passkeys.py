"""Passkeys (WebAuthn): each citizen's enrolled credentials with their public keys and
signature counters, the challenges given out for a ceremony (single use, five minutes), and
the user handle every passkey of a citizen carries.

Revision ID: f7c9d1e3a658
Revises: e6b8c0d2f547
Create Date: 2026-12-07 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f7c9d1e3a658"
down_revision: str | None = "e6b8c0d2f547"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("citizen_accounts") as table:
        table.add_column(sa.Column("passkey_user_handle", sa.String(length=64), nullable=True))
        table.create_unique_constraint(
            op.f("uq_citizen_accounts_passkey_user_handle"), ["passkey_user_handle"]
        )
    op.create_table(
        "passkeys",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("citizen_id", _ID, nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("device_bound", sa.Boolean(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizens.id"],
            name=op.f("fk_passkeys_citizen_id_citizens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkeys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_passkeys_credential_id")),
    )
    op.create_index(op.f("ix_passkeys_citizen_id"), "passkeys", ["citizen_id"])
    op.create_table(
        "passkey_challenges",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("challenge_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("citizen_id", _ID, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizens.id"],
            name=op.f("fk_passkey_challenges_citizen_id_citizens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkey_challenges")),
        sa.UniqueConstraint("challenge_hash", name=op.f("uq_passkey_challenges_challenge_hash")),
    )
    op.create_index(op.f("ix_passkey_challenges_expires_at"), "passkey_challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_table("passkey_challenges")
    op.drop_table("passkeys")
    with op.batch_alter_table("citizen_accounts") as table:
        table.drop_constraint(op.f("uq_citizen_accounts_passkey_user_handle"), type_="unique")
        table.drop_column("passkey_user_handle")
