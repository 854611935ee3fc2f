"""The dispatch tick: claim what is due, place the calls, record what happened. Idempotent and short.

Several dispatchers may run at once on PostgreSQL (claims use FOR UPDATE SKIP LOCKED); on
SQLite run one. An attempt is marked ``placing`` and committed before the provider is asked;
the attempt id travels in the call's webhook URLs (an opaque number), so even a call whose
placement we never heard back about reports in, and links itself, when it rings. A dispatcher
that dies mid-tick leaves leases that expire: attempts it had only claimed are claimed again;
attempts it may have handed to the provider become ``ambiguous`` and are never blindly dialled
again: only if no webhook for them arrives within UNCONFIRMED_AFTER_MINUTES are they treated as
never placed and retried through the ladder.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time as time_module
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from ivr_cbt.calls import VoiceSettings
from ivr_cbt.db import insert_ignoring_conflicts, is_one_of
from ivr_cbt.models import (
    AttemptState,
    Call,
    CallAttempt,
    CheckIn,
    CheckinKind,
    CheckinStatus,
    DispatchPacing,
    FeedbackMessage,
    FeedbackStatus,
    Patient,
    PatientStatus,
)
from ivr_cbt.scheduling import attempts as queue
from ivr_cbt.scheduling import bulk
from ivr_cbt.scheduling import slots as slot_rules
from ivr_cbt.scheduling.slots import DAILY_FLOW, FEEDBACK_FLOW
from ivr_cbt.telephony import CallRequest, Telephony, TelephonyError

log = logging.getLogger(__name__)

_attempts, _patients, _checkins, _calls, _pacing = (
    CallAttempt.__table__,
    Patient.__table__,
    CheckIn.__table__,
    Call.__table__,
    DispatchPacing.__table__,
)
_messages = FeedbackMessage.__table__
# Attempts marked "placing" (committed) at a time before their calls are placed. If a dispatcher
# dies, those of its chunk not yet placed become ambiguous and wait UNCONFIRMED_AFTER_MINUTES
# before the ladder retries them; a larger chunk means fewer commits (each one waits for the disk).
CHUNK = 200
# What a tick needs of each claimed attempt and its patient (each column read costs, times 1,000).
_CLAIMED = sa.select(
    _attempts.c.id,
    _attempts.c.patient_id,
    _attempts.c.flow_id,
    _attempts.c.week,
    _attempts.c.slot_local,
    _attempts.c.slot_deadline,
    _patients.c.phone,
    _patients.c.language,
    *(c for c in queue.SCHEDULE_COLUMNS if c.name != "id"),
).join(_patients, _patients.c.id == _attempts.c.patient_id)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


@dataclass
class TickReport:
    reclaimed: int = 0
    ambiguous: int = 0
    unconfirmed: int = 0
    lost: int = 0
    claimed: int = 0
    placed: int = 0
    refused: int = 0
    deferred: int = 0
    concluded: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.concluded[outcome] = self.concluded.get(outcome, 0) + 1

    def __str__(self) -> str:
        text = (
            f"claimed {self.claimed}, placed {self.placed}, refused {self.refused}, deferred {self.deferred}, "
            f"reclaimed {self.reclaimed}, ambiguous {self.ambiguous}, unconfirmed {self.unconfirmed}, lost {self.lost}"
        )
        if self.concluded:
            text += "; concluded: " + ", ".join(f"{k} {v}" for k, v in sorted(self.concluded.items()))
        return text


# The tick's fixed statements, built once (a statement made afresh is also compiled afresh).
_RECLAIM = (  # expired claims of attempts never handed to the provider: back to the queue
    sa.update(_attempts)
    .where(_attempts.c.state == AttemptState.CLAIMED.value, _attempts.c.lease_until < sa.bindparam("b_now"))
    .values(state=AttemptState.PENDING.value, claimed_by=None, lease_until=None)
)
_LOST_PLACING = (  # expired leases of attempts that may have reached the provider: ambiguous
    sa.update(_attempts)
    .where(_attempts.c.state == AttemptState.PLACING.value, _attempts.c.lease_until < sa.bindparam("b_now"))
    .values(state=AttemptState.AMBIGUOUS.value, outcome="dispatcher-lost")
)
_UNCONFIRMED = sa.select(_attempts.c.id).where(
    _attempts.c.state == AttemptState.AMBIGUOUS.value,
    _attempts.c.updated_at < sa.bindparam("b_before"),
    ~sa.select(_calls.c.id).where(_calls.c.attempt_id == _attempts.c.id).exists(),
)
# One query per state: "state IN (a, b)" lets SQLite, once ANALYZE has seen that most rows
# share a few states, scan the whole table (every patient's history); "state = a" uses the index.
_LOST = tuple(
    sa.select(_attempts.c.id).where(_attempts.c.state == state.value, _attempts.c.updated_at < sa.bindparam("b_before"))
    for state in (AttemptState.PLACED, AttemptState.AMBIGUOUS)
)
# Attempts being placed, or placed and not finished: what MAX_CONCURRENT_CALLS limits.
IN_FLIGHT = sa.select(sa.func.count()).where(
    is_one_of(_attempts.c.state, [AttemptState.PLACING.value, AttemptState.PLACED.value])
)

# Earliest due first; among attempts due at the same moment (a weekly slot's first calls) the
# patient decides, not the row id, so the order calls are placed in does not depend on the order
# the attempts happened to be written in (the cohort simulator's worker processes write them side by side).
CLAIM_ORDER = (_attempts.c.due_at, _attempts.c.patient_id, _attempts.c.id)


@dataclass
class Dispatcher:
    """Everything a tick needs; build one per process (see ivr_cbt/scheduling/process.py)."""

    engine: sa.Engine
    telephony: Telephony
    voice: VoiceSettings
    settings: queue.SchedulingSettings
    from_number: str
    worker: str = field(default_factory=worker_name)
    sleep: Callable[[float], None] = time_module.sleep
    interval_seconds: int = 30

    def tick(self, now: datetime, limit: int | None = None) -> TickReport:
        """Run one dispatch tick as of ``now``."""
        report = TickReport()
        with self.engine.connect() as conn:
            self._recover(conn, now, report)
            self._sweep(conn, now, report)
            batch = self._claim(conn, now, self._capacity(conn, limit))
            report.claimed = len(batch)
            if batch:
                self._dispatch(conn, batch, now, report)
        if report.claimed or report.concluded or report.reclaimed or report.ambiguous:
            log.info("dispatch %s: %s", self.worker, report)
        return report

    # --- leases and sweeps ---------------------------------------------------------------------

    def _recover(self, conn: sa.Connection, now: datetime, report: TickReport) -> None:
        """Expired leases: claimed-only attempts go back to the queue; maybe-placed ones become ambiguous."""
        report.reclaimed = conn.execute(_RECLAIM, {"b_now": now, "updated_at": now}).rowcount
        report.ambiguous = conn.execute(_LOST_PLACING, {"b_now": now, "updated_at": now}).rowcount
        conn.commit()

    def _sweep(self, conn: sa.Connection, now: datetime, report: TickReport) -> None:
        """Attempts nobody will report on: ambiguous ones no webhook ever confirmed, placed ones never finished."""
        unconfirmed = conn.execute(_UNCONFIRMED, {"b_before": now - self.settings.unconfirmed_after}).scalars()
        for attempt_id in list(unconfirmed):
            if queue.conclude(conn, attempt_id, "unconfirmed", self.settings, now):
                report.unconfirmed += 1
        before = now - self.settings.lost_after
        lost = [attempt_id for query in _LOST for attempt_id in conn.execute(query, {"b_before": before}).scalars()]
        for attempt_id in lost:
            if queue.conclude(conn, attempt_id, "lost", self.settings, now):
                report.lost += 1
        conn.commit()

    # --- claiming ------------------------------------------------------------------------------

    def _capacity(self, conn: sa.Connection, limit: int | None) -> int:
        in_flight = conn.execute(IN_FLIGHT).scalar()
        conn.commit()
        return self.room(in_flight, limit)

    def room(self, in_flight: int, limit: int | None = None) -> int:
        """How many attempts a tick claims at most beside ``in_flight`` calls."""
        capacity = min(self.settings.max_concurrent - in_flight, self.settings.batch)
        if self.settings.cps > 0:
            # No point claiming more than can be placed before the next tick.
            capacity = min(capacity, math.ceil(self.settings.cps * self.interval_seconds))
        if limit is not None:
            capacity = min(capacity, limit)
        return max(0, capacity)

    def _claim(self, conn: sa.Connection, now: datetime, capacity: int) -> list[sa.Row]:
        if capacity == 0:
            return []
        due = (
            sa.select(_attempts.c.id)
            .where(_attempts.c.state == AttemptState.PENDING.value, _attempts.c.due_at <= now)
            .order_by(*CLAIM_ORDER)
            .limit(capacity)
        )
        if conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        ids = list(conn.execute(due).scalars())
        if not ids:
            conn.commit()
            return []
        lease = (
            now + self.settings.lease + timedelta(seconds=len(ids) / self.settings.cps if self.settings.cps > 0 else 0)
        )
        conn.execute(
            sa.update(_attempts)
            .where(bulk.one_of(conn.dialect.name, _attempts.c.id, ids))
            .values(state=AttemptState.CLAIMED.value, claimed_by=self.worker, lease_until=lease, updated_at=now)
        )
        conn.commit()
        claimed = _CLAIMED.where(bulk.one_of(conn.dialect.name, _attempts.c.id, ids))
        return conn.execute(claimed.order_by(*CLAIM_ORDER)).all()

    # --- deciding and placing ----------------------------------------------------------------

    def _dispatch(self, conn: sa.Connection, batch: list[sa.Row], now: datetime, report: TickReport) -> None:
        complete = self._complete_checkins(conn, batch)
        to_place = []
        for attempt in batch:
            decision = self._decide(attempt, complete, now)
            if decision == "place":
                to_place.append(attempt)
            elif decision == "defer":
                self._defer(conn, attempt, now, report)
            else:
                outcome = queue.conclude(conn, attempt.id, decision, self.settings, now)
                if outcome:
                    report.count(outcome)
        # Each chunk is marked "placing" and committed before its first call is placed; the calls
        # of the chunk before are written down in that same transaction (one commit, not two).
        for start in range(0, len(to_place), CHUNK):
            self._place_chunk(conn, to_place[start : start + CHUNK], now, report)
        conn.commit()

    def _defer(self, conn: sa.Connection, attempt: sa.Row, now: datetime, report: TickReport) -> None:
        """Outside the call window (the dispatcher ran late): wait for the window to open, if the slot lasts."""
        due = slot_rules.into_window(queue.schedule_of(attempt, self.settings), now)
        if due >= attempt.slot_deadline:
            if outcome := queue.conclude(conn, attempt.id, "expired", self.settings, now):
                report.count(outcome)
            return
        conn.execute(
            sa.update(_attempts)
            .where(_attempts.c.id == attempt.id, _attempts.c.state == AttemptState.CLAIMED.value)
            .values(state=AttemptState.PENDING.value, due_at=due, claimed_by=None, lease_until=None, updated_at=now)
        )
        report.deferred += 1

    def _complete_checkins(self, conn: sa.Connection, batch: list[sa.Row]) -> set[tuple]:
        """Keys of the batch's slots whose check-in is already complete (one query per kind).

        Each query names the kind as a literal, as the partial unique indexes on (patient_id, week)
        and (patient_id, day) do, so both databases can use them (a bound parameter, or a
        (patient, week) tuple list, makes SQLite scan every check-in of every patient), and asks
        for the batch's patients and weeks (or days), the exact pairs being picked out here.
        """
        weekly = {(a.patient_id, a.week) for a in batch if a.flow_id not in (DAILY_FLOW, FEEDBACK_FLOW)}
        daily = {(a.patient_id, datetime.fromisoformat(a.slot_local).date()) for a in batch if a.flow_id == DAILY_FLOW}
        done: set[tuple] = self._delivered(conn, [a for a in batch if a.flow_id == FEEDBACK_FLOW])
        complete = _checkins.c.status == CheckinStatus.COMPLETE.value
        for kind, column, wanted in (
            (CheckinKind.WEEKLY, _checkins.c.week, weekly),
            (CheckinKind.DAILY, _checkins.c.day, daily),
        ):
            if not wanted:
                continue
            rows = conn.execute(
                sa.select(_checkins.c.patient_id, column).where(
                    _checkins.c.kind == sa.literal_column(f"'{kind.value}'"),
                    bulk.one_of(conn.dialect.name, _checkins.c.patient_id, {p for p, _ in wanted}),
                    bulk.one_of(conn.dialect.name, column, {period for _, period in wanted}),
                    complete,
                )
            )
            done |= {(kind.value, patient, period) for patient, period in rows if (patient, period) in wanted}
        return done

    @staticmethod
    def _delivered(conn: sa.Connection, calls: list[sa.Row]) -> set[tuple]:
        """Keys of feedback calls whose message no longer waits (heard on another call meanwhile)."""
        if not calls:
            return set()
        waiting = {
            (row.patient_id, row.week)
            for row in conn.execute(
                sa.select(_messages.c.patient_id, _messages.c.week).where(
                    bulk.one_of(conn.dialect.name, _messages.c.patient_id, {a.patient_id for a in calls}),
                    _messages.c.status == FeedbackStatus.READY.value,
                )
            )
        }
        return {("feedback", a.patient_id, a.week) for a in calls if (a.patient_id, a.week) not in waiting}

    def _decide(self, attempt: sa.Row, complete: set[tuple], now: datetime) -> str:
        """ "place", "defer" (re-queued to the window's next opening), or an outcome that ends the attempt."""
        if attempt.status != PatientStatus.ACTIVE:
            return "inactive"
        if attempt.flow_id == DAILY_FLOW:
            key = ("daily", attempt.patient_id, datetime.fromisoformat(attempt.slot_local).date())
        elif attempt.flow_id == FEEDBACK_FLOW:
            key = ("feedback", attempt.patient_id, attempt.week)
        else:
            key = ("weekly", attempt.patient_id, attempt.week)
        if key in complete:
            return "skipped-complete"
        if now >= attempt.slot_deadline:
            return "expired"
        schedule = queue.schedule_of(attempt, self.settings)
        if not slot_rules.in_window(schedule, now):
            return "defer"
        return "place"

    def _place_chunk(self, conn: sa.Connection, chunk: list[sa.Row], now: datetime, report: TickReport) -> None:
        # Recorded before the provider is asked; an attempt dropped meanwhile (the patient paused or
        # opted out) is not returned, so it is not placed.
        placing = set(
            conn.execute(
                sa.update(_attempts)
                .where(
                    bulk.one_of(conn.dialect.name, _attempts.c.id, [a.id for a in chunk]),
                    _attempts.c.state == AttemptState.CLAIMED.value,
                )
                .values(state=AttemptState.PLACING.value, updated_at=now)
                .returning(_attempts.c.id)
            ).scalars()
        )
        conn.commit()
        chunk = [a for a in chunk if a.id in placing]
        start = self._reserve(conn, len(chunk), now)
        waited = 0.0
        accepted: list[tuple[sa.Row, str]] = []  # placed, not yet written down
        for index, attempt in enumerate(chunk):
            if self.settings.cps > 0:
                # Pace: the index-th call of the reservation starts index/cps seconds after its start.
                wait = (start - now).total_seconds() + index / self.settings.cps - waited
                if wait > 0:
                    self._record_placed(conn, accepted, now)  # never hold unwritten calls while waiting
                    self.sleep(wait)
                    waited += wait
            request = CallRequest(
                to=attempt.phone,
                from_=self.from_number,
                answer_url=self.voice.url(f"/voice/answer?a={attempt.id}"),
                status_callback_url=self.voice.url(f"/voice/status?a={attempt.id}"),
            )
            try:
                placed = self.telephony.place_call(request)
            except TelephonyError as exc:
                self._record_placed(conn, accepted, now)
                if exc.ambiguous:
                    conn.execute(
                        sa.update(_attempts)
                        .where(_attempts.c.id == attempt.id, _attempts.c.state == AttemptState.PLACING.value)
                        .values(state=AttemptState.AMBIGUOUS.value, outcome="provider-timeout", updated_at=now)
                    )
                    report.ambiguous += 1
                else:
                    if queue.conclude(conn, attempt.id, "provider-refused", self.settings, now):
                        report.count("provider-refused")
                    report.refused += 1
                conn.commit()
                log.warning("attempt %s: %s", attempt.id, exc)
                continue
            accepted.append((attempt, placed.sid))
            report.placed += 1
        self._record_placed(conn, accepted, now, commit=False)  # committed with the next chunk, or at the end

    def _record_placed(
        self, conn: sa.Connection, accepted: list[tuple[sa.Row, str]], now: datetime, *, commit: bool = True
    ) -> None:
        """Write down calls the provider accepted: the attempts become ``placed``, each call gets its row.

        Two statements for the whole list (ivr_cbt/scheduling/bulk.py): a tick of 1,000 calls
        without pacing would otherwise spend most of its time on 3,000 round trips and 1,000
        commits. Until this commits, the attempts stay ``placing``: a dispatcher that dies here
        leaves them to become ambiguous, never re-dialled, and their webhooks link them, exactly
        as for one call. Webhooks may also arrive first (the mock adapter answers during ``place_call``): then the
        attempt is already placed or done and keeps its state, and the call row the webhook made
        keeps its values, only gaining the patient and attempt if it was made without them.
        """
        bulk.record_placed(conn, accepted, now)
        if commit:
            conn.commit()
        accepted.clear()

    def _reserve(self, conn: sa.Connection, count: int, now: datetime) -> datetime:
        """Reserve ``count`` call starts from the shared pacing row; return when the first may start."""
        if self.settings.cps <= 0:
            return now
        query = sa.select(_pacing.c.next_at).where(_pacing.c.id == 1)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        next_at = conn.execute(query).scalar()
        if next_at is None:
            insert_ignoring_conflicts(conn, _pacing, {"id": 1, "next_at": now})
            next_at = conn.execute(query).scalar()
        start = max(next_at, now)
        conn.execute(
            sa.update(_pacing)
            .where(_pacing.c.id == 1)
            .values(next_at=start + timedelta(seconds=count / self.settings.cps))
        )
        conn.commit()
        return start
