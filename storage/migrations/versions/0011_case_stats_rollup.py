"""Case statistics: incident_stats_rollup (the settled cases' measures per local day and month and
unit, kept in step with incidents by gateway.alarms.rollup; filled at the gateway's start) and the
partial index of the cases still in the field

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MEASURES = ("received", "dispatched", "onsite_due", "onsite_ok", "resolve_due", "resolve_ok", "closed", "overdue")
STATS_COLUMNS = (
    "created_at",
    "area",
    "station",
    "dispatched_to",
    "state",
    "dispatched_at",
    "onsite_deadline",
    "onsite_at",
    "resolve_deadline",
    "resolved_at",
)
UNSETTLED = sa.text(
    "((onsite_deadline IS NOT NULL AND onsite_at IS NULL) OR (resolve_deadline IS NOT NULL AND resolved_at IS NULL))"
)


def upgrade() -> None:
    op.create_table(
        "incident_stats_rollup",
        sa.Column("dim", sa.String(length=16), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        *(sa.Column(m, sa.Integer(), nullable=False) for m in MEASURES),
        sa.PrimaryKeyConstraint("dim", "grain", "period", "unit", name=op.f("pk_incident_stats_rollup")),
    )
    op.create_index(
        "ix_incidents_unsettled",
        "incidents",
        list(STATS_COLUMNS),
        unique=False,
        sqlite_where=UNSETTLED,
        postgresql_where=UNSETTLED,
    )


def downgrade() -> None:
    op.drop_index("ix_incidents_unsettled", table_name="incidents")
    op.drop_table("incident_stats_rollup")
