"""Run a virtual cohort through the real system on a simulated clock (``manage.py simulate cohort``).

What is real: the database and its migrations, the scheduler's dispatch tick, retry ladder and
call windows, the mock telephony adapter, the signed webhooks and flows, the weekly feedback job
and its rules, review (a simulated therapist approves guided messages after a delay), delivery.
What is simulated: the clock, and the patients, each answering through the offline phone as the
behaviour model says (ivr_cbt/simulator/behaviour.py, cohorts/README.md).

The loop is discrete-event: it jumps from one scheduler tick that has work to the next. Ticks
fall on the scheduler's own grid (every DISPATCH_INTERVAL_SECONDS), and the program jobs
(feedback generation, the simulated therapist, reconcile) run every ``jobs_every_minutes`` of
simulated time, as the scheduler process would run them.

Calls placed in one tick happen at the same time, as on a real network: each call runs on the
simulated clock from its own (paced) start, and the clock goes back to the tick's time line
after it, so a cohort's calls overlap rather than queue one after another.
"""

from __future__ import annotations

import contextlib
import random
import signal
import time as wall
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask

from ivr_cbt import create_app, db
from ivr_cbt.clock import SimulatedClock
from ivr_cbt.feedback import generate
from ivr_cbt.feedback.review import approve
from ivr_cbt.models import AttemptState, CallAttempt, FeedbackMessage, FeedbackStatus, Patient
from ivr_cbt.patients import Enrolment, NewPatient, enrol_many
from ivr_cbt.report import mark_synthetic
from ivr_cbt.report.extract import SYNTHETIC_ACTION, target_week
from ivr_cbt.report.outcomes import Options
from ivr_cbt.scheduling import attempts as queue
from ivr_cbt.scheduling.dispatch import IN_FLIGHT, Dispatcher
from ivr_cbt.simulator.behaviour import Cohort, VirtualPatient, draw_cohort
from ivr_cbt.simulator.callers import ScriptedCaller
from ivr_cbt.simulator.phone import OfflinePhone
from ivr_cbt.simulator.transport import WsgiTransport
from ivr_cbt.simulator.virtual_caller import QuestionBook, VirtualCaller
from ivr_cbt.telephony.base import CallRequest, PlacedCall
from ivr_cbt.telephony.mock import MockTelephony

ACTOR = "simulator"
# The program jobs' period in simulated time. A week closes at local midnight and no call comes
# before 08:00, so generating every 3 hours has each message ready for the next call, as the
# scheduler's 15-minute job does, at a twelfth of the runs.
JOBS_EVERY_MINUTES = 180
RECONCILE_EVERY = timedelta(days=1)  # it heals what events missed; in a simulation events miss nothing
THERAPIST = "simulated-therapist"
_attempts, _messages, _patients = CallAttempt.__table__, FeedbackMessage.__table__, Patient.__table__
_NEXT_DUE = sa.select(sa.func.min(_attempts.c.due_at)).where(_attempts.c.state == AttemptState.PENDING.value)


class CohortDatabaseError(RuntimeError):
    """The target database cannot take a synthetic cohort (it already holds patients)."""


@dataclass
class Progress:
    """What the run has done so far (shown by the progress bar, returned at the end)."""

    weeks: int
    week: int = 0
    ticks: int = 0
    job_runs: int = 0
    pickups: Counter = field(default_factory=Counter)  # answer, machine, busy, no-answer
    requests: int = 0  # webhook requests the offline phone sent
    heard_feedback: int = 0
    opted_out: int = 0
    approved: int = 0
    stopped: bool = False
    simulated_until: datetime | None = None
    reconciled_at: datetime | None = None
    generated_runs: int = 0  # job runs in which the generation job ran (see _jobs)
    overlapped_ticks: int = 0  # ticks run while calls of earlier ones were still playing (workers > 1)
    answered_at_jobs: int = -1
    wall_seconds: float = 0.0

    def add(self, rang: Rang) -> None:
        self.pickups[rang.pickup] += 1
        self.requests += rang.requests
        self.heard_feedback += rang.heard_feedback
        self.opted_out += rang.opted_out

    @property
    def calls(self) -> int:
        return sum(self.pickups.values())

    def line(self) -> str:
        answered = self.pickups["answer"]
        return f"{self.calls} calls, {answered} answered, {self.approved} messages approved"


