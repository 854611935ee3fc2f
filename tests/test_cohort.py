"""The cohort simulator: cohort files, the behaviour model, runs through the real system,
determinism, recovery of a known effect, stopping cleanly, and `manage.py simulate cohort`."""

from __future__ import annotations

import json
import statistics
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from ivr_cbt import db
from ivr_cbt.models import (
    Answer,
    AttemptState,
    AuditEvent,
    Base,
    Call,
    CallAttempt,
    CheckIn,
    CheckinStatus,
    FeedbackMessage,
    Patient,
)
from ivr_cbt.report.extract import SYNTHETIC_ACTION
from ivr_cbt.simulator.behaviour import CohortError, VirtualPatient, draw_cohort, load_cohort
from ivr_cbt.simulator.cohort import THERAPIST, CohortDatabaseError, empty_synthetic, simulate_cohort, write_report

DATA = Path(__file__).parent / "data"
SMALL = str(DATA / "cohort_small.yaml")  # resolve, a few patients, weeks 0-1 and a 3-month call


def write(tmp_path, text: str) -> str:
    path = tmp_path / "cohort.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- cohort files -------------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "n", "arms"), [("copes", 125, ["monitoring", "guided"]), ("resolve", 2331, None)])
def test_presets_load_labelled_synthetic(preset, n, arms):
    cohort = load_cohort(preset)
    assert cohort["patients"] == n
    assert "synthetic" in cohort["description"].lower()
    assert cohort.arms() == (arms or ["monitoring", "automated", "guided"])


def test_copes_preset_has_the_published_effects_and_follow_ups():
    cohort = load_cohort("copes")
    assert cohort["follow_up_weeks"] == [13, 26, 39]
    assert cohort.true_change("guided", 13) == pytest.approx(-0.77)
    assert cohort.true_change("monitoring", 13) == pytest.approx(-0.84)
    assert cohort.true_change("guided", 0) == 0


def test_a_file_can_start_from_a_preset(tmp_path):
    cohort = load_cohort(
        write(tmp_path, "base: copes\nname: mine\npatients: 10\nstart: 2027-02-01\ncalls: {speech: 0}\n")
    )
    assert cohort.start.isoformat() == "2027-02-01"
    assert (cohort.name, cohort["patients"], cohort["calls"]["speech"]) == ("mine", 10, 0)
    assert cohort["calls"]["wrong_key"] == load_cohort("copes")["calls"]["wrong_key"]  # merged, not replaced


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("base: copes\ncalls: {silence: 1.5}\n", "calls/silence: 1.5 is greater than the maximum of 1"),
        ("base: copes\npatients: many\n", "patients: 'many' is not of type 'integer'"),
        ("base: copes\nmood: sunny\n", "Additional properties are not allowed ('mood' was unexpected)"),
        ("base: copes\npopulation: {time_zones: {Mars/Olympus: 1}}\n", "'Mars/Olympus' is not an IANA time zone"),
        ("base: copes\narms: {placebo: {share: 1, effect: 0}}\n", "arms: Additional properties"),
        ("base: copes\nstart: 2027-13-01\n", "month must be in 1..12"),
        ("base: copes\nstart: 'next monday'\n", "start: 'next monday' is not a 'date'"),
        ("base: nowhere\n", "/nowhere' (presets: copes, resolve)"),
        ("name: [unclosed\n", "cohort.yaml"),
        ("- a list\n", "a cohort file is a mapping"),
    ],
)
def test_a_bad_cohort_file_names_the_problem(tmp_path, text, problem):
    with pytest.raises(CohortError) as raised:
        load_cohort(write(tmp_path, text))
    assert problem in str(raised.value)


def test_a_base_that_goes_round_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text(f"base: {path}\n", encoding="utf-8")
    with pytest.raises(CohortError, match="circle"):
        load_cohort(str(path))


# --- the behaviour model ---------------------------------------------------------------------------


def test_patients_are_seeded_and_independent_of_each_other():
    cohort = load_cohort("resolve")
    everyone = draw_cohort(cohort, 50, seed=7)
    again = draw_cohort(cohort, 50, seed=7)
    other = draw_cohort(cohort, 50, seed=8)
    alone = VirtualPatient.draw(cohort, 31, everyone[31].arm, seed=7)
    assert [(p.pin, p.baseline_pain, p.change) for p in everyone] == [(p.pin, p.baseline_pain, p.change) for p in again]
    assert (alone.pin, alone.baseline_pain, alone.week(3)) == (
        everyone[31].pin,
        everyone[31].baseline_pain,
        everyone[31].week(3),
    )
    assert [p.baseline_pain for p in everyone] != [p.baseline_pain for p in other]
    assert len({p.phone for p in everyone}) == 50
    assert all(p.phone.startswith("+1") and p.phone[5:9] == "5550" for p in everyone)  # the fictional block


