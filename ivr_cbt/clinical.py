"""Clinical thresholds every part of the product judges by: triage, feedback messages, reports. Pure.

Sources (docs/clinical.md): about 2 points or 30% on the 0-10 pain scale marks a
clinically important change (Farrar 2001, IMMPACT); a rise of 2 points over the baseline for
two weeks running sends the patient to the top of the therapist's list (PEERS.md).
"""

from __future__ import annotations

PAIN, SLEEP, STEPS, PRACTICE, SAFETY = "pain_avg", "sleep_quality", "steps_avg", "practice_days", "safety"
SAFETY_YES = 1
PAIN_RISE = 2  # points above the week-0 baseline that count as "pain up"
IMPORTANT_POINTS = 2  # a change this large (0-10 scale) is clinically important
IMPORTANT_FRACTION = 0.3  # ... or this share of the baseline


def pain_up(baseline: float | None, value: float | None) -> bool:
    """Pain at least PAIN_RISE points above the baseline."""
    return baseline is not None and value is not None and value - baseline >= PAIN_RISE


def pain_up_two_weeks(baseline: float | None, before: float | None, last: float | None) -> bool:
    """Pain up on two consecutive weeks (``before`` is the week just before ``last``)."""
    return pain_up(baseline, before) and pain_up(baseline, last)


def important_improvement(baseline: float | None, value: float | None) -> bool:
    """Pain down by at least 2 points or 30% of the baseline."""
    if baseline is None or value is None or value >= baseline:
        return False
    drop = baseline - value
    return drop >= IMPORTANT_POINTS or drop >= IMPORTANT_FRACTION * baseline
