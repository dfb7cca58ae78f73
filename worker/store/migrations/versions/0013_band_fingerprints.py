"""stories: the fingerprint beside each band key, read from one index

The story lookup (worker/articles/stories.py) keeps the band-sharing articles whose
fingerprints are at most 16 bits from the new one. With the fingerprint only on the
article, PostgreSQL fetched every band-sharing article's row to read it (about 7% of the
window's articles for real text), or scanned the whole window; with it beside the band
key, in an index on (band_key, article_id, fingerprint), the candidates come from that
index alone and only the close few reach the article table (bench/story_lookup.py).

Rows stored before take their article's fingerprint here.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fingerprint_band") as batch:
        batch.add_column(sa.Column("fingerprint", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE fingerprint_band SET fingerprint = "
        "(SELECT article.fingerprint FROM article WHERE article.id = fingerprint_band.article_id)"
    )
    op.create_index(
        "ix_fingerprint_band_lookup", "fingerprint_band", ["band_key", "article_id", "fingerprint"]
    )


def downgrade() -> None:
    op.drop_index("ix_fingerprint_band_lookup", table_name="fingerprint_band")
    with op.batch_alter_table("fingerprint_band") as batch:
        batch.drop_column("fingerprint")
