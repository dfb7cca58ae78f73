"""dashboard: a watchlist's matches by time

The dashboard's Alerts page filtered by watchlist and the Watchlist page's mentions per
day read one watchlist's matches newest first (worker/store/dashboard.py): an index on
(watchlist, created_at) serves both without walking every match.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_match_watchlist_created", "match", ["watchlist", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_match_watchlist_created", table_name="match")