def test_allocation_follows_the_shares_in_blocks():
    copes = load_cohort("copes").allocation(125, seed=1)
    assert (copes.count("guided"), copes.count("monitoring")) == (62, 63)
    resolve = load_cohort("resolve").allocation(2331, seed=1)
    assert {arm: resolve.count(arm) for arm in ("monitoring", "automated", "guided")} == {
        "monitoring": 777,
        "automated": 777,
        "guided": 777,
    }


def test_the_arms_true_change_is_the_mean_of_the_patients_changes():
    """Practice modulates each patient's change around the arm's effect, never its mean."""
    cohort = load_cohort("resolve")
    for arm in cohort.arms():
        changes = [VirtualPatient.draw(cohort, i, arm, seed=3).change for i in range(6000)]
        sd = cohort["pain"]["effect_sd"]
        assert statistics.fmean(changes) == pytest.approx(cohort["arms"][arm]["effect"], abs=4 * sd / 6000**0.5)


def test_answering_depends_on_the_hour_the_weekday_the_week_and_dropout():
    cohort = load_cohort("copes")
    patient = draw_cohort(cohort, 1, seed=1)[0]
    patient.answer_propensity, patient.timezone = 1.0, "America/New_York"
    new_york = ZoneInfo("America/New_York")

    def at(day: int, hour: int) -> float:  # program week 0 starts on Monday 4 January 2027
        return patient.answer_probability(datetime(2027, 1, 4, hour, tzinfo=new_york) + timedelta(days=day))

    assert at(0, 8) == pytest.approx(0.7) and at(0, 19) == pytest.approx(0.9)
    assert at(0, 12) == pytest.approx(0.8 + (0.75 - 0.8) / 3)  # between the 11:00 and 14:00 points
    assert at(6, 19) == pytest.approx(0.9 * 0.8)  # a Sunday
    assert at(35, 19) == pytest.approx(0.9 * 0.985**5)  # week 5
    patient.dropout_week = 5
    assert at(35, 19) == 0 and at(28, 19) > 0
    patient.opted_out = True
    assert at(28, 19) == 0


def test_a_week_is_drawn_once_and_steps_move_toward_the_goal_after_feedback():
    cohort = load_cohort("resolve")
    heard, unheard = (VirtualPatient.draw(cohort, 4, "automated", seed=5) for _ in range(2))
    heard.heard_feedback = set(range(12))
    for week in range(12):
        assert heard.week(week) is heard.week(week)
    assert heard.week(2).steps == unheard.week(2).steps  # before week 3's step goal, no difference
    gains = [heard.week(w).steps / unheard.week(w).steps for w in range(6, 12)]
    assert min(gains) > 1.05
    assert statistics.fmean(heard.week(w).practice for w in range(1, 12)) > statistics.fmean(
        unheard.week(w).practice for w in range(1, 12)
    )


# --- a cohort through the real system --------------------------------------------------------------


