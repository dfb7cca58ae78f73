"""dashboard: a source's articles

The dashboard's Alerts page filtered by a source reads that source's articles and their
matches (worker/store/dashboard.py). Without an index on article.source_id a quiet source
meant walking every match ever made (0.6 s with 1 million articles and 100,000 matches,
bench/dashboard.py; docs/dashboard.md).

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_article_source_id", "article", ["source_id"])


def downgrade() -> None:
    op.drop_index("ix_article_source_id", table_name="article")
