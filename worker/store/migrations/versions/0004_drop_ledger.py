"""drop ledger: an outcome on every item, an error kind on items and articles

Items gain `outcome` (no_match, excluded, duplicate, story_duplicate, refused,
quarantined, matched) with `outcome_detail` (the reason and its evidence), and
`error_kind` (what the last error was: a fetch error kind, extraction,
time_limit, internal, killed); articles gain `error_kind`. An index on
item.article_id lets the rules step write its outcome to every item of an article
without a scan; one on match.article_id finds an article's matches (newswatch why).

Rows stored before this revision get the outcome their states already tell:
duplicates, quarantined items and articles, and the items of articles whose rules
ran (matched, story_duplicate, or no_match: which watchlist an exclude removed
was not recorded then).

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = "recorded before the drop ledger (migration 0004)"


def upgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_kind", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("outcome_detail", sa.Text(), nullable=True))
        batch_op.create_index("ix_item_article_id", ["article_id"], unique=False)
        batch_op.create_index("ix_item_outcome", ["outcome"], unique=False)
    with op.batch_alter_table("article", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_kind", sa.String(length=40), nullable=True))
    with op.batch_alter_table("match", schema=None) as batch_op:
        batch_op.create_index("ix_match_article_id", ["article_id"], unique=False)

    # the outcomes the old rows already tell (|| concatenates on SQLite and PostgreSQL)
    for sql in (
        f"""UPDATE item SET outcome = 'duplicate', outcome_detail =
            'same canonical URL or content hash as article ' || article_id || ' ({BEFORE})'
            WHERE state = 'duplicate' AND article_id IS NOT NULL""",
        f"""UPDATE item SET outcome = 'quarantined',
            outcome_detail = COALESCE(error, 'quarantined ({BEFORE})')
            WHERE state = 'failed'""",
        f"""UPDATE item SET outcome = 'refused',
            outcome_detail = COALESCE(error, 'refused ({BEFORE})')
            WHERE state = 'refused'""",
        f"""UPDATE item SET outcome = 'quarantined', outcome_detail =
            'rules failed on article ' || article_id || ' ({BEFORE})'
            WHERE state = 'parsed' AND article_id IN
              (SELECT id FROM article WHERE rules_state = 'failed')""",
        f"""UPDATE item SET outcome = 'matched', outcome_detail = 'alerted ({BEFORE})'
            WHERE state = 'parsed' AND outcome IS NULL AND article_id IN
              (SELECT article_id FROM "match" WHERE state = 'alerted')""",
        f"""UPDATE item SET outcome = 'story_duplicate',
            outcome_detail = 'its story had already alerted ({BEFORE})'
            WHERE state = 'parsed' AND outcome IS NULL AND article_id IN
              (SELECT article_id FROM "match")""",
        f"""UPDATE item SET outcome = 'no_match',
            outcome_detail = 'no watchlist matched ({BEFORE})'
            WHERE state = 'parsed' AND outcome IS NULL AND article_id IN
              (SELECT id FROM article WHERE rules_state = 'done')""",
    ):
        op.execute(sa.text(sql))


def downgrade() -> None:
    with op.batch_alter_table("match", schema=None) as batch_op:
        batch_op.drop_index("ix_match_article_id")
    with op.batch_alter_table("article", schema=None) as batch_op:
        batch_op.drop_column("error_kind")
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_index("ix_item_outcome")
        batch_op.drop_index("ix_item_article_id")
        batch_op.drop_column("outcome_detail")
        batch_op.drop_column("outcome")
        batch_op.drop_column("error_kind")
