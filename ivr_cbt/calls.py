"""A call's life on our side: answer it, run each webhook turn through the engine, track status.

The engine decides; this module stores. Each turn is one transaction that ends with a
compare-and-set on ``calls.step``: a duplicate delivery of a step finds the step already
taken, changes nothing, and gets the TwiML the first delivery got.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa

from ivr_cbt import audit, checkins
from ivr_cbt.callflow import engine, spec
from ivr_cbt.db import Prepared, insert_ignoring_conflicts, is_one_of
from ivr_cbt.feedback import delivery
from ivr_cbt.feedback.program import Program
from ivr_cbt.models import AttemptState, Call, CallAttempt, CheckIn, CheckinKind, CheckinStatus, Patient
from ivr_cbt.patients import local_date, program_week
from ivr_cbt.scheduling import attempts as queue
from ivr_cbt.scheduling import lifecycle
from ivr_cbt.scheduling.slots import weekly_call_date
from ivr_cbt.telephony import CallRequest, Telephony
from ivr_cbt.twiml import Renderer

log = logging.getLogger(__name__)

# Webhook turns run these statements many times a second: build them once, bind values per turn.
_calls = Call.__table__
_patients = Patient.__table__
_CALL_BY_SID = Prepared(sa.select(_calls).where(_calls.c.call_sid == sa.bindparam("b_sid")))
# A step reads only what the flow needs: not the last TwiML (~1 kB, read back only for a
# duplicate delivery) nor the call's times, which it never changes.
_c = _calls.c
_CALL_FOR_STEP = Prepared(
    sa.select(
        *(_c.id, _c.call_sid, _c.patient_id, _c.checkin_id, _c.attempt_id, _c.language, _c.flow_id),
        *(_c.flow_state, _c.step, _c.feedback_id, _c.feedback_version),
    ).where(_calls.c.call_sid == sa.bindparam("b_sid"))
)
# A status callback needs only the call's status and what a finished call concludes, with
# its check-in's status (only one still in progress is left partial when the call ends).
_checkins = CheckIn.__table__
_CALL_FOR_STATUS = Prepared(
    sa.select(
        *(_c.id, _c.status, _c.answered_by, _c.checkin_id, _c.attempt_id),
        _checkins.c.status.label("checkin_status"),
    )
    .outerjoin(_checkins, _checkins.c.id == _c.checkin_id)
    .where(_c.call_sid == sa.bindparam("b_sid"))
)
# A step turn first takes its step (compare-and-set on calls.step), reading what the flow needs
# in the same statement; a duplicate delivery finds the step taken (waiting, on PostgreSQL, for
# the row until the first delivery commits) and replays what the call was last told.
_CLAIM_STEP = Prepared(
    sa.update(_calls)
    .where(_c.call_sid == sa.bindparam("b_sid"), _c.step == sa.bindparam("b_seq"))
    .values(step=sa.bindparam("b_next"))
    .returning(*_CALL_FOR_STEP.statement.selected_columns)
)
_TAKE_STEP = Prepared(
    sa.update(_calls).where(_calls.c.id == sa.bindparam("b_id"), _calls.c.step == sa.bindparam("b_seq"))
)
_SAVE_TURN = Prepared(sa.update(_calls).where(_calls.c.id == sa.bindparam("b_id")))
_MOVE_STATUS = Prepared(
    sa.update(_calls).where(_calls.c.id == sa.bindparam("b_id"), _calls.c.status == sa.bindparam("b_status"))
)
_LAST_TWIML = Prepared(sa.select(_calls.c.last_twiml).where(_calls.c.id == sa.bindparam("b_id")))
_PATIENT_BY_PHONE = Prepared(
    sa.select(_patients.c.id, _patients.c.language).where(_patients.c.phone == sa.bindparam("b_phone"))
)
_PATIENT_ID_BY_CODE = Prepared(sa.select(_patients.c.id).where(_patients.c.code == sa.bindparam("b_code")))
_NEW_CALL = Prepared(sa.insert(_calls).returning(_calls.c.id))
_attempts = CallAttempt.__table__
_ATTEMPT = Prepared(
    sa.select(
        _attempts.c.id,
        _attempts.c.patient_id,
        _attempts.c.flow_id,
        _attempts.c.week,
        _attempts.c.slot_local,
        _patients.c.language,
    )
    .join(_patients, _patients.c.id == _attempts.c.patient_id)
    .where(_attempts.c.id == sa.bindparam("b_id"))
)
# The provider has the call: remember its sid (whoever learns it first, dispatcher or webhook).
_ATTEMPT_PLACED = Prepared(
    sa.update(_attempts)
    .where(
        _attempts.c.id == sa.bindparam("b_id"),
        is_one_of(_attempts.c.state, [AttemptState.PLACING.value, AttemptState.AMBIGUOUS.value]),
    )
    .values(state=AttemptState.PLACED.value)
)
_ATTEMPT_SID = Prepared(
    sa.update(_attempts)
    .where(_attempts.c.id == sa.bindparam("b_id"), _attempts.c.call_sid.is_(None))
    .values(call_sid=sa.bindparam("b_sid"))
)

DEFAULT_FLOW = "weekly_checkin"
NO_CHECKIN = "none"  # Flow.checkin of a flow that records nothing (the feedback call)
TERMINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, **dict.fromkeys(TERMINAL, 4)}
CALL_STATUSES = frozenset(_RANK)
# Prompts the host plays outside any flow; every language must have them too.
HOST_PROMPTS = ("voicemail_message", "voicemail_goodbye", "sorry_error")
MACHINE = frozenset({"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"})


def next_status(current: str, reported: str) -> str:
    """Apply status updates monotonically: a late 'ringing' never reopens a finished call."""
    return reported if _RANK[reported] > _RANK.get(current, -1) else current


@dataclass(frozen=True)
class VoiceSettings:
    """What the webhook turns need from the app, gathered once at start-up."""

    flows: dict[str, spec.Flow]
    renderer: Renderer
    pepper: str
    default_language: str
    callback_number: str
    flow_settings: dict[str, str]  # values flows may speak or dial, e.g. crisis_line
    scheduling: queue.SchedulingSettings
    program: Program  # the weekly modules: this week's skill is spoken in the practice question

    def url(self, path: str) -> str:
        return self.renderer.base_url + path


@dataclass(frozen=True)
class Answered:
    call_sid: str
    direction: str
    from_: str
    to: str
    answered_by: str | None
    attempt_id: int | None = None  # set on calls the dispatcher placed (an opaque id in the URL)


@dataclass(frozen=True)
class StatusReport:
    call_sid: str
    status: str
    direction: str
    duration_s: int | None
    answered_by: str | None
    attempt_id: int | None = None


class UnknownCall(LookupError):
    pass


class MismatchedEvent(ValueError):
    """The end of a playback reported where the call waits for keys, or keys where it waits for a playback."""


@dataclass
class _Turn:
    """What one webhook turn learns and changes, applied in one UPDATE at the end."""

    call: sa.Row
    patient_id: int | None  # pre-selected by the number until the PIN is verified
    checkin_id: int | None
    language: str
    feedback: tuple[int, int] | None = None  # (message id, version) this call plays, if any
    claimed_patient_id: int | None = None
    recorded: bool = False
    alerts: list[int] = field(default_factory=list)
    final_step: spec.Step | None = None


class CallService:
    """Webhook turns for one request: a connection, the time, the app's voice settings."""

    def __init__(self, conn: sa.Connection, settings: VoiceSettings, now: datetime):
        self.conn, self.settings, self.now = conn, settings, now

    # --- /voice/answer ---------------------------------------------------------------------

    def answer(self, answered: Answered) -> tuple[str, list[int]]:
        """Start the flow for a call that has just connected; return TwiML and alerts to notify."""
        call = self._call(answered.call_sid)
        if call is not None and call.step > 0:
            return call.last_twiml, []  # a duplicate delivery
        if call is None:
            call = self._new_call(answered)
        if answered.attempt_id is not None:
            mark_attempt_placed(self.conn, answered.attempt_id, answered.call_sid, self.now)
        turn = _Turn(call, call.patient_id, call.checkin_id, call.language, _feedback_of(call))
        if turn.patient_id is None:
            # A status callback may have got here first and left a row without a patient.
            patient = self._preselect(answered)
            if patient is not None:
                turn.patient_id, turn.language = patient.id, patient.language
        answered_by = _normalise_answered_by(answered.answered_by)
        changes = {
            "status": next_status(call.status, "in-progress"),
            "answered_at": call.answered_at or self.now,
            "answered_by": answered_by,
        }
        if answered_by in MACHINE:
            twiml = self._voicemail(turn.language)
            return self._commit(call, 0, {**changes, "flow_state": None, "last_twiml": twiml}), []
        flow = self.settings.flows[call.flow_id]
        step = engine.start(
            flow, caller_known=turn.patient_id is not None, language=turn.language, settings=self.settings.flow_settings
        )
        twiml = self._run(turn, flow, step, seq=0)
        return self._commit(call, 0, {**changes, **self._turn_changes(turn, twiml)}), turn.alerts

    def _preselect(self, answered: Answered) -> sa.Row | None:
        """The patient (id, language) the number points to; only the PIN proves who answered."""
        number = answered.from_ if answered.direction == "inbound" else answered.to
        return _PATIENT_BY_PHONE.first(self.conn, {"b_phone": number}) if number else None

    def _new_call(self, answered: Answered) -> sa.Row:
        attempt = _ATTEMPT.first(self.conn, {"b_id": answered.attempt_id}) if answered.attempt_id else None
        if attempt is not None:
            # A scheduled call: the attempt says who was called and which flow runs.
            patient_id, language, flow_id = attempt.patient_id, attempt.language, attempt.flow_id
        else:
            patient = self._preselect(answered)
            patient_id = patient.id if patient else None
            language = patient.language if patient else self.settings.default_language
            flow_id = DEFAULT_FLOW
        inserted = insert_ignoring_conflicts(
            self.conn,
            Call.__table__,
            {
                "call_sid": answered.call_sid,
                "patient_id": patient_id,
                "attempt_id": attempt.id if attempt is not None else None,
                "direction": answered.direction,
                "status": "ringing",
                "language": language,
                "flow_id": flow_id,
                "step": 0,
                "created_at": self.now,
            },
        )
        if not inserted:
            log.info("call %s: created concurrently", answered.call_sid)
        return self._call(answered.call_sid)

    # --- /voice/step ---------------------------------------------------------------------------

    def step(self, call_sid: str, seq: int, event: spec.Event) -> tuple[str, list[int]]:
        """Resume the call's flow with what the caller did at step ``seq``.

        The turn takes its step first and saves the call's new state at the end; on PostgreSQL
        the answer, the progress, the new state and the commit go to the server together, so a
        turn is two round trips."""
        call = _CLAIM_STEP.first(self.conn, {"b_sid": call_sid, "b_seq": seq, "b_next": seq + 1})
        if call is None:  # a duplicate or stale step, or no such call
            call = _CALL_FOR_STEP.first(self.conn, {"b_sid": call_sid})
            if call is None:
                self.conn.rollback()
                raise UnknownCall(call_sid)
            return self._replay(call), []
        state = call.flow_state
        if not state or state.get("node") is None:  # the flow has ended
            return self._replay(call), []
        if isinstance(event, spec.Played) != bool(state.get("playing")):
            self.conn.rollback()
            raise MismatchedEvent(call_sid)
        flow = self.settings.flows[call.flow_id]
        step = engine.resume(flow, state, event, settings=self.settings.flow_settings)
        turn = _Turn(call, call.patient_id, call.checkin_id, call.language, _feedback_of(call))
        twiml = self._run(turn, flow, step, seq)
        _SAVE_TURN.send(self.conn, {"b_id": call.id, **self._turn_changes(turn, twiml)})
        self.conn.commit()
        return twiml, turn.alerts

    def _replay(self, call: sa.Row) -> str:
        """What the call was last told (a hang-up if nothing was); the turn changes nothing."""
        twiml = _LAST_TWIML.scalar(self.conn, {"b_id": call.id})
        self.conn.rollback()
        return twiml or self._hangup(call.language)

    # --- the turn -------------------------------------------------------------------------------

    def _run(self, turn: _Turn, flow: spec.Flow, step: spec.Step, seq: int) -> str:
        outputs = list(step.outputs)
        while True:
            self._apply(turn, flow, step)
            verify = next((e for e in step.effects if isinstance(e, spec.VerifyIdentity)), None)
            if verify is None:
                break
            step = engine.resume(
                flow, step.state, self._verify(turn, flow, verify), settings=self.settings.flow_settings
            )
            outputs += step.outputs
        turn.final_step = step
        if turn.recorded:
            checkins.update_progress(self.conn, turn.checkin_id, step.state["answered"], flow.item_keys(), self.now)
        next_seq = seq + 1
        return self.settings.renderer.render(
            outputs,
            turn.language,
            listen=step.listen,
            action_url=self.settings.url(f"/voice/step?s={next_seq}"),
            noinput_url=self.settings.url(f"/voice/step?s={next_seq}&e=noinput"),
            played_url=self.settings.url(f"/voice/step?s={next_seq}&e=played"),
            feedback=self._feedback_resolver(turn),
        )

    def _feedback_resolver(self, turn: _Turn):
        if turn.feedback is None:
            return None
        renderer = self.settings.renderer
        return lambda: delivery.outputs(
            self.conn, turn.feedback[0], renderer.catalogue, turn.language, renderer.base_url
        )

    def _apply(self, turn: _Turn, flow: spec.Flow, step: spec.Step) -> None:
        sid = turn.call.call_sid
        for effect in step.effects:
            if isinstance(effect, spec.RecordAnswer):
                checkins.record_answer(self.conn, turn.checkin_id, flow.items[effect.item], effect, sid, self.now)
                turn.recorded = True
            elif isinstance(effect, spec.OpenAlert):
                alert_id = checkins.open_alert(
                    self.conn,
                    patient_id=turn.patient_id,
                    kind=effect.kind,
                    checkin_id=turn.checkin_id,
                    call_sid=sid,
                    now=self.now,
                )
                turn.alerts.append(alert_id)
                log.warning("call %s: %s alert %s opened for patient %s", sid, effect.kind, alert_id, turn.patient_id)
            elif isinstance(effect, spec.HostAction) and effect.name == "opt_out":
                version = self.settings.renderer.catalogue.wording_version(turn.language, opt_out_wording(flow, effect))
                lifecycle.opt_out(self.conn, turn.patient_id, self.now, call_sid=sid, wording_version=version)
                log.info("call %s: patient %s opted out", sid, turn.patient_id)
            elif isinstance(effect, spec.FeedbackHeard) and turn.feedback is not None:
                message_id, version = turn.feedback
                delivered = delivery.heard(self.conn, message_id, version, call_sid=sid, now=self.now)
                audit.record(
                    self.conn,
                    self.now,
                    "caller",
                    "feedback_heard",
                    patient_id=turn.patient_id,
                    call_sid=sid,
                    message_id=message_id,
                    first_delivery=delivered,
                )
            elif isinstance(effect, spec.IdentityFailed):
                audit.record(
                    self.conn,
                    self.now,
                    "caller",
                    "identity_failed",
                    patient_id=turn.claimed_patient_id,
                    call_sid=sid,
                    reason=effect.reason,
                )
                log.info("call %s: identity not confirmed (%s)", sid, effect.reason)

    def _verify(self, turn: _Turn, flow: spec.Flow, verify: spec.VerifyIdentity) -> spec.Event:
        patient = checkins.verify_caller(
            self.conn,
            patient_id=turn.patient_id,
            code=verify.code,
            pin=verify.pin,
            pepper=self.settings.pepper,
            now=self.now,
        )
        if patient is None:
            if verify.code is not None:
                turn.claimed_patient_id = _PATIENT_ID_BY_CODE.scalar(self.conn, {"b_code": verify.code})
            else:
                turn.claimed_patient_id = turn.patient_id
            return spec.Rejected()
        items = flow.item_keys()
        week, day = self._checkin_period(turn.call, patient)
        checkin_id, answered = None, set()
        if flow.checkin != NO_CHECKIN:  # a feedback call records nothing
            checkin_id, answered = checkins.open_checkin(
                self.conn,
                patient,
                self.now,
                items[0] if items else None,
                kind=CheckinKind(flow.checkin),
                week=week,
                day=day,
            )
        turn.patient_id, turn.checkin_id, turn.language = patient.id, checkin_id, patient.language
        audit.record(
            self.conn, self.now, "caller", "identity_verified", patient_id=patient.id, call_sid=turn.call.call_sid
        )
        if flow.plays_feedback:
            waiting = delivery.waiting(self.conn, patient.id)
            turn.feedback = (waiting.id, waiting.version) if waiting is not None else None
        return spec.Identified(
            answered=frozenset(answered),
            feedback_waiting=turn.feedback is not None,
            language=patient.language,
            slots={"skill": self._practice_module(flow, patient, week, day).prompt},
        )

    def _practice_module(self, flow: spec.Flow, patient: sa.Row, week: int | None, day: date | None):
        """The skill this call's practice question names (see ivr_cbt/feedback/program.py)."""
        if week is None:
            week = program_week(patient.program_start, patient.timezone, self.now)
        if flow.checkin != CheckinKind.DAILY:
            return self.settings.program.practice_module(week)
        day = day or local_date(patient.timezone, self.now)
        done = day >= weekly_call_date(patient.program_start, patient.call_day, week)
        return self.settings.program.practice_module(week, weekly_call_done=done)

    def _checkin_period(self, call: sa.Row, patient: sa.Row) -> tuple[int | None, date | None]:
        """The program week (and local day) the call's check-in belongs to: the scheduled slot's,
        so a retry after midnight still fills its own week; otherwise the caller's today."""
        if call.attempt_id is None:
            return None, None
        attempt = _ATTEMPT.first(self.conn, {"b_id": call.attempt_id})
        if attempt is None or attempt.patient_id != patient.id:
            return None, None
        return attempt.week, datetime.fromisoformat(attempt.slot_local).date()

    @staticmethod
    def _turn_changes(turn: _Turn, twiml: str) -> dict:
        return {
            "flow_state": turn.final_step.state,
            "last_twiml": twiml,
            "patient_id": turn.patient_id,
            "checkin_id": turn.checkin_id,
            "language": turn.language,
            "feedback_id": turn.feedback[0] if turn.feedback else None,
            "feedback_version": turn.feedback[1] if turn.feedback else None,
        }

    def _commit(self, call: sa.Row, seq: int, changes: dict) -> str:
        """Take step ``seq`` (compare-and-set) and commit; if another delivery took it, replay."""
        taken = _TAKE_STEP.rowcount(self.conn, {"b_id": call.id, "b_seq": seq, "step": seq + 1, **changes})
        if taken != 1:
            self.conn.rollback()
            return _LAST_TWIML.scalar(self.conn, {"b_id": call.id})
        self.conn.commit()
        return changes["last_twiml"]

    # --- /voice/status ---------------------------------------------------------------------------

    def status(self, report: StatusReport) -> None:
        """Record a status callback; a finished call leaves an unfinished check-in partial."""
        call = _CALL_FOR_STATUS.first(self.conn, {"b_sid": report.call_sid})
        if call is None:
            insert_ignoring_conflicts(
                self.conn,
                Call.__table__,
                {
                    "call_sid": report.call_sid,
                    "direction": report.direction,
                    "status": "queued",
                    "language": self.settings.default_language,
                    "flow_id": DEFAULT_FLOW,
                    "step": 0,
                    "created_at": self.now,
                },
            )
            call = _CALL_FOR_STATUS.first(self.conn, {"b_sid": report.call_sid})
        new = next_status(call.status, report.status)
        changes: dict = {}
        if new != call.status:
            changes["status"] = new
            if new in TERMINAL:
                changes.update(ended_at=self.now, duration_s=report.duration_s)
                if call.checkin_id is not None and call.checkin_status == CheckinStatus.IN_PROGRESS:
                    checkins.close_after_call(self.conn, call.checkin_id, self.now)
        answered_by = _normalise_answered_by(report.answered_by)
        if answered_by and not call.answered_by:
            changes["answered_by"] = answered_by
        if changes:
            # Only move forward: a concurrent callback that already finished the call wins.
            moved = _MOVE_STATUS.rowcount(self.conn, {"b_id": call.id, "b_status": call.status, **changes})
            attempt_id = report.attempt_id or call.attempt_id
            if moved and new in TERMINAL and attempt_id is not None:
                mark_attempt_placed(self.conn, attempt_id, report.call_sid, self.now)
                queue.conclude(
                    self.conn,
                    attempt_id,
                    _outcome(new, answered_by or call.answered_by),
                    self.settings.scheduling,
                    self.now,
                )
        self.conn.commit()

    # --- helpers ---------------------------------------------------------------------------------

    def _call(self, call_sid: str) -> sa.Row | None:
        return _CALL_BY_SID.first(self.conn, {"b_sid": call_sid})

    def _voicemail(self, language: str) -> str:
        outputs = [
            spec.Prompt("voicemail_message"),
            spec.SayValue(self.settings.callback_number.lstrip("+"), "digits", end_sentence=True),
            spec.Prompt("voicemail_goodbye"),
            spec.Hangup(),
        ]
        return self.settings.renderer.render(outputs, language)

    def _hangup(self, language: str) -> str:
        return self.settings.renderer.render([spec.Hangup()], language)


