"""Load flows and prompts once, check them against each other, and hand them to the webhooks."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from ivr_cbt.callflow import load_flows
from ivr_cbt.calls import HOST_PROMPTS, VoiceSettings
from ivr_cbt.feedback import rules
from ivr_cbt.feedback.program import load_program
from ivr_cbt.prompts import Catalogue, PromptError
from ivr_cbt.scheduling.attempts import SchedulingSettings
from ivr_cbt.twiml import Renderer


def build(app_config) -> VoiceSettings:
    flows = load_flows(Path(app_config["FLOWS_DIR"]))
    catalogue = Catalogue.load(Path(app_config["PROMPTS_DIR"]))
    program = load_program(Path(app_config["PROGRAM_FILE"]))
    needed = set(HOST_PROMPTS).union(*(flow.prompt_ids() for flow in flows.values()))
    needed |= program.prompt_ids() | rules.prompt_ids()
    missing = catalogue.missing(needed)
    if missing:
        raise PromptError("missing prompts: " + ", ".join(f"{lang}/{pid}" for lang, pid in missing))
    if app_config["DEFAULT_LANGUAGE"] not in catalogue.languages:
        raise PromptError(f"DEFAULT_LANGUAGE {app_config['DEFAULT_LANGUAGE']!r} has no prompts")
    return VoiceSettings(
        flows=flows,
        renderer=Renderer(catalogue, app_config["PUBLIC_BASE_URL"]),
        pepper=app_config["PIN_PEPPER"],
        default_language=app_config["DEFAULT_LANGUAGE"],
        callback_number=app_config["CALLBACK_NUMBER"] or app_config["TWILIO_FROM_NUMBER"],
        flow_settings={"crisis_line": app_config["CRISIS_LINE"]},
        scheduling=SchedulingSettings.from_config(app_config),
        program=program,
    )


def init_app(app: Flask) -> None:
    app.extensions["voice_settings"] = build(app.config)
