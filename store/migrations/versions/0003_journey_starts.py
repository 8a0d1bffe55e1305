"""journey starts outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "journey_starts",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["monitoring_accounts.id"]),
        sa.PrimaryKeyConstraint("account_id"),
    )
    with op.batch_alter_table("journey_starts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_journey_starts_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("journey_starts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journey_starts_status"))
    op.drop_table("journey_starts")
