"""operator audit

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operator_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("workflow_id", sa.String(length=100), nullable=False),
        sa.Column("before_stage", sa.String(length=40), nullable=True),
        sa.Column("after_stage", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=60), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("operator_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_operator_audit_operator"), ["operator"])
        batch_op.create_index(batch_op.f("ix_operator_audit_workflow_id"), ["workflow_id"])


def downgrade() -> None:
    with op.batch_alter_table("operator_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operator_audit_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_operator_audit_operator"))
    op.drop_table("operator_audit")
