"""the member's side: change of e-mail, circle cancellation mark

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_email_changes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("new_email", sa.String(length=254), nullable=False),
        sa.Column("old_email", sa.String(length=254), nullable=True),
        sa.Column("token_sha256", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mailed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["points_members.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    with op.batch_alter_table("member_email_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_member_email_changes_member_id"), ["member_id"], unique=False
        )
        batch_op.create_index(
            "uq_member_email_changes_pending_member",
            ["member_id"],
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
    with op.batch_alter_table("points_members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("circle_cancelled_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_points_members_circle_cancelled_at"),
            ["circle_cancelled_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("points_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_points_members_circle_cancelled_at"))
        batch_op.drop_column("circle_cancelled_at")
    with op.batch_alter_table("member_email_changes", schema=None) as batch_op:
        batch_op.drop_index("uq_member_email_changes_pending_member")
        batch_op.drop_index(batch_op.f("ix_member_email_changes_member_id"))
    op.drop_table("member_email_changes")