def _tables(url: str) -> dict[str, list[tuple]]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [tuple(row) for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One small cohort on SQLite, shared by the read-only checks below."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cohort') / 'cohort.sqlite'}"
    return simulate_cohort(load_cohort(SMALL), url, patients=24, weeks=3, seed=11)


def test_a_cohort_goes_through_the_scheduler_the_webhooks_and_the_feedback_job(small_run):
    tables = _tables(small_run.database_url)
    progress = small_run.progress
    engine = db.make_engine(small_run.database_url)
    with engine.connect() as conn:
        patients = conn.execute(sa.select(Patient.__table__)).all()
        calls = conn.execute(sa.select(Call.__table__)).all()
        attempts = conn.execute(sa.select(CallAttempt.__table__)).all()
        complete = conn.execute(
            sa.select(sa.func.count()).select_from(CheckIn.__table__).where(CheckIn.status == CheckinStatus.COMPLETE)
        ).scalar()
        messages = conn.execute(sa.select(FeedbackMessage.__table__)).all()
        marks = conn.execute(sa.select(AuditEvent.detail).where(AuditEvent.action == SYNTHETIC_ACTION)).scalars().all()
    engine.dispose()
    assert len(patients) == 24 and {p.feedback_mode.value for p in patients} == {"monitoring", "automated", "guided"}
    assert len(calls) == progress.calls == len([a for a in attempts if a.call_sid])  # one call per placed attempt
    assert progress.pickups["answer"] > 0 and progress.pickups["answer"] < progress.calls  # some unanswered, retried
    assert complete >= 24  # baseline and week 1 for most patients
    assert max(a.attempt for a in attempts) > 0  # the retry ladder ran
    assert not [a for a in attempts if a.state in (AttemptState.CLAIMED.value, AttemptState.PLACING.value)]
    assert {m.mode.value for m in messages} == {"automated", "guided"}  # monitoring gets none
    guided = [m for m in messages if m.mode.value == "guided" and m.reviewed_by]
    assert guided and {m.reviewed_by for m in guided} == {THERAPIST}
    assert progress.approved == len(guided)
    assert any(m.delivered_at for m in messages) and progress.heard_feedback == sum(
        1 for m in messages if m.delivered_at
    )
    (mark,) = marks
    assert mark["cohort"] == "small" and mark["patients"] == 24 and mark["seed"] == 11
    assert mark["true_change_at_months"] == {"3": {"monitoring": -0.3, "automated": -0.65, "guided": -0.95}}
    assert len(tables["answers"]) > 0


def test_the_answers_in_the_database_are_what_the_virtual_patients_said(small_run):
    cohort = load_cohort(SMALL)
    virtual = {p.phone: p for p in draw_cohort(cohort, 24, seed=11)}
    engine = db.make_engine(small_run.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Patient.phone, CheckIn.week, Answer.item_key, Answer.value)
            .join_from(Answer, CheckIn, CheckIn.id == Answer.checkin_id)
            .join(Patient, Patient.id == CheckIn.patient_id)
            .where(Answer.value.is_not(None))
        ).all()
    engine.dispose()
    assert len(rows) > 100
    for phone, week, item, value in rows:
        said = virtual[phone].week(week)
        expected = {
            "pain_avg": said.pain,
            "sleep_quality": said.sleep,
            "steps_avg": said.steps,
            "practice_days": said.practice,
            "safety": 1 if said.safety_yes else 2,
        }[item]
        assert value == expected, (phone[-4:], week, item)


def test_the_same_seed_gives_the_same_database_and_report(tmp_path):
    cohort = load_cohort(SMALL)
    runs = [
        simulate_cohort(cohort, f"sqlite:///{tmp_path / name}.sqlite", patients=12, weeks=2, seed=seed)
        for name, seed in (("a", 4), ("b", 4), ("c", 5))
    ]
    first, second, other = (_tables(run.database_url) for run in runs)
    assert first == second
    assert first["patients"] != other["patients"]
    reports = []
    for name, run in zip("ab", runs[:2], strict=True):
        write_report(run, tmp_path / f"report-{name}")
        reports.append({p.name: p.read_bytes() for p in (tmp_path / f"report-{name}").iterdir()})
    assert reports[0] == reports[1]
    report = json.loads(reports[0]["outcomes.json"])
    assert report["synthetic"] is True and report["synthetic_sources"][0]["cohort"] == "small"


def test_calls_in_worker_processes_give_the_same_outcomes_and_report(tmp_path):
    """workers=2 plays calls side by side, here and in a worker process, and runs a tick while
    calls of earlier ones still play when that tick cannot tell: what every patient did, and so
    the report, is the same as in one process; only the order rows were written in (their ids)
    may differ."""
    dense = load_cohort(DATA / "cohort_dense.yaml")
    small_run = simulate_cohort(dense, f"sqlite:///{tmp_path}/serial.sqlite", patients=24, weeks=3, seed=11)
    url = f"sqlite:///{tmp_path}/parallel.sqlite"
    parallel = simulate_cohort(dense, url, patients=24, weeks=3, seed=11, workers=2)
    assert parallel.progress.pickups == small_run.progress.pickups
    assert parallel.progress.requests == small_run.progress.requests
    assert parallel.progress.ticks == small_run.progress.ticks
    assert 0 < parallel.progress.overlapped_ticks < parallel.progress.ticks
    assert small_run.progress.overlapped_ticks == 0

    def answers(run):
        engine = db.make_engine(run.database_url)
        with engine.connect() as conn:
            found = conn.execute(
                sa.select(CheckIn.patient_id, CheckIn.week, Answer.item_key, Answer.value, Answer.raw_input)
                .join_from(Answer, CheckIn, CheckIn.id == Answer.checkin_id)
                .order_by(CheckIn.patient_id, CheckIn.week, Answer.item_key)
            ).all()
        engine.dispose()
        return found

    assert answers(parallel) == answers(small_run)
    write_report(parallel, tmp_path / "parallel")
    write_report(small_run, tmp_path / "serial")
    assert (tmp_path / "parallel" / "outcomes.json").read_bytes() == (
        tmp_path / "serial" / "outcomes.json"
    ).read_bytes()


