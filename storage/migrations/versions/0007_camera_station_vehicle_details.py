"""cameras carry their neighbourhood station; vehicles their driver, escort and company

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "station",
                sa.String(length=64),
                server_default="",
                nullable=False,
                comment="neighbourhood station (居村委)",
            )
        )
        batch_op.create_index(batch_op.f("ix_cameras_station"), ["station"], unique=False)
    with op.batch_alter_table("vehicles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("driver", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("driver_phone", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("escort", sa.String(length=64), nullable=True, comment="truck escort (押运员)"))
        batch_op.add_column(sa.Column("company", sa.String(length=128), nullable=True, comment="operator or carrier"))


def downgrade() -> None:
    with op.batch_alter_table("vehicles", schema=None) as batch_op:
        batch_op.drop_column("company")
        batch_op.drop_column("escort")
        batch_op.drop_column("driver_phone")
        batch_op.drop_column("driver")
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cameras_station"))
        batch_op.drop_column("station")
