"""states: CHECK constraints from the state enums (worker/core/states.py)

Every state, outcome, kind and route column may hold only its enum's values; NULL
(an item's outcome while on its way) passes. On SQLite a CHECK constraint cannot be
added to an existing table, so batch mode rebuilds each table (with its rows, indexes
and foreign keys; env.py switches foreign key enforcement off around it). PostgreSQL
adds each constraint in place, checking the rows already there.

The values are written out here, not read from the enums: a migration states the
schema as it was at its revision.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECKS: dict[str, dict[str, tuple[str, ...]]] = {
    "source": {"kind": ("feed", "page")},
    "item": {
        "state": ("pending", "parsed", "duplicate", "failed", "refused"),
        "outcome": (
            "matched",
            "story_duplicate",
            "excluded",
            "no_match",
            "duplicate",
            "refused",
            "quarantined",
        ),
    },
    "article": {"rules_state": ("pending", "done", "failed")},
    "match": {"state": ("alerted", "duplicate")},
    "delivery": {
        "state": ("pending", "batched", "failed", "sent", "dead"),
        "kind": ("alert", "update", "notice"),
        "route": ("immediate", "digest", "throttle", "quiet"),
    },
    "digest_batch": {"state": ("open", "sending", "sent", "failed", "dead")},
}


def _condition(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    for table, columns in CHECKS.items():
        with op.batch_alter_table(table) as batch_op:
            for column, values in columns.items():
                batch_op.create_check_constraint(
                    op.f(f"ck_{table}_{column}"), _condition(column, values)
                )


def downgrade() -> None:
    for table, columns in reversed(CHECKS.items()):
        with op.batch_alter_table(table) as batch_op:
            for column in columns:
                batch_op.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
