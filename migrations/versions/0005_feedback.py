"""Weekly feedback: messages, therapists' recordings, goal overrides; the message a call plays; an
index on a patient's check-ins by week.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

import ivr_cbt.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MODES = ("monitoring", "automated", "guided")
STATUSES = ("pending-review", "ready", "delivered", "superseded")


def _enum(values, name):
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "feedback_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("week", sa.Integer(), nullable=False),
        sa.Column("mode", _enum(MODES, "feedback_mode"), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("status", _enum(STATUSES, "feedback_status"), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("generated_segments", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source_stamp", ivr_cbt.db.UTCDateTime(), nullable=True),
        sa.Column("edited", sa.Boolean(), nullable=False),
        sa.Column("source_changed", sa.Boolean(), nullable=False),
        sa.Column("generated_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.Column("reviewed_at", ivr_cbt.db.UTCDateTime(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=200), nullable=True),
        sa.Column("delivered_at", ivr_cbt.db.UTCDateTime(), nullable=True),
        sa.Column("delivered_call_sid", sa.String(length=34), nullable=True),
        sa.Column("plays", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_feedback_messages_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_messages")),
        sa.UniqueConstraint("patient_id", "week", name=op.f("uq_feedback_messages_patient_id_week")),
    )
    with op.batch_alter_table("feedback_messages", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_messages_status_week", ["status", "week"], unique=False)

    op.create_table(
        "feedback_recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("audio", sa.LargeBinary(), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=True),
        sa.Column("uploaded_by", sa.String(length=200), nullable=False),
        sa.Column("uploaded_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["feedback_messages.id"],
            name=op.f("fk_feedback_recordings_message_id_feedback_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_recordings")),
        sa.UniqueConstraint("token", name=op.f("uq_feedback_recordings_token")),
    )
    with op.batch_alter_table("feedback_recordings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_recordings_message_id"), ["message_id"], unique=False)

    op.create_table(
        "goal_overrides",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("week", sa.Integer(), nullable=False),
        sa.Column("steps_goal", sa.Integer(), nullable=True),
        sa.Column("practice_days_goal", sa.Integer(), nullable=True),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("set_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_goal_overrides_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("patient_id", "week", name=op.f("pk_goal_overrides")),
    )

    with op.batch_alter_table("checkins", schema=None) as batch_op:
        batch_op.create_index("ix_checkins_patient_id_week", ["patient_id", "week"], unique=False)

    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feedback_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("feedback_version", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_calls_feedback_id_feedback_messages"),
            "feedback_messages",
            ["feedback_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_calls_feedback_id_feedback_messages"), type_="foreignkey")
        batch_op.drop_column("feedback_version")
        batch_op.drop_column("feedback_id")
    with op.batch_alter_table("checkins", schema=None) as batch_op:
        batch_op.drop_index("ix_checkins_patient_id_week")
    op.drop_table("goal_overrides")
    with op.batch_alter_table("feedback_recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_recordings_message_id"))
    op.drop_table("feedback_recordings")
    with op.batch_alter_table("feedback_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_messages_status_week")
    op.drop_table("feedback_messages")
