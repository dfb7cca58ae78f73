"""retention: indexes for pruning by age, and item content stored once

Indexes that let worker/service/retention.py find rows past their retention by age and
delete parents without scanning their children (a foreign-key check on delete
looks the child rows up): item, delivery and delivery attempt by age; the
articles whose text is still kept (partial, so cleared ones are never walked
again); fingerprint bands and story alerts by their parent (matches by article: 0004).

Items already parsed keep their feed text in `data` twice (the article has it):
the copy is dropped here once, as the parser now does for every new item.

Self-contained: only this revision's own indexes and the one-off trim.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEPT = "body <> ''"


def upgrade() -> None:
    op.create_index("ix_item_created_at", "item", ["created_at"])
    op.create_index(
        "ix_article_text_kept",
        "article",
        ["created_at"],
        sqlite_where=sa.text(KEPT),
        postgresql_where=sa.text(KEPT),
    )
    op.create_index("ix_fingerprint_band_article_id", "fingerprint_band", ["article_id"])
    op.create_index("ix_story_alert_match_id", "story_alert", ["match_id"])
    op.create_index("ix_delivery_created_at", "delivery", ["created_at"])
    op.create_index("ix_delivery_attempt_at", "delivery_attempt", ["at"])
    # the feed's text of parsed items lives on in their article (worker.service.retention.ITEM_TEXT)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE item SET data = (data::jsonb - 'content_html' - 'summary')::json "
            "WHERE state IN ('parsed', 'duplicate')"
        )
    else:
        op.execute(
            "UPDATE item SET data = json_remove(data, '$.content_html', '$.summary') "
            "WHERE state IN ('parsed', 'duplicate')"
        )


def downgrade() -> None:
    op.drop_index("ix_delivery_attempt_at", table_name="delivery_attempt")
    op.drop_index("ix_delivery_created_at", table_name="delivery")
    op.drop_index("ix_story_alert_match_id", table_name="story_alert")
    op.drop_index("ix_fingerprint_band_article_id", table_name="fingerprint_band")
    op.drop_index("ix_article_text_kept", table_name="article")
    op.drop_index("ix_item_created_at", table_name="item")
