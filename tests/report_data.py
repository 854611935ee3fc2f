"""Cohorts written straight into the database, in bulk, for the outcome report's tests and benchmark.

A virtual patient is an arm, a program start and what happened in each week; ``insert_cohort``
turns a list of them into rows of patients, check-ins, answers and calls with a handful of
multi-row INSERTs (ids assigned here, so no round trip per row). The rows look like what the
webhooks write: the check-in items of flows/weekly_checkin.yaml with their scales, a partial
check-in pointing at its first unanswered item, calls with their status and who answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa

from ivr_cbt.models import Answer, Call, CheckIn, Patient

# item, min, max, direction, the value every virtual patient gives unless told otherwise
ITEMS = (
    ("pain_avg", 0, 10, "higher_is_worse", None),
    ("sleep_quality", 0, 10, "higher_is_better", 6),
    ("steps_avg", 0, 99999, "higher_is_better", 4200),
    ("practice_days", 0, 7, "higher_is_better", 3),
    ("safety", 1, 2, "nominal", 2),
)
ITEM_KEYS = tuple(item[0] for item in ITEMS)
START = date(2026, 1, 5)
CHUNK = 5000


@dataclass(frozen=True)
class Week:
    """One program week: the pain answer (None = skipped) and how far the patient got.

    ``stop_at`` is the item the last call ended before (the check-in is then partial); ``skip``
    items were asked and recorded as skipped; ``calls`` lists each call of the week as it went:
    ``human`` (answered), ``machine`` (voicemail), ``no-answer`` or ``inbound``. ``missed``: no
    answers at all, a check-in marked missed.
    """

    pain: int | None = None
    stop_at: str | None = None
    skip: tuple[str, ...] = ()
    calls: tuple[str, ...] = ("human",)
    missed: bool = False


@dataclass(frozen=True)
class Virtual:
    arm: str
    weeks: dict[int, Week] = field(default_factory=dict)
    start: date = START
    unreached_calls: dict[int, tuple[str, ...]] = field(default_factory=dict)  # weeks with calls but no check-in


def pains(arm: str, by_week: dict[int, int | None], **options) -> Virtual:
    """A patient who completes every listed week with that pain value (None = skipped the pain item)."""
    return Virtual(
        arm, {w: Week(pain=p, skip=("pain_avg",) if p is None else ()) for w, p in by_week.items()}, **options
    )


def _next_id(conn: sa.Connection, table: sa.Table) -> int:
    return (conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0) + 1


def _at(start: date, week: int, minutes: int = 0) -> datetime:
    return datetime.combine(start, time(15), tzinfo=UTC) + timedelta(weeks=week, minutes=minutes)


def _call_row(sid: str, patient_id: int, checkin_id: int | None, kind: str, when: datetime) -> dict:
    answered = kind in ("human", "machine", "inbound")
    return {
        "call_sid": sid,
        "patient_id": patient_id,
        "checkin_id": checkin_id,
        "direction": "inbound" if kind == "inbound" else "outbound-api",
        "status": "completed" if answered else "no-answer",
        "answered_by": {"human": "human", "machine": "machine_start"}.get(kind),
        "language": "en",
        "flow_id": "weekly_checkin",
        "step": 9 if answered else 0,
        "created_at": when,
        "answered_at": when if answered else None,
        "ended_at": when + timedelta(minutes=2),
        "duration_s": 120 if answered else 0,
    }


def cohort_rows(patients: Sequence[Virtual], first_ids: dict[str, int]) -> dict[str, list[dict]]:
    """The rows for ``patients``, numbered from ``first_ids`` (table name -> first id)."""
    rows: dict[str, list[dict]] = {"patients": [], "checkins": [], "answers": [], "calls": []}
    patient_id, checkin_id = first_ids["patients"], first_ids["checkins"]
    call_n = first_ids["calls"]
    for virtual in patients:
        rows["patients"].append(
            {
                "id": patient_id,
                "code": f"{patient_id:08d}"[-8:],
                "name": f"Virtual patient {patient_id}",
                "phone": f"+1555{patient_id:07d}",
                "pin_hash": "not-a-pin",
                "timezone": "America/New_York",
                "language": "en",
                "program_start": virtual.start,
                "status": "active",
                "feedback_mode": virtual.arm,
                "created_at": _at(virtual.start, 0),
            }
        )
        for week, calls in virtual.unreached_calls.items():
            for kind in calls:
                rows["calls"].append(_call_row(f"CA{call_n:032x}", patient_id, None, kind, _at(virtual.start, week)))
                call_n += 1
        for week, spec in sorted(virtual.weeks.items()):
            when = _at(virtual.start, week)
            sid = f"CA{call_n:032x}"
            for kind in spec.calls:
                rows["calls"].append(_call_row(f"CA{call_n:032x}", patient_id, checkin_id, kind, when))
                sid = f"CA{call_n:032x}"
                call_n += 1
            reached = [] if spec.missed else list(ITEM_KEYS)
            if spec.stop_at is not None:
                reached = reached[: ITEM_KEYS.index(spec.stop_at)]
            for key, low, high, direction, default in ITEMS:
                if key not in reached:
                    continue
                skipped = key in spec.skip
                value = None if skipped else spec.pain if key == "pain_avg" else default
                rows["answers"].append(
                    {
                        "checkin_id": checkin_id,
                        "item_key": key,
                        "value": value,
                        "skipped": skipped,
                        "raw_input": None if value is None else str(value),
                        "input_mode": "dtmf",
                        "confidence": None,
                        "scale_min": low,
                        "scale_max": high,
                        "scale_anchors": {},
                        "scale_direction": direction,
                        "call_sid": sid,
                        "answered_at": when,
                    }
                )
            complete = len(reached) == len(ITEM_KEYS)
            rows["checkins"].append(
                {
                    "id": checkin_id,
                    "patient_id": patient_id,
                    "week": week,
                    "status": "missed" if spec.missed else "complete" if complete else "partial",
                    "next_item": None if complete else (spec.stop_at or ITEM_KEYS[0]),
                    "started_at": when,
                    "updated_at": when,
                    "completed_at": when if complete else None,
                }
            )
            checkin_id += 1
        patient_id += 1
    return rows


def insert_cohort(engine: sa.Engine, patients: Sequence[Virtual]) -> list[int]:
    """Insert ``patients`` in bulk (multi-row INSERTs in chunks); return their ids."""
    tables = {"patients": Patient.__table__, "checkins": CheckIn.__table__, "calls": Call.__table__}
    with engine.begin() as conn:
        first = {name: _next_id(conn, table) for name, table in tables.items()}
        rows = cohort_rows(patients, first)
        for name, table in [*tables.items(), ("answers", Answer.__table__)]:
            for i in range(0, len(rows[name]), CHUNK):
                conn.execute(table.insert(), rows[name][i : i + CHUNK])
        if conn.dialect.name == "postgresql":
            for name in tables:  # ids were given explicitly: move the sequences past them
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"
                )
    return [row["id"] for row in rows["patients"]]