@dataclass(frozen=True)
class Rang:
    """What one call did (the parent adds it to the progress)."""

    pickup: str
    requests: int
    heard_feedback: bool = False
    opted_out: bool = False


def _phone_for(app: Flask) -> OfflinePhone:
    return OfflinePhone(
        WsgiTransport(app),
        auth_token=app.config["TWILIO_AUTH_TOKEN"],
        account_sid=app.config["TWILIO_ACCOUNT_SID"],
        public_base_url=app.config["PUBLIC_BASE_URL"],
        clock=app.extensions["clock"],
    )


def _book_for(app: Flask, patients) -> QuestionBook:
    settings = app.extensions["voice_settings"]
    languages = sorted({p.language for p in patients})
    return QuestionBook(settings.flows, settings.renderer.catalogue, languages)


def ring(phone: OfflinePhone, book: QuestionBook, patient: VirtualPatient, request: CallRequest, sid: str) -> Rang:
    """Ring ``patient`` for the placed call: they pick up (or not) and answer through the webhooks.

    Runs on the phone's simulated clock from its current time; updates the patient's state.
    """
    now = phone.clock.now()
    pickup = patient.pickup(now)
    common = {"from_": request.from_, "to": request.to, "call_sid": sid}
    if pickup in ("no-answer", "busy"):
        result = phone.ring_out(outcome=pickup, status_callback=request.status_callback_url, **common)
        return Rang(pickup, len(result.exchanges))
    caller = ScriptedCaller([]) if pickup == "machine" else VirtualCaller(patient, book, now)
    result = phone.call(
        caller,
        direction="outbound-api",
        answered_by="machine_start" if pickup == "machine" else "human",
        answer_url=request.answer_url,
        status_callback=request.status_callback_url,
        status_events=request.status_events,
        **common,
    )
    if not isinstance(caller, VirtualCaller):
        return Rang(pickup, len(result.exchanges))
    heard = book.heard_feedback(result, patient.language)
    if heard:
        patient.heard_feedback.add(caller.week)
    if caller.opted_out:
        patient.opted_out = True
    return Rang(pickup, len(result.exchanges), heard, caller.opted_out)


class CohortPhone:
    """The mock adapter's answerer: each placed call rings the virtual patient with that number,
    at once, in this process (``workers=1``: the same seed gives the same database, row for row)."""

    def __init__(self, app: Flask, patients: dict[str, VirtualPatient], progress: Progress):
        self.patients = patients
        self.progress = progress
        self.book = _book_for(app, patients.values())
        self.phone = _phone_for(app)
        self.clock: SimulatedClock = app.extensions["clock"]

    def __call__(self, request: CallRequest, placed: PlacedCall) -> None:
        self.play(request, placed.sid, self.clock.now())

    def play(self, request: CallRequest, sid: str, start: datetime) -> None:
        """Ring the patient for a call placed at ``start``; the clock is left as it was."""
        now = self.clock.now()
        self.clock.set(start)
        try:
            self.progress.add(ring(self.phone, self.book, self.patients[request.to], request, sid))
        finally:
            self.clock.set(now)  # the next call starts at its own time, not after this one

    def drain(self) -> None:
        """Every call has already ended (they run inside ``place_call``)."""

    def earliest_start(self) -> datetime | None:
        return None  # no call is ever still playing

    def close(self) -> None:
        pass


# --- calls in worker processes ---------------------------------------------------------------------

_worker: dict = {}


