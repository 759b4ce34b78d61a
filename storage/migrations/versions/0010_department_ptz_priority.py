"""PTZ: departments.ptz_priority (who wins a camera; NULL: the gateway's default for the unit) and
camera_ptz (a camera's PTZ driver, control address, profile and sealed credentials)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.db import UtcDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("departments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ptz_priority", sa.Integer(), nullable=True))
    op.create_table(
        "camera_ptz",
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("driver", sa.String(length=16), nullable=False),
        sa.Column(
            "url", sa.String(length=2048), nullable=False, comment="the device service address, without credentials"
        ),
        sa.Column("profile", sa.String(length=64), nullable=False, comment="the media profile PTZ is bound to"),
        sa.Column("credentials_enc", sa.Text(), nullable=True, comment="encrypted user:password"),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name=op.f("fk_camera_ptz_camera_id_cameras"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("camera_id", name=op.f("pk_camera_ptz")),
    )


def downgrade() -> None:
    op.drop_table("camera_ptz")
    with op.batch_alter_table("departments", schema=None) as batch_op:
        batch_op.drop_column("ptz_priority")