def _feedback_of(call: sa.Row) -> tuple[int, int] | None:
    return (call.feedback_id, call.feedback_version) if call.feedback_id is not None else None


def opt_out_wording(flow: spec.Flow, effect: spec.HostAction) -> tuple[str, ...]:
    """The prompts a caller heard when offered, and given, the way out (their hash is recorded)."""
    ids: list[str] = []
    for node_id in (effect.origin, effect.node):
        node = flow.nodes.get(node_id) if node_id else None
        if node is None:
            continue
        ids += [p for p in getattr(node, "prompts", ()) if isinstance(p, str)]
        if isinstance(getattr(node, "prompt", None), str):
            ids.append(node.prompt)
    return tuple(ids)


def _outcome(status: str, answered_by: str | None) -> str:
    """What a finished call means for its attempt; "answered" lets the check-in decide."""
    if status == "completed":
        return "machine" if answered_by in MACHINE else "answered"
    return status


def mark_attempt_placed(conn: sa.Connection, attempt_id: int, call_sid: str, now: datetime) -> None:
    """A webhook for a scheduled call arrived: the provider has it, whatever the dispatcher heard."""
    _ATTEMPT_PLACED.send(conn, {"b_id": attempt_id, "updated_at": now})
    _ATTEMPT_SID.send(conn, {"b_id": attempt_id, "b_sid": call_sid})


