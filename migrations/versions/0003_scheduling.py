"""Scheduling: patient call schedules, the call-attempt queue, dispatch pacing, daily check-ins.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

import ivr_cbt.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ATTEMPT_STATES = ("pending", "claimed", "placing", "placed", "ambiguous", "done")


def _enum(name: str, values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=False, length=16)


def upgrade() -> None:
    op.create_table(
        "dispatch_pacing",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("next_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_pacing")),
    )
    op.create_table(
        "call_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.String(length=64), nullable=False),
        sa.Column("week", sa.Integer(), nullable=False),
        sa.Column("slot_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.Column("slot_local", sa.String(length=32), nullable=False),
        sa.Column("slot_deadline", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("due_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.Column("state", _enum("attempt_state", ATTEMPT_STATES), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("lease_until", ivr_cbt.db.UTCDateTime(), nullable=True),
        sa.Column("call_sid", sa.String(length=34), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=True),
        sa.Column("created_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", ivr_cbt.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_call_attempts_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_attempts")),
        sa.UniqueConstraint(
            "patient_id", "slot_at", "attempt", name=op.f("uq_call_attempts_patient_id_slot_at_attempt")
        ),
        sa.CheckConstraint(sa.column("state").in_(ATTEMPT_STATES), name=op.f("ck_call_attempts_attempt_state")),
    )
    op.create_index("ix_call_attempts_call_sid", "call_attempts", ["call_sid"])
    op.create_index("ix_call_attempts_state_due_at", "call_attempts", ["state", "due_at"])

    with op.batch_alter_table("calls") as batch_op:
        batch_op.add_column(sa.Column("attempt_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_calls_attempt_id", ["attempt_id"])
        batch_op.create_foreign_key(
            "fk_calls_attempt_id_call_attempts", "call_attempts", ["attempt_id"], ["id"], ondelete="SET NULL"
        )

    with op.batch_alter_table("checkins") as batch_op:
        batch_op.add_column(
            sa.Column("kind", _enum("checkin_kind", ("weekly", "daily")), server_default="weekly", nullable=False)
        )
        batch_op.add_column(sa.Column("day", sa.Date(), nullable=True))
        batch_op.create_check_constraint("checkin_kind", sa.column("kind").in_(("weekly", "daily")))
        batch_op.drop_constraint("uq_checkins_patient_id_week", type_="unique")
        batch_op.create_index(
            "uq_checkins_weekly",
            ["patient_id", "week"],
            unique=True,
            sqlite_where=sa.text("kind = 'weekly'"),
            postgresql_where=sa.text("kind = 'weekly'"),
        )
        batch_op.create_index(
            "uq_checkins_daily",
            ["patient_id", "day"],
            unique=True,
            sqlite_where=sa.text("kind = 'daily'"),
            postgresql_where=sa.text("kind = 'daily'"),
        )

    with op.batch_alter_table("patients") as batch_op:
        batch_op.add_column(sa.Column("call_day", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("call_time", sa.Time(), server_default="10:00:00", nullable=False))
        batch_op.add_column(sa.Column("window_start", sa.Time(), server_default="09:00:00", nullable=False))
        batch_op.add_column(sa.Column("window_end", sa.Time(), server_default="20:00:00", nullable=False))
        batch_op.add_column(
            sa.Column("cadence", _enum("cadence", ("weekly", "daily")), server_default="weekly", nullable=False)
        )
        batch_op.add_column(sa.Column("program_weeks", sa.Integer(), server_default="11", nullable=False))
        batch_op.add_column(sa.Column("opted_out_at", ivr_cbt.db.UTCDateTime(), nullable=True))
        batch_op.create_check_constraint("cadence", sa.column("cadence").in_(("weekly", "daily")))


def downgrade() -> None:
    with op.batch_alter_table("patients") as batch_op:
        batch_op.drop_constraint("cadence", type_="check")
        for column in (
            "opted_out_at",
            "program_weeks",
            "cadence",
            "window_end",
            "window_start",
            "call_time",
            "call_day",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("checkins") as batch_op:
        batch_op.drop_index("uq_checkins_daily")
        batch_op.drop_index("uq_checkins_weekly")
        batch_op.drop_constraint("checkin_kind", type_="check")
        batch_op.create_unique_constraint("uq_checkins_patient_id_week", ["patient_id", "week"])
        batch_op.drop_column("day")
        batch_op.drop_column("kind")
    with op.batch_alter_table("calls") as batch_op:
        batch_op.drop_constraint("fk_calls_attempt_id_call_attempts", type_="foreignkey")
        batch_op.drop_index("ix_calls_attempt_id")
        batch_op.drop_column("attempt_id")
    op.drop_index("ix_call_attempts_state_due_at", table_name="call_attempts")
    op.drop_index("ix_call_attempts_call_sid", table_name="call_attempts")
    op.drop_table("call_attempts")
    op.drop_table("dispatch_pacing")
