"""articles: canonical URLs in their RFC 3986 form

worker/core/urls.canonical_url now normalises a URL as RFC 3986 section 6 says (dot
segments, percent-escape case, unreserved characters decoded, non-ASCII paths
percent-encoded, IDN hosts as punycode) before filtering tracking parameters. The stored
keys are rewritten to that form, so that a story stored before the upgrade and seen
again after it is recognised by its URL, as before, and never alerts a second time.

Where two stored articles now share one key (the old form told them apart: `/a/../b`
and `/b`), the first keeps it and the other keeps its old key: they were two rows
already and stay so. Rows whose key does not change are not written. Downgrade leaves
the keys as they are (the old code reads them: they are still URLs).

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from worker.core.urls import canonical_url

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000
_article = sa.table("article", sa.column("id", sa.Integer), sa.column("canonical_url", sa.String))


def upgrade() -> None:
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.select(_article.c.id, _article.c.canonical_url)
            .where(_article.c.id > last)
            .order_by(_article.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        last = rows[-1].id
        for row in rows:
            _rewrite(conn, row.id, row.canonical_url)


def _rewrite(conn: sa.Connection, article_id: int, old: str) -> None:
    if old.startswith("urn:"):  # an entry without a link: not a URL
        return
    new = canonical_url(old)
    if new == old or len(new) > 2000:
        return
    taken = conn.execute(sa.select(_article.c.id).where(_article.c.canonical_url == new)).first()
    if taken is None:
        conn.execute(
            sa.update(_article).where(_article.c.id == article_id).values(canonical_url=new)
        )


def downgrade() -> None:
    pass