def _worker_start(database_url: str, raw: dict, seed: int, count: int, extra: dict | None) -> None:
    """A worker process: the real app on the same database, with a clock of its own per call."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    cohort = Cohort(raw)
    patients = draw_cohort(cohort, count, seed)
    app = app_for(database_url, cohort, seed, SimulatedClock(datetime(2000, 1, 1, tzinfo=UTC)), extra)
    by_phone = {p.phone: p for p in patients}
    _worker.update(app=app, phone=_phone_for(app), book=_book_for(app, patients), by_phone=by_phone)


def _worker_ring(number: str, state: tuple, request: CallRequest, sid: str, start: datetime):
    patient: VirtualPatient = _worker["by_phone"][number]
    patient.calls, patient.weeks, patient.heard_feedback, patient.opted_out = state
    _worker["phone"].clock.set(start)
    rang = ring(_worker["phone"], _worker["book"], patient, request, sid)
    return (patient.calls, patient.weeks, patient.heard_feedback, patient.opted_out), rang


def _worker_main(pipe, claims, setup: tuple) -> None:
    """A worker process's loop: play each call the parent sends, send back what it did; None ends it.

    A call the parent took back before this process started it (see ``_Worker.take_back``) is
    answered "taken" and not played.
    """
    _worker_start(*setup)
    while (message := pipe.recv()) is not None:
        slot, task = message
        with claims.get_lock():
            mine = claims[slot] == _QUEUED
            if mine:
                claims[slot] = _STARTED
        if not mine:
            pipe.send(("taken", None))
            continue
        try:
            pipe.send(("ok", _worker_ring(*task)))
        except Exception as exc:  # the parent re-raises it, with the worker's traceback
            import traceback

            pipe.send(("error", f"{exc!r}\n{traceback.format_exc()}"))
    _worker["app"].extensions["db_engine"].dispose()


_QUEUED, _STARTED, _TAKEN_BACK = 0, 1, 2  # a sent call's claim, shared by parent and worker


@dataclass(frozen=True)
class _Sent:
    number: str  # the patient's
    start: datetime
    slot: int  # its claim's place in the worker's ring of claims
    task: tuple


class _Worker:
    """One worker process and the pipe to it, with the calls sent to it and not yet collected.

    A plain pipe, written and read by the run's own thread: a process pool's feeder and result
    threads would wait for the interpreter lock while this process plays a call itself. Each
    sent call has a claim in shared memory, so that the parent can take back a call the worker
    has not started and play it itself rather than wait for it (``take_back``).
    """

    RING = 16  # claims: more than calls ever in flight to one worker

    def __init__(self, context, setup: tuple):
        self.pipe, child = context.Pipe()
        self.claims = context.Array("b", self.RING)
        self.process = context.Process(target=_worker_main, args=(child, self.claims, setup), daemon=True)
        self.process.start()
        child.close()
        self.calls: deque[_Sent] = deque()  # in the order sent
        self.sent = 0

    def send(self, number: str, start: datetime, task: tuple) -> None:
        slot = self.sent % self.RING
        self.claims[slot] = _QUEUED  # its last call was collected long ago: at most QUEUE are in flight
        try:
            self.pipe.send((slot, task))
        except OSError:  # the worker has gone (its end of the pipe is closed)
            raise self._ended() from None
        self.sent += 1
        self.calls.append(_Sent(number, start, slot, task))

    def take_back(self) -> list[_Sent]:
        """Take back the calls sent and not started: the worker will skip them."""
        taken = []
        with self.claims.get_lock():
            for sent in self.calls:
                if self.claims[sent.slot] == _QUEUED:
                    self.claims[sent.slot] = _TAKEN_BACK
                    taken.append(sent)
        return taken

    def _ended(self) -> RuntimeError:
        return RuntimeError(f"cohort worker process {self.process.pid} ended unexpectedly")

    def finished(self) -> bool:
        """The oldest call in flight has ended (its result is waiting)."""
        return bool(self.calls) and self.pipe.poll()

    def result(self) -> tuple[str, tuple, Rang] | None:
        """Wait for the oldest call in flight; return (number, patient state, what the call did),
        or None for a call taken back."""
        try:
            kind, value = self.pipe.recv()
        except EOFError:
            raise self._ended() from None
        sent = self.calls.popleft()
        if kind == "error":
            raise RuntimeError(f"a call failed in a cohort worker process: {value}")
        return None if kind == "taken" else (sent.number, *value)

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # a worker that already ended
            self.pipe.send(None)
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()
        self.pipe.close()


class ParallelPhones:
    """The answerer with ``workers`` > 1: calls are played in this process and in ``workers - 1``
    worker processes (each with the app on the same database), as a real network plays calls
    side by side.

    A placed call goes to a worker process with room in its queue and ``place_call`` returns at
    once, as Twilio's API does; the webhooks arrive meanwhile. When every worker's queue is full
    this process plays the call itself (inside ``place_call``, as with one process), so no more
    processes are busy than ``workers``: with one per core, none holding SQLite's write turn is
    pushed off its core by another.

    Calls may still be playing when the next tick runs, but only when that tick cannot tell
    (``can_overlap``); otherwise, and before the program jobs, the run waits for them
    (``drain``). So what the scheduler sees, and so what every patient does, is what it is with
    one process; only the order in which rows are written, and so the row ids, may differ.
    """

    QUEUE = 2  # calls sent to one worker and not yet collected

    def __init__(self, app: Flask, patients: dict[str, VirtualPatient], progress: Progress, *, workers: int, setup):
        import multiprocessing

        self.patients = patients
        self.progress = progress
        self.clock: SimulatedClock = app.extensions["clock"]
        self.here = CohortPhone(app, patients, progress)
        context = multiprocessing.get_context("spawn")
        self.workers = [_Worker(context, setup) for _ in range(workers - 1)]

    def __call__(self, request: CallRequest, placed: PlacedCall) -> None:
        patient = self.patients[request.to]
        for worker in self.workers:
            if any(sent.number == request.to for sent in worker.calls):
                self._collect(worker)  # never two calls of one patient at once (their state travels with the call)
            while worker.finished():
                self._take(worker)
        free = min(self.workers, key=lambda worker: len(worker.calls))
        if len(free.calls) >= self.QUEUE:
            self.here(request, placed)  # every worker has enough to do: play this one here
            return
        state = (patient.calls, patient.weeks, patient.heard_feedback, patient.opted_out)
        start = self.clock.now()
        free.send(request.to, start, (request.to, state, request, placed.sid, start))

    def _take(self, worker: _Worker) -> None:
        result = worker.result()
        if result is None:
            return  # taken back, and played here
        number, state, rang = result
        patient = self.patients[number]
        patient.calls, patient.weeks, patient.heard_feedback, patient.opted_out = state
        self.progress.add(rang)

    def _collect(self, worker: _Worker) -> None:
        while worker.calls:
            self._take(worker)

    def earliest_start(self) -> datetime | None:
        """When the oldest call still playing started (None when none is)."""
        return min((sent.start for worker in self.workers for sent in worker.calls), default=None)

    def drain(self) -> None:
        """Wait for every call in progress; take back each patient's state and count what happened.

        Calls a worker has not started are played here meanwhile, each at its own start time
        (as the worker would have: the patient's state travels with the call).
        """
        for worker in self.workers:
            for sent in worker.take_back():
                _, _, request, sid, start = sent.task
                self.here.play(request, sid, start)
        for worker in self.workers:
            self._collect(worker)

    def close(self) -> None:
        try:
            self.drain()
        finally:
            for worker in self.workers:
                worker.stop()


def overlap_horizon(settings: queue.SchedulingSettings) -> timedelta:
    """How soon after a call starts its end can put new work in the queue: its retry (the
    ladder's shortest delay; a next slot is a day or more away), or the sweep of a call that
    never reported (``unconfirmed_after``, ``lost_after``)."""
    delays = [step.delay for step in settings.ladder if step.delay is not None]
    return min([*delays, timedelta(hours=1), settings.unconfirmed_after, settings.lost_after])


_DUE_BY = sa.select(sa.func.count()).where(
    _attempts.c.state == AttemptState.PENDING.value, _attempts.c.due_at <= sa.bindparam("b_at")
)


def can_overlap(conn: sa.Connection, answerer, dispatcher: Dispatcher, tick_at: datetime) -> bool:
    """Whether the tick at ``tick_at`` does the same with calls still playing as after they end.

    It does when (1) no call still playing can have put work in the queue that is due by then
    (see overlap_horizon), so the tick's time and the attempts it may claim are the same, and
    (2) the calls still playing do not limit what it claims: every attempt due fits in the
    capacity left beside them, as it would with none playing (ivr_cbt/scheduling/dispatch.py).
    """
    earliest = answerer.earliest_start()
    if earliest is None:
        return True
    settings = dispatcher.settings
    if tick_at >= earliest + overlap_horizon(settings):
        return False
    due = conn.execute(_DUE_BY, {"b_at": tick_at}).scalar()
    return due <= dispatcher.room(conn.execute(IN_FLIGHT).scalar())


def review_delay(seed: int, message_id: int, hours: list[float]) -> timedelta:
    low, high = hours
    return timedelta(hours=random.Random(f"{seed}/review/{message_id}").uniform(low, high))


def simulated_therapist(conn: sa.Connection, now: datetime, seed: int, hours: list[float]) -> int:
    """Approve every guided message that has waited its (seeded) review delay; return how many."""
    waiting = conn.execute(
        sa.select(_messages.c.id, _messages.c.generated_at)
        .where(_messages.c.status == FeedbackStatus.PENDING_REVIEW.value)
        .order_by(_messages.c.id)
    ).all()
    approved = 0
    for message_id, generated_at in waiting:
        if generated_at.tzinfo is None:
            generated_at = generated_at.replace(tzinfo=UTC)
        if generated_at + review_delay(seed, message_id, hours) <= now:
            approve(conn, message_id, actor=THERAPIST, now=now)
            approved += 1
    conn.commit()
    return approved


def _midnight(day, zones) -> list[datetime]:
    return [datetime.combine(day, clock_time(0, 0), ZoneInfo(zone)).astimezone(UTC) for zone in zones]


@dataclass(frozen=True)
class CohortResult:
    progress: Progress
    patients: int
    seed: int
    database_url: str
    true_change: dict[str, float]  # arm -> the model's expected change in pain at the report's timepoint
    months: int  # the report's primary timepoint
    margin: float  # the non-inferiority margin of the cohort file
    flows: dict = field(default_factory=dict, repr=False)


def app_for(database_url: str, cohort: Cohort, seed: int, clock: SimulatedClock, extra: dict | None = None) -> Flask:
    """The real app on ``database_url``, with the cohort's program settings, mock telephony and a simulated clock."""
    telephony = MockTelephony(seed=seed)
    config = {
        "DATABASE_URL": database_url,
        "TELEPHONY": telephony,
        "TELEPHONY_BACKEND": "mock",
        "CLOCK": clock,
        "DISPATCH_CPS": cohort["telephony"]["cps"],
        "MAX_CONCURRENT_CALLS": cohort["telephony"]["max_concurrent"],
        "PROGRAM_WEEKS": cohort.raw.get("program_weeks", 11),
        "FOLLOW_UP_WEEKS": ",".join(str(w) for w in cohort.raw.get("follow_up_weeks", [])),
        "FEEDBACK_DELIVERY": "checkin",
        "LOG_LEVEL": "WARNING",  # a tick's and a call's INFO lines, thousands of times over
        **(extra or {}),
    }
    return create_app(config)


def check_empty(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        if conn.execute(sa.select(_patients.c.id).limit(1)).first() is not None:
            raise CohortDatabaseError(
                "this database already holds patients; a synthetic cohort needs a database of its own "
                "(give a new --database URL)"
            )


def simulate_cohort(
    cohort: Cohort,
    database_url: str,
    *,
    patients: int | None = None,
    weeks: int | None = None,
    seed: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    app_config: dict | None = None,
    workers: int = 1,
) -> CohortResult:
    """Enrol the cohort in a new (empty) database, run it for ``weeks`` simulated weeks, mark it synthetic.

    ``should_stop`` is asked between events; when it says yes, the run ends there, after the tick
    or job in progress, leaving every placed call finished and the database consistent.
    ``workers`` > 1 plays the calls in that many processes (see ParallelPhones).
    """
    cohort = cohort.with_overrides(patients=patients, weeks=weeks, seed=seed)
    seed, count, weeks = int(cohort.raw.get("seed", 1)), int(cohort["patients"]), int(cohort["weeks"])
    db.upgrade_database(database_url)
    virtual = draw_cohort(cohort, count, seed)
    zones = sorted({p.timezone for p in virtual})
    begin = min(_midnight(cohort.start, zones)) - timedelta(hours=1)
    until = max(_midnight(cohort.start + timedelta(days=7 * weeks), zones))
    clock = SimulatedClock(begin)
    app = app_for(database_url, cohort, seed, clock, app_config)
    engine = app.extensions["db_engine"]
    progress = Progress(weeks=weeks)
    started = wall.perf_counter()
    answerer = None
    try:
        check_empty(engine)
        _enrol(app, cohort, virtual, seed, begin)
        by_phone = {p.phone: p for p in virtual}
        if workers > 1:
            setup = (database_url, cohort.raw, seed, count, app_config)
            answerer = ParallelPhones(app, by_phone, progress, workers=workers, setup=setup)
        else:
            answerer = CohortPhone(app, by_phone, progress)
        app.extensions["telephony"].answer = answerer
        settings = app.extensions["voice_settings"]
        app.extensions["dispatcher"] = Dispatcher(
            sleep=clock.advance,  # pacing moves the simulated clock
            engine=engine,
            telephony=app.extensions["telephony"],
            voice=settings,
            settings=settings.scheduling,
            from_number=app.config["TWILIO_FROM_NUMBER"],
            interval_seconds=app.config["DISPATCH_INTERVAL_SECONDS"],
            worker=ACTOR,  # the same name every run, so the same seed gives the same database
        )
        _loop(app, cohort, seed, begin, until, zones, progress, on_progress, should_stop or (lambda: False))
    finally:
        if answerer is not None:
            answerer.close()
        progress.wall_seconds = wall.perf_counter() - started
        engine.dispose()
    months = int(cohort.raw.get("report", {}).get("months", Options.months))
    return CohortResult(
        progress,
        count,
        seed,
        database_url,
        {arm: cohort.true_change(arm, target_week(months)) for arm in cohort.arms()},
        months,
        float(cohort.raw.get("report", {}).get("margin", Options.margin)),
        app.extensions["voice_settings"].flows,
    )


def _enrol(app: Flask, cohort: Cohort, virtual: list[VirtualPatient], seed: int, now: datetime) -> None:
    settings = app.extensions["voice_settings"]
    months = int(cohort.raw.get("report", {}).get("months", Options.months))
    enrolments = [
        Enrolment(
            NewPatient(
                name=p.name,
                phone=p.phone,
                pin=p.pin,
                timezone=p.timezone,
                language=p.language,
                start=cohort.start,
                feedback_mode=p.arm,
                call_day=p.call_day,
                call_time=p.call_time,
            ),
            code=f"{900000 + p.index:06d}" if p.index < 100000 else None,
            pin_salt=random.Random(f"{seed}/p{p.index}/salt").getrandbits(128).to_bytes(16).hex(),
        )
        for p in virtual
    ]
    with app.extensions["db_engine"].connect() as conn:
        enrol_many(
            conn,
            enrolments,
            pepper=app.config["PIN_PEPPER"],
            languages=set(settings.renderer.catalogue.languages),
            now=now,
            actor=ACTOR,
            scheduling=settings.scheduling,
        )
        mark_synthetic(
            conn,
            now,
            ACTOR,
            cohort=cohort.name,
            description=cohort["description"],
            seed=seed,
            patients=len(virtual),
            weeks=int(cohort["weeks"]),
            true_change_at_months={
                str(months): {arm: round(cohort.true_change(arm, target_week(months)), 3) for arm in cohort.arms()}
            },
        )
        conn.commit()


def _grid(when: datetime, seconds: int) -> datetime:
    """The scheduler's next tick at or after ``when`` (ticks every ``seconds`` seconds)."""
    stamp = when.timestamp()
    ticks = -(-stamp // seconds)  # ceiling
    return datetime.fromtimestamp(ticks * seconds, UTC)


def _loop(app, cohort, seed, begin, until, zones, progress, on_progress, should_stop) -> None:
    clock: SimulatedClock = app.extensions["clock"]
    engine = app.extensions["db_engine"]
    dispatcher: Dispatcher = app.extensions["dispatcher"]
    answerer = app.extensions["telephony"].answer
    interval = app.config["DISPATCH_INTERVAL_SECONDS"]
    jobs_every = timedelta(minutes=int(cohort.raw.get("jobs_every_minutes", JOBS_EVERY_MINUTES)))
    hours = cohort["therapist"]["review_delay_hours"]
    next_jobs = begin
    start_local = cohort.start
    closes = sorted(
        moment
        for week in range(1, progress.weeks + 1)
        for moment in _midnight(start_local + timedelta(days=7 * week), zones)
    )
    while not should_stop():
        with engine.connect() as conn:
            due = conn.execute(_NEXT_DUE).scalar()
            if due is not None and due.tzinfo is None:
                due = due.replace(tzinfo=UTC)
            tick_at = _grid(max(due, clock.now()), interval) if due is not None else None
            jobs_first = next_jobs <= until and (tick_at is None or next_jobs <= tick_at)
            overlap = not jobs_first and tick_at is not None and can_overlap(conn, answerer, dispatcher, tick_at)
        if not overlap and answerer.earliest_start() is not None:
            answerer.drain()  # calls still playing could change what comes next: let them end, and look again
            continue
        if jobs_first:
            clock.set(max(next_jobs, clock.now()))
            _jobs(app, clock.now(), seed, hours, progress, closes)
            next_jobs += jobs_every
        elif tick_at is not None and tick_at <= until:
            progress.overlapped_ticks += answerer.earliest_start() is not None
            clock.set(tick_at)
            dispatcher.tick(clock.now())
            progress.ticks += 1
        else:
            answerer.drain()  # the end: every call counted before the last progress line
            break
        progress.simulated_until = clock.now()
        week = min(progress.weeks, max(0, (clock.now().date() - start_local).days // 7))
        if on_progress is not None and (week != progress.week or progress.ticks % 50 == 0):
            progress.week = week
            on_progress(progress)
    else:
        progress.stopped = True
    if not progress.stopped:
        clock.set(max(until, clock.now()))
        progress.simulated_until = clock.now()
        progress.week = progress.weeks
    if on_progress is not None:
        on_progress(progress)


def _jobs(app: Flask, now: datetime, seed: int, hours: list[float], progress: Progress, closes: list[datetime]) -> None:
    """What the scheduler process runs besides the tick (feedback generation, reconcile), and the therapist.

    The generation job can only have work once a program week has closed (``closes``: when weeks
    close in the cohort's zones) or after calls were answered (late answers regenerate a message);
    otherwise the simulation skips it, as an idle run changes nothing.
    """
    closed = bool(closes) and closes[0] <= now
    while closes and closes[0] <= now:
        closes.pop(0)
    answered = progress.pickups["answer"]
    if closed or answered != progress.answered_at_jobs:
        generate(app, now)
        progress.generated_runs += 1
        progress.answered_at_jobs = answered
    with app.extensions["db_engine"].connect() as conn:
        progress.approved += simulated_therapist(conn, now, seed, hours)
        if progress.reconciled_at is None or now - progress.reconciled_at >= RECONCILE_EVERY:
            queue.reconcile(conn, app.extensions["voice_settings"].scheduling, now)
            conn.commit()
            progress.reconciled_at = now
    progress.job_runs += 1


class StopOnInterrupt:
    """Ctrl-C (SIGINT) or SIGTERM asks the run to stop after the event in progress; a second one stops at once."""

    def __init__(self):
        self.requested = False
        self._previous: dict = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


def empty_synthetic(database_url: str) -> None:
    """Remove every table of a database that holds only a synthetic cohort (``--replace``).

    Refuses (CohortDatabaseError) a database with patients but no synthetic-cohort mark: it may be
    a real program's.
    """
    from ivr_cbt.models import AuditEvent, Base

    engine = db.make_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        if "patients" not in inspector.get_table_names():
            return
        with engine.connect() as conn:
            has_patients = conn.execute(sa.select(_patients.c.id).limit(1)).first() is not None
            audit_table = AuditEvent.__table__
            marked = conn.execute(
                sa.select(audit_table.c.id).where(audit_table.c.action == SYNTHETIC_ACTION).limit(1)
            ).first()
        if has_patients and marked is None:
            raise CohortDatabaseError(
                "this database holds patients and no synthetic-cohort mark: --replace empties only a synthetic one"
            )
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


def summary(result: CohortResult) -> str:
    """What the run did, in a few lines (counts only: nothing about any one patient)."""
    progress = result.progress
    pickups = progress.pickups
    seconds = max(progress.wall_seconds, 1e-9)
    truth = ", ".join(f"{arm} {change:+.2f}" for arm, change in result.true_change.items())
    return "\n".join(
        [
            f"SYNTHETIC cohort: {result.patients} virtual patients, seed {result.seed}, "
            f"simulated to {progress.simulated_until:%Y-%m-%d %H:%M} UTC",
            f"Calls placed {progress.calls}: answered {pickups['answer']}, voicemail {pickups['machine']}, "
            f"no answer {pickups['no-answer']}, busy {pickups['busy']}; webhook requests {progress.requests}",
            f"Feedback heard {progress.heard_feedback}, guided messages approved {progress.approved}, "
            f"opted out {progress.opted_out}; {progress.ticks} dispatch ticks, {progress.job_runs} job runs "
            f"({progress.generated_runs} with feedback generation)",
            f"Wall time {progress.wall_seconds:.1f} s: {progress.calls / seconds:.1f} simulated calls/s, "
            f"{progress.requests / seconds:.0f} webhook requests/s",
            f"True change in pain at the report's timepoint (the model's): {truth}",
        ]
    )


def write_report(result: CohortResult, directory, *, margin: float | None = None) -> list[str]:
    """Write the outcome report of the cohort's database (md, json, html, plots), stamped with the
    simulated end, so the same seed writes the same files. Return the paths written."""
    from pathlib import Path

    from ivr_cbt.calls import DEFAULT_FLOW
    from ivr_cbt.report import outcome_report
    from ivr_cbt.report.render import render

    until = result.progress.simulated_until
    engine = db.make_engine(result.database_url)
    try:
        flows = result.flows
        report = outcome_report(
            engine,
            Options(margin=margin if margin is not None else result.margin, months=result.months),
            now=until,
            actor=ACTOR,
            items=flows[DEFAULT_FLOW].item_keys(),
            as_of=until,
        )
    finally:
        engine.dispose()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in ("md", "json", "html"):
        for name, content in render(report, fmt, "svg", with_files=True).items():
            (out / name).write_bytes(content)
            written.append(str(out / name))
    return sorted(set(written))
