"""Virtual patients: who they are, when they pick up, and what they answer, from a cohort file.

Pure and seeded: nothing here reads a clock or a database. Every random draw comes from a
``random.Random`` seeded with a string naming the cohort seed, the patient and what is drawn
(``"7/p12/week/3"``), so a patient's answers never depend on the order in which other patients'
calls happen, and the same seed gives the same cohort. The model and its parameters are
described in cohorts/README.md; presets live in cohorts/*.yaml.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema

from ivr_cbt.callflow.yamlio import load

COHORTS_DIR = Path(__file__).resolve().parents[2] / "cohorts"
SCHEMA_FILE = COHORTS_DIR / "cohort.schema.json"
PRESETS = ("copes", "resolve")
ARMS = ("monitoring", "automated", "guided")
# Keys whose value replaces the base's whole value instead of merging into it key by key.
_REPLACE = {"arms", "time_zones", "languages", "by_hour"}
# 555-0100 to 555-0199 is the fictional block of every North American area code: 100 patients
# per area code, area codes 201 upwards.
_FICTIONAL = "+1{area}5550{line:03d}"
NEVER = 10_000  # a dropout week no program reaches


class CohortError(ValueError):
    """A cohort file that cannot be used; the message says where and why."""


# --- the cohort file -------------------------------------------------------------------------


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in _REPLACE:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read(name_or_path: str, seen: tuple[str, ...] = ()) -> dict:
    path = COHORTS_DIR / f"{name_or_path}.yaml" if name_or_path in PRESETS else Path(name_or_path)
    if not path.is_file():
        raise CohortError(f"no cohort preset or file {name_or_path!r} (presets: {', '.join(PRESETS)})")
    if str(path.resolve()) in seen:
        raise CohortError(f"{path}: 'base' goes round in a circle")
    try:
        raw, _ = load(path)
    except Exception as exc:  # a YAML syntax error, with its line
        raise CohortError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise CohortError(f"{path}: a cohort file is a mapping of settings")
    if isinstance(raw.get("start"), date):  # YAML reads an unquoted 2027-01-04 as a date
        raw["start"] = raw["start"].isoformat()
    if "base" in raw:
        base = str(raw.pop("base"))
        if base not in PRESETS and not Path(base).is_absolute():
            base = str(path.parent / base)  # a file's base is found beside it
        raw = _merge(_read(base, (*seen, str(path.resolve()))), raw)
    return raw


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        json.loads(SCHEMA_FILE.read_text(encoding="utf-8")), format_checker=jsonschema.FormatChecker()
    )


def load_cohort(name_or_path: str) -> Cohort:
    """A preset by name (``copes``, ``resolve``) or a YAML file; raise CohortError naming each problem."""
    raw = _read(name_or_path)
    raw.pop("base", None)
    errors = sorted(_validator().iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        problems = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors)
        raise CohortError(f"{name_or_path}: {problems}")
    for name in raw["population"]["time_zones"]:
        try:
            ZoneInfo(name)
        except Exception as exc:
            raise CohortError(f"{name_or_path}: population/time_zones: {name!r} is not an IANA time zone") from exc
    low, high = raw["calls"]["speech_confidence"]
    if low > high:
        raise CohortError(f"{name_or_path}: calls/speech_confidence: {low} is above {high}")
    low, high = raw["therapist"]["review_delay_hours"]
    if low > high:
        raise CohortError(f"{name_or_path}: therapist/review_delay_hours: {low} is above {high}")
    return Cohort(raw)


@dataclass(frozen=True)
class Cohort:
    """A validated cohort file (the raw mapping, and what is derived from it)."""

    raw: dict

    def __getitem__(self, key):
        return self.raw[key]

    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def start(self) -> date:
        return date.fromisoformat(str(self.raw["start"]))

    def with_overrides(self, **changes) -> Cohort:
        """The same cohort with top-level settings replaced (None leaves a setting as it is)."""
        return Cohort({**self.raw, **{k: v for k, v in changes.items() if v is not None}})

    def arms(self) -> list[str]:
        return [arm for arm in ARMS if arm in self.raw["arms"]]

    def true_change(self, arm: str, week: int) -> float:
        """The expected change in average pain from baseline at ``week`` for ``arm`` (the model's truth)."""
        return self.raw["arms"][arm]["effect"] * ramp(self.raw, week)

    def allocation(self, patients: int, seed: int) -> list[str]:
        """Each patient's arm: permuted blocks with the arms' shares (as a trial randomises)."""
        shares = {arm: self.raw["arms"][arm]["share"] for arm in self.arms()}
        unit = min(shares.values())
        block = [arm for arm in self.arms() for _ in range(max(1, round(shares[arm] / unit)))]
        if sum(shares.values()) > 20 * len(shares):  # shares given as counts (COPES: 62 and 63)
            block = [arm for arm in self.arms() for _ in range(round(shares[arm]))]
        rng = random.Random(f"{seed}/allocation")
        arms: list[str] = []
        while len(arms) < patients:
            chunk = list(block)
            rng.shuffle(chunk)
            arms.extend(chunk)
        return arms[:patients]


def ramp(raw: dict, week: int) -> float:
    """How much of a patient's eventual change has happened by ``week`` (0 at baseline, 1 when full)."""
    pain = raw["pain"]
    reached = min(1.0, week / pain["ramp_weeks"])
    program_end = raw.get("program_weeks", 11) - 1
    months_after = max(0.0, (week - program_end) * 12 / 52)
    return max(0.0, reached * (1 - pain.get("relapse_per_month", 0.0) * months_after))


def _weighted(rng: random.Random, weights: dict) -> str:
    names = sorted(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def _beta(rng: random.Random, mean: float, concentration: float) -> float:
    if mean <= 0 or mean >= 1:
        return mean
    return rng.betavariate(mean * concentration, (1 - mean) * concentration)


def _interpolate(points: dict, hour: float) -> float:
    """Piecewise-linear in the hour of day, flat beyond the first and last points."""
    hours = sorted(int(h) for h in points)
    values = [points[str(h)] if str(h) in points else points[h] for h in hours]
    if hour <= hours[0]:
        return values[0]
    if hour >= hours[-1]:
        return values[-1]
    i = bisect.bisect_right(hours, hour)
    h0, h1 = hours[i - 1], hours[i]
    return values[i - 1] + (values[i] - values[i - 1]) * (hour - h0) / (h1 - h0)


# --- a virtual patient -----------------------------------------------------------------------


@dataclass
class Week:
    """What a patient will answer about one program week (drawn once; a resumed call says the same)."""

    pain: int
    sleep: int
    steps: int
    practice: int
    safety_yes: bool


@dataclass
class VirtualPatient:
    index: int
    seed: int
    cohort: Cohort
    arm: str
    name: str
    phone: str
    pin: str
    timezone: str
    language: str
    call_day: int
    call_time: time
    baseline_pain: float
    change: float  # this patient's eventual change in average pain (the model's truth for them)
    baseline_sleep: float
    baseline_steps: float
    practice_propensity: float
    answer_propensity: float
    dropout_week: int  # from this program week on, the patient no longer picks up
    weeks: dict[int, Week] = field(default_factory=dict)
    heard_feedback: set[int] = field(default_factory=set)  # program weeks in which a message was heard
    calls: int = 0
    opted_out: bool = False

    @classmethod
    def draw(cls, cohort: Cohort, index: int, arm: str, seed: int) -> VirtualPatient:
        raw = cohort.raw
        rng = random.Random(f"{seed}/p{index}/traits")
        population, pain = raw["population"], raw["pain"]
        mean_practice = raw["practice"]["mean"]
        propensity = _beta(rng, mean_practice, raw["practice"]["concentration"])
        # Practice modulates the effect around the arm's expected change, so the arm's mean change
        # stays the arm's ``effect`` (E[propensity] = mean): the truth the report must recover.
        modulation = 1 + pain["practice_weight"] * (
            (propensity - mean_practice) / mean_practice if mean_practice else 0
        )
        hazard = raw["adherence"]["dropout_per_week"]
        if hazard <= 0:
            dropout = NEVER
        elif hazard >= 1:
            dropout = 0
        else:  # geometric: weeks until the patient stops picking up for good
            dropout = min(NEVER, int(math.log(1 - rng.random()) / math.log(1 - hazard)))
        concentration = raw["answering"].get("propensity_concentration")
        return cls(
            index=index,
            seed=seed,
            cohort=cohort,
            arm=arm,
            name=f"Synthetic Patient {index + 1:05d}",
            phone=_FICTIONAL.format(area=201 + index // 100, line=100 + index % 100),
            pin=f"{rng.randrange(10_000):04d}",
            timezone=_weighted(rng, population["time_zones"]),
            language=_weighted(rng, population["languages"]),
            call_day=rng.choice(population["call_days"]),
            call_time=time.fromisoformat(rng.choice(population["call_times"])),
            baseline_pain=rng.gauss(pain["baseline"]["mean"], pain["baseline"]["sd"]),
            change=raw["arms"][arm]["effect"] * modulation + rng.gauss(0, pain["effect_sd"]),
            baseline_sleep=rng.gauss(raw["sleep"]["baseline"]["mean"], raw["sleep"]["baseline"]["sd"]),
            baseline_steps=raw["steps"]["baseline_median"] * math.exp(rng.gauss(0, raw["steps"]["baseline_sd_log"])),
            practice_propensity=propensity,
            # Some patients pick up more than others: a factor with mean 1 (2 x Beta(k, k)).
            answer_propensity=2 * rng.betavariate(concentration, concentration) if concentration else 1.0,
            dropout_week=dropout,
        )

    # --- picking up ---------------------------------------------------------------------------

    def local(self, now: datetime) -> datetime:
        return now.astimezone(ZoneInfo(self.timezone))

    def program_week(self, now: datetime) -> int:
        return max(0, (self.local(now).date() - self.cohort.start).days // 7)

    def answer_probability(self, now: datetime) -> float:
        if self.opted_out:
            return 0.0
        week = self.program_week(now)
        if week >= self.dropout_week:
            return 0.0
        answering = self.cohort["answering"]
        local = self.local(now)
        by_hour = _interpolate(answering["by_hour"], local.hour + local.minute / 60)
        decay = self.cohort["adherence"]["weekly_decay"] ** week
        return min(1.0, by_hour * answering["by_weekday"][local.weekday()] * decay * self.answer_propensity)

    def pickup(self, now: datetime) -> str:
        """What happens when the phone rings now: answer, machine, busy or no-answer."""
        self.calls += 1
        rng = random.Random(f"{self.seed}/p{self.index}/ring/{self.calls}")
        if rng.random() < self.answer_probability(now):
            return "answer"
        unanswered = self.cohort["answering"]["unanswered"]
        draw = rng.random()
        if draw < unanswered["machine"]:
            return "machine"
        if draw < unanswered["machine"] + unanswered["busy"]:
            return "busy"
        return "no-answer"

    def call_rng(self) -> random.Random:
        """The draws of the call in progress (wrong keys, silences, speech, hanging up)."""
        return random.Random(f"{self.seed}/p{self.index}/call/{self.calls}")

    # --- what they report ---------------------------------------------------------------------

    def week(self, week: int) -> Week:
        """This patient's answers about program week ``week`` (the same on every call of the week)."""
        if week not in self.weeks:
            self.weeks[week] = self._draw_week(week)
        return self.weeks[week]

    def _draw_week(self, week: int) -> Week:
        raw = self.cohort.raw
        rng = random.Random(f"{self.seed}/p{self.index}/week/{week}")
        relief = self.change * ramp(raw, week)
        pain = _clamp(round(self.baseline_pain + relief + rng.gauss(0, raw["pain"]["weekly_noise_sd"])), 0, 10)
        sleep_mean = self.baseline_sleep - raw["sleep"]["per_pain_point"] * relief
        sleep = _clamp(round(sleep_mean + rng.gauss(0, raw["sleep"]["weekly_noise_sd"])), 0, 10)
        return Week(
            pain=pain,
            sleep=sleep,
            steps=self._steps(week, rng),
            practice=self._practice(week, rng),
            safety_yes=rng.random() < raw["calls"]["safety_yes"],
        )

    def _steps(self, week: int, rng: random.Random) -> int:
        """Steps drift around the patient's level and move toward the goal once a message named one:
        the goal is last week's average x 1.10 (the program's rule from week 3)."""
        steps = self.cohort["steps"]
        previous = self.week(week - 1) if week > 0 else None  # weeks nobody asked about happen too
        level = previous.steps if previous else self.baseline_steps
        if previous and self.arm != "monitoring" and (week - 1) in self.heard_feedback and week >= 4:
            level += steps["goal_response"] * (previous.steps * 1.10 - level)
        return _clamp(round(level * math.exp(rng.gauss(0, steps["weekly_sd_log"])) / 10) * 10, 0, 99_999)

    def _practice(self, week: int, rng: random.Random) -> int:
        practice = self.cohort["practice"]
        if week == 0:
            chance = 0.1  # before the first skill: the odd stretch or walk
        else:
            chance = self.practice_propensity * practice["weekly_decay"] ** week
            if (week - 1) in self.heard_feedback:
                chance += practice["feedback_boost"]
        chance = min(1.0, max(0.0, chance))
        return sum(rng.random() < chance for _ in range(7))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def draw_cohort(cohort: Cohort, patients: int, seed: int) -> list[VirtualPatient]:
    return [
        VirtualPatient.draw(cohort, index, arm, seed) for index, arm in enumerate(cohort.allocation(patients, seed))
    ]