def test_a_cohort_runs_on_each_database(database_url):
    """SQLite, and PostgreSQL when TEST_DATABASE_URL is set (CI): the fixture's database is migrated and empty."""
    result = simulate_cohort(load_cohort(SMALL), database_url, patients=12, weeks=2, seed=11)
    assert result.progress.pickups["answer"] > 0
    tables = _tables(database_url)
    assert len(tables["patients"]) == 12 and len(tables["calls"]) == result.progress.calls
    assert not [a for a in tables["call_attempts"] if a[CallAttempt.__table__.c.keys().index("state")] == "placing"]


def test_the_report_recovers_the_true_effect_in_most_seeds(tmp_path):
    """Calls at weeks 0 and 1, then the 3-month call (week 13): the report's estimate of each arm's
    change and of guided minus monitoring must contain the model's truth in at least 4 of 5 seeds."""
    cohort = load_cohort(str(DATA / "cohort_effect.yaml"))  # guided -1.5, monitoring -0.3
    hits, widths = 0, []
    for seed in range(5):
        run = simulate_cohort(cohort, f"sqlite:///{tmp_path}/effect-{seed}.sqlite", seed=seed)
        out = tmp_path / f"report-{seed}"
        write_report(run, out)
        report = json.loads((out / "outcomes.json").read_text())
        truth = run.true_change
        arms = {arm["name"]: arm for arm in report["arms"]}
        inside = all(arms[a]["pain_change_ci"][0] <= truth[a] <= arms[a]["pain_change_ci"][1] for a in truth)
        (versus,) = [c for c in report["comparisons"] if c["arms"] == ["monitoring", "guided"]]
        low, high = versus["ci"]
        widths.append(high - low)
        inside = inside and low <= truth["monitoring"] - truth["guided"] <= high
        hits += inside
    assert hits >= 4
    assert max(widths) < 2.5  # informative intervals: a wrong estimate would fall outside them


def test_a_stop_request_ends_the_run_cleanly(tmp_path):
    url = f"sqlite:///{tmp_path}/stopped.sqlite"
    asked = iter(range(10**9))
    result = simulate_cohort(
        load_cohort(SMALL), url, patients=30, weeks=3, seed=2, should_stop=lambda: next(asked) >= 60
    )
    assert result.progress.stopped and result.progress.calls > 0
    tables = _tables(url)
    state = CallAttempt.__table__.c.keys().index("state")
    assert {row[state] for row in tables["call_attempts"]} <= {"pending", "done"}
    status = Call.__table__.c.keys().index("status")
    assert all(row[status] in ("completed", "no-answer", "busy", "failed") for row in tables["calls"])


# --- the command line ------------------------------------------------------------------------------


