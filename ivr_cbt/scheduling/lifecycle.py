"""A patient's place in the call schedule: change it, pause, resume, opt out. Each step is audited."""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa

from ivr_cbt import audit
from ivr_cbt.models import Patient, PatientStatus
from ivr_cbt.scheduling import attempts as queue
from ivr_cbt.scheduling import slots as slot_rules
from ivr_cbt.scheduling.slots import Slot

log = logging.getLogger(__name__)
_patients = Patient.__table__
SCHEDULE_FIELDS = ("timezone", "call_day", "call_time", "window_start", "window_end", "cadence", "program_weeks")


class LifecycleError(ValueError):
    """A change that cannot be made; the message says why."""


def opt_out(conn: sa.Connection, patient_id: int, now: datetime, *, call_sid: str | None, wording_version: str) -> bool:
    """Stop every call to the patient at once; record when, on which call, and the words they heard."""
    changed = conn.execute(
        sa.update(_patients)
        .where(_patients.c.id == patient_id, _patients.c.status != PatientStatus.OPTED_OUT.value)
        .values(status=PatientStatus.OPTED_OUT.value, opted_out_at=now)
    ).rowcount
    canceled = queue.drop_planned(conn, patient_id)
    if changed:
        audit.record(
            conn,
            now,
            "patient",
            "opted_out",
            patient_id=patient_id,
            call_sid=call_sid,
            wording_version=wording_version,
            attempts_canceled=canceled,
        )
    return bool(changed)


def pause(conn: sa.Connection, patient_id: int, now: datetime, actor: str) -> int:
    """Pause an active patient's calls; return how many planned attempts were canceled."""
    changed = conn.execute(
        sa.update(_patients)
        .where(_patients.c.id == patient_id, _patients.c.status == PatientStatus.ACTIVE.value)
        .values(status=PatientStatus.PAUSED.value)
    ).rowcount
    if not changed:
        raise LifecycleError(f"patient {patient_id} is not active")
    canceled = queue.drop_planned(conn, patient_id)
    audit.record(conn, now, actor, "patient_paused", patient_id=patient_id, attempts_canceled=canceled)
    return canceled


def resume(
    conn: sa.Connection, patient_id: int, settings: queue.SchedulingSettings, now: datetime, actor: str
) -> Slot | None:
    """Resume a paused or opted-out patient from their next slot; return it (None if the program is over)."""
    previous = conn.execute(sa.select(_patients.c.status).where(_patients.c.id == patient_id)).scalar()
    if previous not in (PatientStatus.PAUSED, PatientStatus.OPTED_OUT):
        raise LifecycleError(f"patient {patient_id} is {previous or 'unknown'}, not paused or opted out")
    conn.execute(
        sa.update(_patients)
        .where(_patients.c.id == patient_id)
        .values(status=PatientStatus.ACTIVE.value, opted_out_at=None)
    )
    slot = queue.reschedule(conn, patient_id, settings, now)
    audit.record(
        conn,
        now,
        actor,
        "patient_resumed",
        patient_id=patient_id,
        previous_status=str(previous),
        next_slot=slot.local.isoformat() if slot else None,
    )
    return slot


def change_schedule(
    conn: sa.Connection, patient_id: int, settings: queue.SchedulingSettings, now: datetime, actor: str, **changes
) -> Slot | None:
    """Change when a patient is called; future attempts are recomputed, past ones stay as they were."""
    unknown = set(changes) - set(SCHEDULE_FIELDS)
    if unknown:
        raise LifecycleError(f"not schedule fields: {', '.join(sorted(unknown))}")
    current = queue.patient_row(conn, patient_id)
    proposed = queue.schedule_of(current, settings)
    proposed = slot_rules.Schedule(
        **{**proposed.__dict__, **{k: str(v) if k == "cadence" else v for k, v in changes.items()}}
    )
    found = slot_rules.problems(proposed)
    if found:
        raise LifecycleError("; ".join(found))
    conn.execute(sa.update(_patients).where(_patients.c.id == patient_id).values(**changes))
    slot = queue.reschedule(conn, patient_id, settings, now)
    audit.record(conn, now, actor, "schedule_changed", patient_id=patient_id, fields=sorted(changes))
    return slot
