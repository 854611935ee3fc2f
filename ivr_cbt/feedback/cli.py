"""`manage.py feedback ...` and `manage.py prompts ...`: thin wrappers around the feedback services."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext

from ivr_cbt import audit
from ivr_cbt.clock import parse_instant
from ivr_cbt.feedback import jobs, review
from ivr_cbt.feedback.segments import estimated_seconds, script


def _now(value: str | None = None):
    if value is None:
        return current_app.extensions["clock"].now()
    try:
        return parse_instant(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2026-11-23T15:00:00-05:00") from None


def _text_of(language: str):
    catalogue = current_app.extensions["voice_settings"].renderer.catalogue
    return lambda prompt_id: catalogue.text(prompt_id, language)


@click.group("feedback")
def feedback_group():
    """Weekly feedback messages: preview, generate, approve."""


@feedback_group.command("preview")
@click.option("--patient", "patient_id", type=int, required=True)
@click.option("--week", type=int, help="Program week (default: the latest week that has closed).")
@click.option("--now", help="As if at this ISO 8601 time (default: now).")
@with_appcontext
def feedback_preview_command(patient_id, week, now):
    """Print the message the rules would make for a patient's week: its script and segment list."""
    settings = current_app.extensions["voice_settings"]
    when = _now(now)
    with current_app.extensions["db_engine"].connect() as conn:
        try:
            result = jobs.preview(conn, settings.program, patient_id, week, when)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
        audit.record(conn, when, audit.cli_actor(), "feedback_previewed", patient_id=patient_id, week=result.week)
        conn.commit()
    text_of = _text_of(result.language)
    click.echo(f"Patient {patient_id}, program week {result.week} ({result.language})")
    click.echo(f"Flags: {', '.join(result.summary.flags) or 'none'}")
    click.echo("")
    click.echo(script(result.segments, text_of))
    click.echo("")
    click.echo(f"About {estimated_seconds(result.segments, text_of):.0f} s spoken. Segments:")
    for segment in result.segments:
        click.echo("  " + json.dumps(segment, ensure_ascii=False))


@feedback_group.command("generate")
@click.option("--now", help="As if at this ISO 8601 time (default: now).")
@with_appcontext
def feedback_generate_command(now):
    """Run the weekly generation job once (the scheduler runs it every FEEDBACK_INTERVAL_MINUTES)."""
    from ivr_cbt.feedback import generate

    report = generate(current_app._get_current_object(), _now(now))
    click.echo(f"Feedback: {report}")


@feedback_group.command("approve")
@click.argument("message_id", type=int)
@with_appcontext
def feedback_approve_command(message_id):
    """Approve a message waiting for review (guided arm) as it stands."""
    with current_app.extensions["db_engine"].connect() as conn:
        try:
            review.approve(conn, message_id, actor=audit.cli_actor(), now=_now())
        except (LookupError, review.ReviewError) as exc:
            raise click.ClickException(str(exc)) from None
        conn.commit()
    click.echo(f"Message {message_id} approved: it plays on the patient's next call.")


@click.group("prompts")
def prompts_group():
    """Prompt texts and audio clips."""


@prompts_group.command("render-audio")
@click.option("--language", "languages", multiple=True, help="Only this language (repeatable; default: all).")
@click.option("--prompt", "prompt_ids", multiple=True, help="Only this prompt id (repeatable; default: all).")
@click.option("--no-numbers", is_flag=True, help="Do not render the number-word clips.")
@with_appcontext
def prompts_render_audio_command(languages, prompt_ids, no_numbers):
    """Render every prompt without a recording to prompts/<lang>/audio/<id>.wav with espeak-ng."""
    from ivr_cbt.audio import AudioError, render_language

    catalogue = current_app.extensions["voice_settings"].renderer.catalogue
    unknown = sorted(set(languages) - set(catalogue.languages))
    if unknown:
        raise click.ClickException(f"unknown language(s): {', '.join(unknown)}")
    for language in languages or sorted(catalogue.languages):
        missing = sorted(set(prompt_ids) - catalogue.ids(language))
        if missing:
            raise click.ClickException(f"no prompt(s) {', '.join(missing)} in {language}")
        try:
            report = render_language(catalogue, language, only=prompt_ids or None, numbers=not no_numbers)
        except AudioError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(
            f"{language}: rendered {len(report.rendered)}, up to date {report.kept}, "
            f"recordings left alone {report.recorded} (in {catalogue.directory / language / 'audio'})"
        )
    click.echo("Restart the app (or the workers) to play the new clips.")


COMMANDS = [feedback_group, prompts_group]
