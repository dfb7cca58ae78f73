"""watchdog: feed windows and gaps, watchdog incidents and the heartbeat

The window a feed showed on its last successful poll (size, newest entry date, hashed
links and content digests) goes on its source row, so that the next poll can tell
whether the feed moved past everything seen (worker/sources/gaps.py). Each such gap is a
`source_gap` row. `watchdog_state` holds one row per watchdog condition (when its
current incident opened, so that it notifies once) and one for the heartbeat (when it
was last pinged, so that no process pings more often than configured).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("source", sa.Column("window_size", sa.Integer(), nullable=True))
    op.add_column("source", sa.Column("window_newest_at", sa.DateTime(), nullable=True))
    op.add_column("source", sa.Column("window_tokens", sa.JSON(), nullable=True))
    op.create_table(
        "source_gap",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("detected_at", sa.DateTime(), nullable=False),
        sa.Column("basis", sa.String(length=10), nullable=False),
        sa.Column("visible", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("oldest_visible_at", sa.DateTime(), nullable=True),
        sa.Column("previous_poll_at", sa.DateTime(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("notified_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["source.id"], name=op.f("fk_source_gap_source_id_source")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_gap")),
    )
    op.create_index("ix_source_gap_source_detected", "source_gap", ["source_id", "detected_at"])
    op.create_index("ix_source_gap_detected_at", "source_gap", ["detected_at"])
    op.create_table(
        "watchdog_state",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_watchdog_state")),
    )


def downgrade() -> None:
    op.drop_table("watchdog_state")
    op.drop_index("ix_source_gap_detected_at", table_name="source_gap")
    op.drop_index("ix_source_gap_source_detected", table_name="source_gap")
    op.drop_table("source_gap")
    op.drop_column("source", "window_tokens")
    op.drop_column("source", "window_newest_at")
    op.drop_column("source", "window_size")
