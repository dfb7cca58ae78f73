"""disabled webhook endpoints (410 Gone)

Revision ID: 0003
Revises: 0002
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
        "disabled_endpoint",
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("url", name=op.f("pk_disabled_endpoint")),
    )


def downgrade() -> None:
    op.drop_table("disabled_endpoint")
