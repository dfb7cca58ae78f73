"""outbox: alert policies, digest batches, story updates, notices

Delivery rows gain a kind (alert | update | notice), the watchlist (for the
throttle count), the digest batch holding them and, for notices, an incident
key unique per channel; match_id becomes optional (notices have no match).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 07:48:50.063367
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "digest_batch",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_batch")),
        sa.UniqueConstraint("channel", "due_at", name=op.f("uq_digest_batch_channel_due_at")),
    )
    with op.batch_alter_table("digest_batch", schema=None) as batch_op:
        batch_op.create_index(
            "ix_digest_batch_state_next", ["state", "next_attempt_at"], unique=False
        )

    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=12), nullable=False, server_default="alert")
        )
        batch_op.add_column(sa.Column("watchlist", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("batch_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("route", sa.String(length=12), nullable=False, server_default="immediate")
        )
        batch_op.add_column(sa.Column("notice_key", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("notice", sa.JSON(), nullable=True))
        batch_op.alter_column("match_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_index(batch_op.f("ix_delivery_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            "ix_delivery_throttle", ["channel", "watchlist", "created_at"], unique=False
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_delivery_notice_key_channel"), ["notice_key", "channel"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_delivery_batch_id_digest_batch"), "digest_batch", ["batch_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_delivery_batch_id_digest_batch"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_delivery_notice_key_channel"), type_="unique")
        batch_op.drop_index("ix_delivery_throttle")
        batch_op.drop_index(batch_op.f("ix_delivery_batch_id"))
        batch_op.alter_column("match_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("notice")
        batch_op.drop_column("notice_key")
        batch_op.drop_column("route")
        batch_op.drop_column("batch_id")
        batch_op.drop_column("watchlist")
        batch_op.drop_column("kind")

    with op.batch_alter_table("digest_batch", schema=None) as batch_op:
        batch_op.drop_index("ix_digest_batch_state_next")

    op.drop_table("digest_batch")
