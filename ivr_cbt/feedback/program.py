"""The program's module schedule (``program/modules.yaml``): which skill each week teaches. Pure data.

How a module reaches the patient, week by week (one call a week):

* The feedback message built from week ``w``'s check-in is heard on the next call, in week
  ``w + 1``: it introduces module ``w + 1`` as *this week's skill*, with its goals.
* So during program week ``v`` the patient practises module ``v``, and the check-in of week
  ``v + 1`` (which asks about the past 7 days) names module ``v`` in its practice question:
  a check-in of week ``v`` asks about module ``v - 1`` (the baseline's wording in weeks 0
  and 1, before any skill). A daily call after the week's weekly call asks about module ``v``.
* Goals travel with their module: module ``m``'s step goal (from the walking module on) is
  the latest reported average + 10%, announced with the module, and judged when its week is
  reported. Skills are cumulative: every message from module 2 on asks the patient to keep
  using the earlier ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jsonschema

from ivr_cbt.callflow.yamlio import YamlError, line_of, load
from ivr_cbt.config import PROJECT_ROOT

DEFAULT_FILE = PROJECT_ROOT / "program" / "modules.yaml"
SCHEMA_FILE = PROJECT_ROOT / "program" / "modules.schema.json"


class ProgramError(ValueError):
    """The module file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Module:
    week: int | None  # None for the module after the program (follow-up calls)
    id: str
    title: str
    source: str  # "COPES" or "ivr-cbt" (ours: not in the sources)
    prompt: str  # prompt id of the skill's name, spoken in questions and messages
    about: str  # prompt id of its one-sentence description
    practice_days_goal: int


@dataclass(frozen=True)
class Program:
    version: int
    modules: tuple[Module, ...]  # modules[w].week == w
    after_program: Module
    step_goal_from_week: int
    step_goal_increase: float
    step_goal_rounding: int

    @property
    def weeks(self) -> int:
        return len(self.modules)

    def module(self, week: int) -> Module:
        """The module of program week ``week`` (the maintenance module after the last one)."""
        if 0 <= week < len(self.modules):
            return self.modules[week]
        return self.after_program

    def practice_module(self, week: int, *, weekly_call_done: bool = False) -> Module:
        """The skill a check-in of program week ``week`` asks about: the one introduced on the last
        weekly call before it (``weekly_call_done``: a daily call after this week's weekly call)."""
        return self.module(week if weekly_call_done else max(week - 1, 0))

    def step_goal(self, week: int, last_week_steps: float | None) -> int | None:
        """Week ``week``'s step goal from last week's average: +10%, rounded up; None before the walking module."""
        if week < self.step_goal_from_week or last_week_steps is None:
            return None
        raw = last_week_steps * (1 + self.step_goal_increase)
        # Round the float artefact away first (4200 x 1.1 = 4620.000000000001), then up.
        rounding = self.step_goal_rounding
        return max(rounding, math.ceil(round(raw, 6) / rounding) * rounding)

    def prompt_ids(self) -> set[str]:
        """Every prompt id the modules speak (each must exist in every language)."""
        return {p for m in (*self.modules, self.after_program) for p in (m.prompt, m.about)}


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def load_program(path: Path | str = DEFAULT_FILE) -> Program:
    """Load and check a module file; raise ProgramError listing every problem."""
    path = Path(path)
    try:
        data, lines = load(path)
    except (YamlError, OSError) as exc:
        raise ProgramError(str(exc)) from exc
    problems = [
        f"{path}:{line_of(lines, tuple(err.absolute_path)) or '?'}: "
        f"{'.'.join(map(str, err.absolute_path)) or 'file'}: {err.message}"
        for err in _validator().iter_errors(data)
    ]
    if problems:
        raise ProgramError("\n".join(problems))
    weeks = [raw["week"] for raw in data["weeks"]]
    if weeks != list(range(len(weeks))):
        raise ProgramError(f"{path}: weeks must be listed in order from 0 with none missing, got {weeks}")
    modules = tuple(Module(**raw) for raw in data["weeks"])
    return Program(
        version=data["version"],
        modules=modules,
        after_program=Module(week=None, **data["after_program"]),
        step_goal_from_week=data["step_goal_from_week"],
        step_goal_increase=data["step_goal_increase"],
        step_goal_rounding=data["step_goal_rounding"],
    )
