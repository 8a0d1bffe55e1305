"""derived signup link tokens: a salt and a request key per link

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signup_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("salt", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("request_key", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint("uq_signup_links_request_key", ["request_key"])


def downgrade() -> None:
    with op.batch_alter_table("signup_links", schema=None) as batch_op:
        batch_op.drop_constraint("uq_signup_links_request_key", type_="unique")
        batch_op.drop_column("request_key")
        batch_op.drop_column("salt")