def test_simulate_cohort_command_runs_reports_and_refuses_a_used_database(runner, tmp_path):
    url = f"sqlite:///{tmp_path}/cli.sqlite"
    args = ["simulate", "cohort", "--preset", SMALL, "--patients", "6", "--weeks", "1", "--database", url]
    result = runner.invoke(args=[*args, "--seed", "3", "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC cohort: 6 virtual patients, seed 3" in result.output
    assert "simulated calls/s" in result.output and "--as-of 2027-01-11" in result.output
    report = json.loads((tmp_path / "report" / "outcomes.json").read_text())
    assert report["synthetic"] is True
    assert "SYNTHETIC DATA" in (tmp_path / "report" / "outcomes.md").read_text()
    assert "+1201555" not in result.output  # no patient's number or name is printed
    assert "Synthetic Patient" not in result.output

    again = runner.invoke(args=args)
    assert again.exit_code == 1 and "already holds patients" in again.output
    replaced = runner.invoke(args=[*args, "--replace", "--seed", "3"])
    assert replaced.exit_code == 0, replaced.output
    assert len(_tables(url)["patients"]) == 6


def test_simulate_cohort_refuses_the_programs_own_database_and_a_bad_preset(runner, app, tmp_path):
    own = runner.invoke(args=["simulate", "cohort", "--preset", "copes", "--database", app.config["DATABASE_URL"]])
    assert own.exit_code == 1 and "never goes into the program's own database" in own.output
    bad = runner.invoke(args=["simulate", "cohort", "--preset", "nowhere"])
    assert bad.exit_code == 2 and "no cohort preset or file 'nowhere'" in bad.output


def test_replace_refuses_a_database_with_real_patients(app, add_patient):
    add_patient()
    with pytest.raises(CohortDatabaseError, match="no synthetic-cohort mark"):
        empty_synthetic(app.config["DATABASE_URL"])
    assert len(_tables(app.config["DATABASE_URL"])["patients"]) == 1


def test_ctrl_c_stops_the_command_cleanly(tmp_path):
    """SIGINT to a running `simulate cohort`: it finishes the event in progress, says so, exits 130,
    and leaves every attempt pending or done."""
    import os
    import signal
    import subprocess
    import sys
    import time

    database = tmp_path / "interrupted.sqlite"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/program.sqlite"}
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "simulate",
            "cohort",
            "--preset",
            SMALL,
            "--patients",
            "200",
            "--database",
            f"sqlite:///{database}",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # wait until calls are being made, then interrupt
            if database.exists():
                try:
                    if _tables(f"sqlite:///{database}")["calls"]:
                        break
                except sa.exc.OperationalError:
                    pass  # not migrated yet
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Stopped on request" in out
    tables = _tables(f"sqlite:///{database}")
    state = CallAttempt.__table__.c.keys().index("state")
    assert {row[state] for row in tables["call_attempts"]} <= {"pending", "done"}
    assert len(tables["patients"]) == 200


def test_a_call_that_fails_in_a_worker_process_stops_the_run_with_its_traceback(tmp_path):
    """A worker's error comes back to the run as an error naming it, and a worker that dies is
    reported as such: the run never waits for an answer that cannot come."""
    import multiprocessing

    from ivr_cbt.simulator.cohort import _Sent, _Worker

    url = f"sqlite:///{tmp_path}/worker.sqlite"
    db.upgrade_database(url)
    cohort = load_cohort(SMALL)
    context = multiprocessing.get_context("spawn")
    worker = _Worker(context, (url, cohort.raw, 11, 4, None))
    start = datetime(2027, 1, 4, 14, 30, tzinfo=ZoneInfo("UTC"))
    try:
        worker.send("+19995550100", start, ("+19995550100",))  # a task the worker cannot play
        with pytest.raises(RuntimeError, match="a call failed in a cohort worker process: TypeError"):
            worker.result()
        assert not worker.calls
        worker.process.kill()
        worker.process.join(30)
        with pytest.raises(RuntimeError, match="ended unexpectedly"):
            worker.send("+19995550100", start, ("+19995550100",))  # sending to a worker that died
        worker.calls.append(_Sent("+19995550100", start, 0, ()))  # as if a call had been in flight when it died
        with pytest.raises(RuntimeError, match="ended unexpectedly"):
            worker.result()
    finally:
        worker.stop()


def test_a_call_the_worker_has_not_started_can_be_taken_back(tmp_path):
    """The run plays here, rather than waits for, a call its worker has not started; the worker
    then skips it (were it played, this task would fail in the worker)."""
    import multiprocessing

    from ivr_cbt.simulator.cohort import _Worker

    url = f"sqlite:///{tmp_path}/worker.sqlite"
    db.upgrade_database(url)
    cohort = load_cohort(SMALL)
    worker = _Worker(multiprocessing.get_context("spawn"), (url, cohort.raw, 11, 4, None))
    start = datetime(2027, 1, 4, 14, 30, tzinfo=ZoneInfo("UTC"))
    try:
        with worker.claims.get_lock():  # the worker cannot start it meanwhile
            worker.send("+19995550100", start, ("+19995550100",))
            taken = worker.take_back()
        assert [sent.number for sent in taken] == ["+19995550100"]
        assert worker.take_back() == []  # taken once
        assert worker.result() is None  # the worker skipped it
        assert not worker.calls
        worker.send("+19995550100", start, ("+19995550100",))  # not taken back: the worker plays it
        with pytest.raises(RuntimeError, match="a call failed in a cohort worker process: TypeError"):
            worker.result()
    finally:
        worker.stop()
