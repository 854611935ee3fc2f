"""Initial schema: patients, calls, check-ins, answers, alerts, audit events.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

import ivr_cbt.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("call_sid", sa.String(length=34), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_patient_id_at", ["patient_id", "at"], unique=False)

    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("pin_hash", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("program_start", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "paused",
                "opted-out",
                name="patient_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("code", name=op.f("uq_patients_code")),
        sa.UniqueConstraint("phone", name=op.f("uq_patients_phone")),
    )
    op.create_table(
        "checkins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("week", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "in-progress",
                "partial",
                "complete",
                "missed",
                name="checkin_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("next_item", sa.String(length=32), nullable=True),
        sa.Column("started_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.Column("completed_at", ivr_cbt.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_checkins_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkins")),
        sa.UniqueConstraint("patient_id", "week", name=op.f("uq_checkins_patient_id_week")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("checkin_id", sa.Integer(), nullable=True),
        sa.Column("call_sid", sa.String(length=34), nullable=True),
        sa.Column("created_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.Column("notified_at", ivr_cbt.db.UTCDateTime(), nullable=True),
        sa.Column("acknowledged_at", ivr_cbt.db.UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["checkin_id"], ["checkins.id"], name=op.f("fk_alerts_checkin_id_checkins"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_alerts_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checkin_id", sa.Integer(), nullable=False),
        sa.Column("item_key", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("raw_input", sa.String(length=200), nullable=True),
        sa.Column("input_mode", sa.String(length=8), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("scale_min", sa.Integer(), nullable=False),
        sa.Column("scale_max", sa.Integer(), nullable=False),
        sa.Column("scale_anchors", sa.JSON(), nullable=False),
        sa.Column("scale_direction", sa.String(length=24), nullable=False),
        sa.Column("call_sid", sa.String(length=34), nullable=False),
        sa.Column("answered_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["checkin_id"], ["checkins.id"], name=op.f("fk_answers_checkin_id_checkins"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answers")),
        sa.UniqueConstraint("checkin_id", "item_key", name=op.f("uq_answers_checkin_id_item_key")),
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=34), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("checkin_id", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answered_by", sa.String(length=24), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("flow_id", sa.String(length=64), nullable=False),
        sa.Column("flow_state", sa.JSON(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("last_twiml", sa.Text(), nullable=True),
        sa.Column("created_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.Column("answered_at", ivr_cbt.db.UTCDateTime(), nullable=True),
        sa.Column("ended_at", ivr_cbt.db.UTCDateTime(), nullable=True),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["checkin_id"], ["checkins.id"], name=op.f("fk_calls_checkin_id_checkins"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_calls_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("call_sid", name=op.f("uq_calls_call_sid")),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calls_checkin_id"), ["checkin_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_patient_id"), ["patient_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_patient_id"))
        batch_op.drop_index(batch_op.f("ix_calls_checkin_id"))

    op.drop_table("calls")
    op.drop_table("answers")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_patient_id"))

    op.drop_table("alerts")
    op.drop_table("checkins")
    op.drop_table("patients")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_patient_id_at")

    op.drop_table("audit_events")
