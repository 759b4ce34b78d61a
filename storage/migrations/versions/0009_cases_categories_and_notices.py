"""cases: origin, category, station, address, encrypted reporter, step times, handlers, attachments;
incident categories; the notification outbox

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 16:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_categories",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("onsite_hours", sa.Float(), nullable=False),
        sa.Column("resolve_hours", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", storage.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_incident_categories")),
    )
    op.create_table(
        "incident_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("incident_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", storage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=False),
        sa.Column("created_at", storage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", storage.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_notices")),
        sa.UniqueConstraint("key", name=op.f("uq_incident_notices_key")),
    )
    with op.batch_alter_table("incident_notices", schema=None) as batch_op:
        batch_op.create_index("ix_incident_notices_due", ["state", "next_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_incident_notices_incident_id"), ["incident_id"], unique=False)
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        # Incidents from before this revision were born from alarms.
        batch_op.add_column(sa.Column("origin", sa.String(length=16), nullable=False, server_default="alarm"))
        batch_op.add_column(sa.Column("category", sa.String(length=32), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("station", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("address", sa.String(length=300), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("reporter_name_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("reporter_phone_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("created_by", sa.String(length=64), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("dispatched_at", storage.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("onsite_at", storage.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolved_at", storage.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_at", storage.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("handlers", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column("attachments", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.create_index(batch_op.f("ix_incidents_origin"), ["origin"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_category"), ["category"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_station"), ["station"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            "ix_incidents_stats",
            [
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
            ],
            unique=False,
        )
    # The category of an alarm-born incident is its alarm type.
    op.execute("UPDATE incidents SET category = type WHERE category = ''")


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_stats")
        for ix in ("created_at", "station", "category", "origin"):
            batch_op.drop_index(batch_op.f(f"ix_incidents_{ix}"))
        for col in (
            "attachments",
            "handlers",
            "closed_at",
            "resolved_at",
            "onsite_at",
            "dispatched_at",
            "created_by",
            "reporter_phone_enc",
            "reporter_name_enc",
            "address",
            "station",
            "category",
            "origin",
        ):
            batch_op.drop_column(col)
    with op.batch_alter_table("incident_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_notices_incident_id"))
        batch_op.drop_index("ix_incident_notices_due")
    op.drop_table("incident_notices")
    op.drop_table("incident_categories")
