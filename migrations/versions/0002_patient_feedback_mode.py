"""Patients get a feedback mode (the program arm): monitoring, automated or guided.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MODES = ("monitoring", "automated", "guided")


def upgrade() -> None:
    with op.batch_alter_table("patients") as batch_op:
        batch_op.add_column(
            sa.Column(
                "feedback_mode",
                sa.Enum(*MODES, name="feedback_mode", native_enum=False, create_constraint=False, length=16),
                server_default="automated",
                nullable=False,
            )
        )
        batch_op.create_check_constraint("feedback_mode", sa.column("feedback_mode").in_(MODES))


def downgrade() -> None:
    with op.batch_alter_table("patients") as batch_op:
        batch_op.drop_constraint("feedback_mode", type_="check")
        batch_op.drop_column("feedback_mode")
