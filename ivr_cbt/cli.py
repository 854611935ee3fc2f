"""Command-line interface. Each command is a thin wrapper around a service.

``manage.py`` mounts these on a FlaskGroup; ``create_app`` also adds them to ``app.cli``.
"""

from __future__ import annotations

import sys
from datetime import date, time
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import ScriptInfo, with_appcontext

from ivr_cbt import audit, config, db, exports
from ivr_cbt.callflow import FlowError, load_flow
from ivr_cbt.calls import DEFAULT_FLOW, HOST_PROMPTS
from ivr_cbt.clock import parse_instant
from ivr_cbt.dashboard.cli import users_group
from ivr_cbt.feedback.cli import COMMANDS as FEEDBACK_COMMANDS
from ivr_cbt.models import Cadence, FeedbackMode
from ivr_cbt.prompts import Catalogue, PromptError
from ivr_cbt.scheduling import attempts as attempts_service
from ivr_cbt.scheduling import lifecycle
from ivr_cbt.scheduling import slots as slot_rules


def _now():
    return current_app.extensions["clock"].now()


def _instant(value: str | None):
    if value is None:
        return _now()
    try:
        return parse_instant(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2026-11-23T15:00:00-05:00") from None


# --- init-db ------------------------------------------------------------------------------------


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create or upgrade the database schema (Alembic migrations)."""
    url = current_app.config["DATABASE_URL"]
    db.upgrade_database(url)
    backend = current_app.extensions["db_engine"].dialect.name
    click.echo(f"Database schema is up to date ({backend}).")


# --- patients ----------------------------------------------------------------------------------


@click.group("patients")
def patients_group():
    """Enrol and manage patients."""


class _Day(click.ParamType):
    name = "mon..sun"

    def convert(self, value, param, ctx):
        try:
            return value if isinstance(value, int) else slot_rules.parse_day(value)
        except slot_rules.ScheduleError as exc:
            self.fail(str(exc), param, ctx)


class _Time(click.ParamType):
    name = "HH:MM"

    def convert(self, value, param, ctx):
        try:
            return value if isinstance(value, time) else slot_rules.parse_time(value)
        except slot_rules.ScheduleError as exc:
            self.fail(str(exc), param, ctx)


class _Window(click.ParamType):
    name = "HH:MM-HH:MM"

    def convert(self, value, param, ctx):
        try:
            return value if isinstance(value, tuple) else slot_rules.parse_window(value)
        except slot_rules.ScheduleError as exc:
            self.fail(str(exc), param, ctx)


def _schedule_options(command):
    """--call-day, --call-time, --window and --cadence, shared by patients add and update."""
    for option in reversed(
        [
            click.option("--call-day", type=_Day(), help="Weekday of the weekly call (default: the start date's)."),
            click.option("--call-time", type=_Time(), help="Local time of the call (default 10:00)."),
            click.option(
                "--window",
                type=_Window(),
                help="Hours calls and retries may use (default 09:00-20:00, within 08:00-21:00).",
            ),
            click.option("--cadence", type=click.Choice([c.value for c in Cadence]), help="weekly (default) or daily."),
        ]
    ):
        command = option(command)
    return command


def _scheduling():
    return current_app.extensions["voice_settings"].scheduling


def _describe(slot) -> str:
    return f"{slot.local:%a %d %b %Y %H:%M %Z} (program week {slot.week})" if slot else "none: the program is over"


@patients_group.command("add")
@click.option("--name", required=True, help="The patient's name (shown only to their care team).")
@click.option("--phone", required=True, help="E.164 phone number, e.g. +15551234567.")
@click.option("--pin", required=True, help="4-digit PIN the patient enters on every call.")
@click.option("--timezone", "timezone", required=True, help="IANA time zone, e.g. America/New_York.")
@click.option("--language", default="en", show_default=True, help="Prompt language (a folder in prompts/).")
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Program start (week 0); default today in the patient's zone.",
)
@click.option(
    "--mode",
    type=click.Choice([m.value for m in FeedbackMode]),
    default=FeedbackMode.AUTOMATED.value,
    show_default=True,
    help="Program arm: weekly feedback played automatically, after therapist review (guided), or none.",
)
@_schedule_options
@click.option("--therapist", "therapist_email", help="Email of the therapist account the patient is assigned to.")
@with_appcontext
def patients_add_command(
    name, phone, pin, timezone, language, start, mode, call_day, call_time, window, cadence, therapist_email
):
    """Enrol a patient and plan their first call; print their patient code, then their id as the last line."""
    from ivr_cbt.dashboard.accounts import assign, therapist_by_email
    from ivr_cbt.patients import InvalidPatient, NewPatient, enrol, is_time_zone, local_date

    now = _now()
    start_date: date = start.date() if start else (local_date(timezone, now) if is_time_zone(timezone) else now.date())
    schedule = {"call_day": call_day, "call_time": call_time, "cadence": Cadence(cadence) if cadence else None}
    if window:
        schedule.update(window_start=window[0], window_end=window[1])
    new = NewPatient(
        name=name,
        phone=phone,
        pin=pin,
        timezone=timezone,
        language=language,
        start=start_date,
        feedback_mode=FeedbackMode(mode),
        **{k: v for k, v in schedule.items() if v is not None},
    )
    languages = set(current_app.extensions["voice_settings"].renderer.catalogue.languages)
    with db.session_scope(current_app) as session:
        try:
            patient = enrol(
                session,
                new,
                pepper=current_app.config["PIN_PEPPER"],
                languages=languages,
                now=now,
                actor=audit.cli_actor(),
                scheduling=_scheduling(),
            )
        except InvalidPatient as exc:
            raise click.ClickException(f"patient not added: {exc}") from None
        if therapist_email is not None:
            therapist = therapist_by_email(session, therapist_email)
            if therapist is None:
                raise click.ClickException(f"patient not added: no active therapist account {therapist_email!r}")
            assign(session, patient.id, therapist, now=now, actor=audit.cli_actor())
        patient_id, code = patient.id, patient.code
        first = attempts_service.next_planned(session.connection(), patient_id)
    click.echo(f"Enrolled. Patient code (for calls from another number): {code}. Program week 0 starts {start_date}.")
    click.echo(f"First call: {first}")
    click.echo(patient_id)


@patients_group.command("update")
@click.argument("patient_id", type=int)
@_schedule_options
@click.option("--timezone", "timezone", help="IANA time zone; future calls move, past ones stay.")
@with_appcontext
def patients_update_command(patient_id, call_day, call_time, window, cadence, timezone):
    """Change when a patient is called; future calls are recomputed."""
    from ivr_cbt.patients import is_time_zone

    changes = {"call_day": call_day, "call_time": call_time, "cadence": cadence, "timezone": timezone}
    if window:
        changes.update(window_start=window[0], window_end=window[1])
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise click.UsageError("nothing to change: give --call-day, --call-time, --window, --cadence or --timezone")
    if timezone is not None and not is_time_zone(timezone):
        raise click.ClickException(f"schedule not changed: time zone {timezone!r} is not an IANA time zone")
    with db.session_scope(current_app) as session:
        conn = session.connection()
        _require_patient(conn, patient_id)
        try:
            slot = lifecycle.change_schedule(conn, patient_id, _scheduling(), _now(), audit.cli_actor(), **changes)
        except lifecycle.LifecycleError as exc:
            raise click.ClickException(f"schedule not changed: {exc}") from None
    click.echo(f"Schedule updated. Next call: {_describe(slot)}")


@patients_group.command("pause")
@click.argument("patient_id", type=int)
@with_appcontext
def patients_pause_command(patient_id):
    """Stop calling a patient until they are resumed."""
    with db.session_scope(current_app) as session:
        conn = session.connection()
        _require_patient(conn, patient_id)
        try:
            canceled = lifecycle.pause(conn, patient_id, _now(), audit.cli_actor())
        except lifecycle.LifecycleError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Paused patient {patient_id}; {canceled} planned call(s) canceled.")


@patients_group.command("resume")
@click.argument("patient_id", type=int)
@with_appcontext
def patients_resume_command(patient_id):
    """Resume a paused or opted-out patient from their next slot."""
    with db.session_scope(current_app) as session:
        conn = session.connection()
        _require_patient(conn, patient_id)
        try:
            slot = lifecycle.resume(conn, patient_id, _scheduling(), _now(), audit.cli_actor())
        except lifecycle.LifecycleError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Resumed patient {patient_id}. Next call: {_describe(slot)}")


def _require_patient(conn, patient_id: int) -> None:
    from ivr_cbt.models import Patient

    if conn.execute(sa.select(Patient.id).where(Patient.id == patient_id)).scalar() is None:
        raise click.ClickException(f"no patient {patient_id}")


# --- simulate ------------------------------------------------------------------------------------


@click.group("simulate")
def simulate_group():
    """Run calls through the offline phone (never a real one)."""


@simulate_group.command("call")
@click.option("--patient", "patient_id", type=int, required=True)
@click.option(
    "--keys",
    required=True,
    help='What the caller does at each prompt: "1234,5,7,4200,3,2"; also silence, hangup, speech:seven[@0.4].',
)
@click.option("--now", help="Run the call as if at this ISO 8601 time (default: now).")
@click.option("--direction", type=click.Choice(["outbound", "inbound"]), default="outbound", show_default=True)
@click.option(
    "--answered-by", type=click.Choice(["human", "machine_start", "unknown"]), default="human", show_default=True
)
@with_appcontext
def simulate_call_command(patient_id, keys, now, direction, answered_by):
    """Play one call for a patient and print its transcript."""
    from ivr_cbt.simulator.callers import ScriptedCaller
    from ivr_cbt.simulator.runner import run_call

    try:
        caller = ScriptedCaller.parse(keys)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--keys") from None
    try:
        result = run_call(
            current_app, patient_id, caller, now=_instant(now), direction=direction, answered_by=answered_by
        )
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    with db.session_scope(current_app) as session:
        audit.record(
            session, _now(), audit.cli_actor(), "transcript_viewed", patient_id=patient_id, call_sid=result.call_sid
        )
    click.echo(result.text())
    click.echo(f"-- {result.call_sid}: {result.status}, {result.duration_s} s")


@simulate_group.command("cohort")
@click.option(
    "--preset",
    required=True,
    help="A preset (copes, resolve) or a cohort YAML file (cohorts/README.md).",
)
@click.option(
    "--patients", type=click.IntRange(1, 1_000_000), help="Number of virtual patients (default: the preset's)."
)
@click.option("--weeks", type=click.IntRange(1, 104), help="Simulated weeks from week 0 (default: the preset's).")
@click.option("--seed", type=int, help="Random seed (default: the preset's); the same seed gives the same database.")
@click.option(
    "--database",
    "database_url",
    help="Database URL for the cohort (default: instance/cohort-<preset>.sqlite); it must hold no patients.",
)
@click.option("--replace", is_flag=True, help="Empty the database first, if it holds only an earlier synthetic cohort.")
@click.option(
    "--workers",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Play calls in this many processes, this one included (one per core; same outcomes, row ids may differ).",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the outcome report (md, json, html and plots) into this directory.",
)
@with_appcontext
def simulate_cohort_command(preset, patients, weeks, seed, database_url, replace, workers, report_dir):
    """Run a virtual (synthetic) cohort through the real scheduler, webhooks and flows on a simulated clock."""
    from ivr_cbt.simulator import cohort as simulation
    from ivr_cbt.simulator.behaviour import CohortError, load_cohort

    try:
        cohort = load_cohort(preset)
    except CohortError as exc:
        raise click.BadParameter(str(exc), param_hint="--preset") from None
    url = database_url or f"sqlite:///{Path(current_app.instance_path) / f'cohort-{cohort.name}.sqlite'}"
    if database_url is None:
        Path(current_app.instance_path).mkdir(parents=True, exist_ok=True)
    if url == current_app.config["DATABASE_URL"]:
        raise click.ClickException("a synthetic cohort never goes into the program's own database (DATABASE_URL)")
    try:
        if replace:
            simulation.empty_synthetic(url)
        total = cohort.with_overrides(weeks=weeks)["weeks"]
        click.echo(f"Synthetic cohort {cohort.name!r} ({cohort['description']}) -> {db.safe_url(url)}", err=True)
        with (
            simulation.StopOnInterrupt() as stop,
            click.progressbar(length=total, label="Simulating weeks", show_pos=True, file=sys.stderr) as bar,
        ):
            shown = [0]

            def on_progress(progress):
                bar.label = f"Simulating weeks ({progress.line()})"
                if progress.week > shown[0]:
                    bar.update(progress.week - shown[0])
                    shown[0] = progress.week
                else:
                    bar.render_progress()

            result = simulation.simulate_cohort(
                cohort,
                url,
                patients=patients,
                weeks=weeks,
                seed=seed,
                on_progress=on_progress,
                should_stop=stop,
                workers=workers,
            )
    except simulation.CohortDatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    progress = result.progress
    click.echo(simulation.summary(result))
    if progress.stopped:
        click.echo("Stopped on request: every placed call finished; the database is consistent.")
    until = progress.simulated_until.isoformat()
    if report_dir is not None:
        for name in simulation.write_report(result, report_dir):
            click.echo(f"Wrote {name}", err=True)
    click.echo(f"Outcome report: DATABASE_URL='{db.safe_url(url)}' python manage.py report outcomes --as-of {until}")
    if progress.stopped:
        sys.exit(130)


# --- export ----------------------------------------------------------------------------------------


@click.group("export")
def export_group():
    """Export patient data (every export is audited)."""


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"Wrote {out}", err=True)


@export_group.command("checkins")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.option("--patient", "patient_id", type=int, help="Only this patient.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of standard output."
)
@with_appcontext
def export_checkins_command(fmt, patient_id, out):
    """Export check-ins with each item's answer (null when skipped)."""
    items = current_app.extensions["voice_settings"].flows[DEFAULT_FLOW].item_keys()
    with db.session_scope(current_app) as session:
        rows = exports.checkins(session, items, patient_id)
        audit.record(
            session, _now(), audit.cli_actor(), "export_checkins", patient_id=patient_id, format=fmt, rows=len(rows)
        )
    _emit(exports.to_json(rows) if fmt == "json" else exports.checkins_to_csv(rows, items), out)


@export_group.command("alerts")
@click.option("--format", "fmt", type=click.Choice(["json"]), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def export_alerts_command(fmt, out):
    """Export open and acknowledged alerts."""
    with db.session_scope(current_app) as session:
        rows = exports.alerts(session)
        audit.record(session, _now(), audit.cli_actor(), "export_alerts", format=fmt, rows=len(rows))
    _emit(exports.to_json(rows), out)


@export_group.command("attempts")
@click.option("--format", "fmt", type=click.Choice(["json"]), default="json", show_default=True)
@click.option("--patient", "patient_id", type=int, help="Only this patient.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def export_attempts_command(fmt, patient_id, out):
    """Export scheduled call attempts: slot, due time, attempt number, state, call sid, outcome."""
    with db.session_scope(current_app) as session:
        rows = exports.attempts(session, patient_id)
        audit.record(session, _now(), audit.cli_actor(), "export_attempts", patient_id=patient_id, rows=len(rows))
    _emit(exports.to_json(rows), out)


@export_group.command("feedback")
@click.option("--format", "fmt", type=click.Choice(["json"]), default="json", show_default=True)
@click.option("--patient", "patient_id", type=int, help="Only this patient.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def export_feedback_command(fmt, patient_id, out):
    """Export weekly feedback messages: patient, week, mode, status, segments, delivered_at."""
    with db.session_scope(current_app) as session:
        rows = exports.feedback(session, patient_id)
        audit.record(session, _now(), audit.cli_actor(), "export_feedback", patient_id=patient_id, rows=len(rows))
    _emit(exports.to_json(rows), out)


# --- scheduler -------------------------------------------------------------------------------------------


@click.group("scheduler", invoke_without_command=True)
@click.pass_context
def scheduler_group(ctx):
    """Run the scheduler process (APScheduler: a dispatch tick every DISPATCH_INTERVAL_SECONDS)."""
    if ctx.invoked_subcommand is None:
        from ivr_cbt.scheduling import process

        process.run_forever(ctx.ensure_object(ScriptInfo).load_app())


@scheduler_group.command("run-once")
@click.option("--now", help="Run the tick as if at this ISO 8601 time (default: now).")
@with_appcontext
def scheduler_run_once_command(now):
    """Run one dispatch tick and print what it did."""
    from ivr_cbt.scheduling import process

    report = process.tick(current_app._get_current_object(), _instant(now))
    click.echo(f"Tick done: {report}")


@scheduler_group.command("reconcile")
@click.option("--now", help="As if at this ISO 8601 time (default: now).")
@with_appcontext
def scheduler_reconcile_command(now):
    """Plan the next call of every active patient who has none planned."""
    from ivr_cbt.scheduling import process

    planned = process.reconcile(current_app._get_current_object(), _instant(now))
    click.echo(f"Planned the next call of {planned} patient(s).")


# --- flows ---------------------------------------------------------------------------------------------


@click.group("flows")
def flows_group():
    """Check call flows."""


@flows_group.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def flows_validate_command(paths):
    """Check flows (default: every flows/*.yaml) and their prompts in every language."""
    settings = config.from_environment(config.PROJECT_ROOT / "instance")
    paths = list(paths) or sorted(Path(settings["FLOWS_DIR"]).glob("*.yaml"))
    problems: list[str] = []
    try:
        catalogue = Catalogue.load(Path(settings["PROMPTS_DIR"]))
    except (PromptError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    problems += [f"prompts/{lang}: missing host prompt {pid!r}" for lang, pid in catalogue.missing(set(HOST_PROMPTS))]
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            flow = load_flow(path)
        except FlowError as exc:
            problems += [str(p) for p in exc.problems]
            continue
        if flow.id in seen:
            problems.append(f"{path}: flow id {flow.id!r} is also used by {seen[flow.id]}")
        seen[flow.id] = path
        missing = catalogue.missing(flow.prompt_ids())
        problems += [f"{path}: prompt {pid!r} is missing in prompts/{lang}/prompts.yaml" for lang, pid in missing]
        if not missing:
            languages = ", ".join(sorted(catalogue.languages))
            click.echo(f"ok  {path}: {len(flow.nodes)} nodes, {len(flow.items)} items, prompts in {languages}")
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found")


# --- report ----------------------------------------------------------------------------------------------


@click.group("report")
def report_group():
    """Aggregate reports over patient data (every run is audited)."""


@report_group.command("outcomes")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default="md", show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write outcomes.<format> and its plots into this directory instead of printing the report.",
)
@click.option("--months", type=click.IntRange(1, 24), default=3, show_default=True, help="Primary timepoint.")
@click.option(
    "--window", type=click.IntRange(0, 8), default=2, show_default=True, help="Weeks either side of the timepoint."
)
@click.option("--margin", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option(
    "--reference-arm",
    type=click.Choice([m.value for m in FeedbackMode]),
    help="The arm others are compared with (default: guided if enrolled, else the first arm).",
)
@click.option("--plots", "plot_format", type=click.Choice(["svg", "png", "none"]), default="svg", show_default=True)
@click.option("--synthetic", is_flag=True, help="Label the report synthetic even if the database carries no mark.")
@click.option("--as-of", "as_of", help="Count program weeks reached as of this ISO 8601 time (default: now).")
@with_appcontext
def report_outcomes_command(fmt, out, months, window, margin, reference_arm, plot_format, synthetic, as_of):
    """Trial-style outcome report: pain change per arm, non-inferiority, responders, adherence."""
    from ivr_cbt.report import Options, ReportError, outcome_report
    from ivr_cbt.report.render import render

    options = Options(months=months, window=window, margin=margin, reference_arm=reference_arm, synthetic=synthetic)
    items = current_app.extensions["voice_settings"].flows[DEFAULT_FLOW].item_keys()
    try:
        report = outcome_report(
            current_app.extensions["db_engine"],
            options,
            now=_now(),
            actor=audit.cli_actor(),
            items=items,
            as_of=_instant(as_of),
        )
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    files = render(report, fmt, plot_format, with_files=out is not None)
    if out is None:
        sys.stdout.write(files[f"outcomes.{fmt}"].decode("utf-8"))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (out / name).write_bytes(content)
        click.echo(f"Wrote {out / name}", err=True)


# --- serve, demo -----------------------------------------------------------------------------------------


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--with-scheduler", is_flag=True, help="Development: also run the scheduler's jobs in this process.")
@with_appcontext
def serve_command(host, port, with_scheduler):
    """Run the web app with the development server (production: gunicorn, see README)."""
    from werkzeug.serving import run_simple

    if with_scheduler:
        from ivr_cbt.scheduling import process

        process.start_in_background(current_app._get_current_object())
    # Flask's app.run() refuses to run under its own CLI; the server it wraps does not.
    click.echo(f"Serving on http://{host}:{port} (Ctrl-C to stop)")
    run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False)


@click.command("demo")
@with_appcontext
def demo_command():
    """Enrol three demo patients, play their calls and print what happened."""
    import logging

    from ivr_cbt.demo import run_demo

    logging.getLogger("ivr_cbt").setLevel(logging.ERROR)  # the demo prints its own account of what happens
    run_demo(current_app, click.echo)


COMMANDS = [
    init_db_command,
    scheduler_group,
    patients_group,
    users_group,
    simulate_group,
    export_group,
    flows_group,
    report_group,
    serve_command,
    demo_command,
    *FEEDBACK_COMMANDS,
]


def init_app(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