def record_placed_call(conn: sa.Connection, attempt: sa.Row, call_sid: str, now: datetime) -> None:
    """The provider accepted a scheduled call: mark the attempt placed and create the call's row."""
    mark_attempt_placed(conn, attempt.id, call_sid, now)
    insert_ignoring_conflicts(
        conn,
        _calls,
        {
            "call_sid": call_sid,
            "patient_id": attempt.patient_id,
            "attempt_id": attempt.id,
            "direction": "outbound-api",
            "status": "queued",
            "language": attempt.language,
            "flow_id": attempt.flow_id,
            "step": 0,
            "created_at": now,
        },
    )


def _normalise_answered_by(value: str | None) -> str | None:
    if not value:
        return None
    return value if value in MACHINE or value in {"human", "unknown"} else "unknown"


def place_checkin_call(
    conn: sa.Connection,
    telephony: Telephony,
    settings: VoiceSettings,
    patient: Patient,
    *,
    from_number: str,
    now: datetime,
    flow_id: str = DEFAULT_FLOW,
) -> str:
    """Ask the provider to call ``patient``, record the call, and return its sid."""
    placed = telephony.place_call(
        CallRequest(
            to=patient.phone,
            from_=from_number,
            answer_url=settings.url("/voice/answer"),
            status_callback_url=settings.url("/voice/status"),
        )
    )
    _NEW_CALL.scalar(
        conn,
        {
            "call_sid": placed.sid,
            "patient_id": patient.id,
            "direction": "outbound-api",
            "status": "queued",
            "language": patient.language,
            "flow_id": flow_id,
            "step": 0,
            "created_at": now,
        },
    )
    return placed.sid
