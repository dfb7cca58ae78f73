"""dashboard: a source's items per day

The dashboard's Sources page draws each source's feed entries per day over 7 days
(worker/store/panels.py items_per_day): an index on item (created_at, source_id) lets
PostgreSQL count them from the index alone instead of reading a week of item rows
(each with the feed's JSON) from the table (bench/dashboard.py; docs/dashboard.md).

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_item_created_source", "item", ["created_at", "source_id"])


def downgrade() -> None:
    op.drop_index("ix_item_created_source", table_name="item")
