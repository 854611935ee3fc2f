"""Configuration: working defaults, values from the environment, overrides from tests.

Every variable read here is documented in README.md ("Configuration").
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEV_SECRET = "dev-only-secret-change-me"
DEV_AUTH_TOKEN = "offline-phone-auth-token"
DEV_ACCOUNT_SID = "AC" + "0" * 32

TELEPHONY_BACKENDS = ("mock", "record", "twilio")
APP_ENVS = ("development", "production")
FEEDBACK_DELIVERIES = ("checkin", "call")


def _default_database_url(instance_path: Path) -> str:
    return f"sqlite:///{instance_path / 'ivr_cbt.sqlite'}"


def from_environment(instance_path: Path, env: dict[str, str] | None = None) -> dict:
    """Return the app configuration read from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    backend = env.get("TELEPHONY_BACKEND", "mock").strip().lower()
    secret = env.get("SECRET_KEY", DEV_SECRET)
    return {
        "DATABASE_URL": env.get("DATABASE_URL") or _default_database_url(instance_path),
        "TELEPHONY_BACKEND": backend,
        "TWILIO_ACCOUNT_SID": env.get("TWILIO_ACCOUNT_SID", DEV_ACCOUNT_SID),
        "TWILIO_AUTH_TOKEN": env.get("TWILIO_AUTH_TOKEN", DEV_AUTH_TOKEN),
        "TWILIO_FROM_NUMBER": env.get("TWILIO_FROM_NUMBER", "+15005550006"),
        "TWILIO_HTTP_TIMEOUT": float(env.get("TWILIO_HTTP_TIMEOUT", "10")),
        "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        "SECRET_KEY": secret,
        "PIN_PEPPER": env.get("PIN_PEPPER", secret),
        "CRISIS_LINE": env.get("CRISIS_LINE", "988"),
        "ALERT_NOTIFY_NUMBER": env.get("ALERT_NOTIFY_NUMBER", ""),
        "CALLBACK_NUMBER": env.get("CALLBACK_NUMBER", ""),
        "DEFAULT_LANGUAGE": env.get("DEFAULT_LANGUAGE", "en"),
        "FLOWS_DIR": env.get("FLOWS_DIR", str(PROJECT_ROOT / "flows")),
        "PROMPTS_DIR": env.get("PROMPTS_DIR", str(PROJECT_ROOT / "prompts")),
        "PROGRAM_FILE": env.get("PROGRAM_FILE", str(PROJECT_ROOT / "program" / "modules.yaml")),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        # Scheduling (ivr_cbt/scheduling/)
        "DISPATCH_INTERVAL_SECONDS": int(env.get("DISPATCH_INTERVAL_SECONDS", "30")),
        "DISPATCH_CPS": float(env.get("DISPATCH_CPS", "1")),
        "MAX_CONCURRENT_CALLS": int(env.get("MAX_CONCURRENT_CALLS", "20")),
        "DISPATCH_BATCH": int(env.get("DISPATCH_BATCH", "500")),
        "RETRY_LADDER": env.get("RETRY_LADDER", "30m,2h,next-day"),
        "PROGRAM_WEEKS": int(env.get("PROGRAM_WEEKS", "11")),
        "FOLLOW_UP_WEEKS": env.get("FOLLOW_UP_WEEKS", "13,26,39"),
        "ATTEMPT_LEASE_SECONDS": int(env.get("ATTEMPT_LEASE_SECONDS", "120")),
        "UNCONFIRMED_AFTER_MINUTES": int(env.get("UNCONFIRMED_AFTER_MINUTES", "15")),
        "LOST_AFTER_MINUTES": int(env.get("LOST_AFTER_MINUTES", "120")),
        "FEEDBACK_INTERVAL_MINUTES": int(env.get("FEEDBACK_INTERVAL_MINUTES", "15")),
        # Where a ready message plays: the next check-in call (after the safety question), or also
        # its own short outbound call as soon as the window allows.
        "FEEDBACK_DELIVERY": env.get("FEEDBACK_DELIVERY", "checkin").strip().lower(),
        "MOCK_CALLEES_FILE": env.get("MOCK_CALLEES_FILE", ""),
        "MOCK_RECORD_FILE": env.get("MOCK_RECORD_FILE", ""),
        # Development relaxes the dashboard's cookie security and enables the practice phone;
        # a deployment that places real calls is production unless told otherwise.
        "APP_ENV": env.get("APP_ENV", "production" if backend == "twilio" else "development").strip().lower(),
        "TRUSTED_PROXY_COUNT": int(env.get("TRUSTED_PROXY_COUNT", "0")),
    }


def check(config: dict) -> None:
    """Refuse settings that would be unsafe or cannot work."""
    backend = config["TELEPHONY_BACKEND"]
    if backend not in TELEPHONY_BACKENDS:
        raise ValueError(f"TELEPHONY_BACKEND must be one of {', '.join(TELEPHONY_BACKENDS)}, not {backend!r}")
    if config["FEEDBACK_DELIVERY"] not in FEEDBACK_DELIVERIES:
        raise ValueError(f"FEEDBACK_DELIVERY must be checkin or call, not {config['FEEDBACK_DELIVERY']!r}")
    if config["APP_ENV"] not in APP_ENVS:
        raise ValueError(f"APP_ENV must be one of {', '.join(APP_ENVS)}, not {config['APP_ENV']!r}")
    if config["APP_ENV"] == "production" and config["SECRET_KEY"] == DEV_SECRET:
        raise ValueError("APP_ENV=production needs a real SECRET_KEY (it signs the dashboard's session cookies)")
    if backend == "twilio":
        missing = [
            name
            for name, dev_value in (
                ("SECRET_KEY", DEV_SECRET),
                ("TWILIO_AUTH_TOKEN", DEV_AUTH_TOKEN),
                ("TWILIO_ACCOUNT_SID", DEV_ACCOUNT_SID),
            )
            if config[name] == dev_value
        ]
        if missing:
            raise ValueError("TELEPHONY_BACKEND=twilio needs real values for: " + ", ".join(missing))
        if not config["PUBLIC_BASE_URL"].startswith("https://"):
            raise ValueError("TELEPHONY_BACKEND=twilio needs an https:// PUBLIC_BASE_URL")
