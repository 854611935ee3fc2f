"""PIN hashing.

A 4-digit PIN has only 10,000 values, so no slow password hash can protect a stolen table:
an attacker tries them all in minutes. What protects it is a secret the table does not hold.
PINs are therefore stored as HMAC-SHA256(pepper, salt || pin) with a per-patient random
salt, where the pepper (``PIN_PEPPER``) lives only in the environment. Verifying costs
microseconds, so the PIN check never slows a webhook. Online guessing is limited by the call
flow (three tries per call) and by the lockout in ``ivr_cbt.checkins``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCHEME = "hmac-sha256"


def _key(pepper: str) -> bytes:
    return hashlib.sha256(b"ivr-cbt/pin/v1\x00" + pepper.encode()).digest()


def hash_pin(pin: str, pepper: str, salt: str | None = None) -> str:
    """Hash ``pin`` with a fresh random salt (or ``salt``: only a simulation that must repeat exactly passes one)."""
    salt = salt or secrets.token_hex(16)
    digest = hmac.new(_key(pepper), f"{salt}:{pin}".encode(), hashlib.sha256).hexdigest()
    return f"{SCHEME}${salt}${digest}"


def verify_pin(pin: str, stored: str, pepper: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != SCHEME:
        return False
    expected = hmac.new(_key(pepper), f"{salt}:{pin}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, digest)
