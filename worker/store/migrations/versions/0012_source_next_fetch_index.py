"""dispatch: the sources due, from an index

Every dispatch tick claims the enabled sources whose next_fetch_at has passed, oldest
first (worker/store/sources.py). Without an index on next_fetch_at PostgreSQL reads the
whole source table and sorts it for that each tick; at 100,000 sources, one claim of
about 3,000 due rows took a median 43 ms with the scan and 33 ms with this index
(bench/due_index.py, 5 rounds each, load 0.9; most of the rest is the UPDATE itself).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_source_next_fetch_at", "source", ["next_fetch_at"])


def downgrade() -> None:
    op.drop_index("ix_source_next_fetch_at", table_name="source")
