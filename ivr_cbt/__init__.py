"""ivr-cbt: COPES-style telephone self-management for chronic back pain."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask

from ivr_cbt import config


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: config -> logging -> db -> clock -> telephony -> voice -> feedback -> dashboard -> cli."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(config.from_environment(Path(app.instance_path)))
    if test_config:
        app.config.from_mapping(test_config)
    config.check(app.config)
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # Twilio's webhooks are a few hundred bytes
    _configure_logging(app)

    from ivr_cbt import cli, clock, dashboard, db, feedback, sessions, telephony, voice, voice_settings

    app.session_interface = sessions.SessionInterface()
    db.init_app(app)
    app.extensions["clock"] = app.config.get("CLOCK") or clock.SystemClock()
    telephony.init_app(app)
    voice_settings.init_app(app)
    voice.init_app(app)
    feedback.init_app(app)
    dashboard.init_app(app)
    cli.init_app(app)
    return app


def _configure_logging(app: Flask) -> None:
    level = getattr(logging, str(app.config["LOG_LEVEL"]).upper(), logging.INFO)
    app.logger.setLevel(level)
    logging.getLogger("ivr_cbt").setLevel(level)
    # twilio-python logs REST URLs and parameters (phone numbers) at INFO.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
