"""Load a flow file and check it in two stages: the JSON Schema, then the graph.

Graph checks: every target exists, every node is reachable from ``start``, every path can
reach an ``end`` node, no loop runs without waiting for the caller, every input node
handles no-input and invalid input, every asked item is declared and asked once.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jsonschema

from ivr_cbt.callflow import spec
from ivr_cbt.callflow.yamlio import YamlError, line_of, load

SCHEMA_FILE = "flow.schema.json"
KNOWN_SETTINGS = frozenset({"crisis_line"})
# Slots the host fills per call: ``skill`` is the prompt naming this week's skill (program/modules.yaml).
KNOWN_SLOTS = frozenset({"skill"})


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        location = f"{self.file}:{self.line}" if self.line else self.file
        return f"{location}: {self.where}: {self.message}" if self.where else f"{location}: {self.message}"


class FlowError(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@cache
def _validator(schema_path: Path) -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def load_flow(path: Path, schema_path: Path | None = None) -> spec.Flow:
    """Load and check one flow file; raise FlowError listing every problem found."""
    path = Path(path)
    schema_path = schema_path or path.parent / SCHEMA_FILE
    if not schema_path.exists():
        schema_path = Path(__file__).resolve().parents[2] / "flows" / SCHEMA_FILE
    try:
        data, lines = load(path)
    except YamlError as exc:
        raise FlowError([Problem(str(path), exc.line, "", exc.message)]) from exc

    problems = [
        Problem(str(path), line_of(lines, _error_location(err)), _dotted(err.absolute_path), _schema_message(err))
        for err in sorted(_validator(schema_path).iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if problems:
        raise FlowError(problems)
    flow = _build(data)
    problems = [
        Problem(str(path), line_of(lines, where), _dotted(where), message) for where, message in graph_problems(flow)
    ]
    if problems:
        raise FlowError(problems)
    return flow


def load_flows(directory: Path) -> dict[str, spec.Flow]:
    """Load every ``*.yaml`` flow in ``directory``, keyed by flow id."""
    flows: dict[str, spec.Flow] = {}
    problems: list[Problem] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            flow = load_flow(path)
        except FlowError as exc:
            problems.extend(exc.problems)
            continue
        if flow.id in flows:
            problems.append(Problem(str(path), None, "id", f"flow id {flow.id!r} is used twice"))
        flows[flow.id] = flow
    if problems:
        raise FlowError(problems)
    return flows


def _dotted(path) -> str:
    return ".".join(str(part) for part in path)


def _error_location(err: jsonschema.ValidationError) -> tuple:
    """Point an unknown-field error at the field itself rather than at its parent."""
    path = tuple(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set(err.schema.get("properties", {}))
        extra = sorted(str(key) for key in err.instance if key not in known)
        if extra:
            return (*path, extra[0])
    return path


def _schema_message(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        return err.message.replace("Additional properties are not allowed", "unknown field(s)")
    if err.validator == "oneOf" and isinstance(err.instance, dict):
        return f"not a prompt id, {{setting: ...}} or {{slot: ...}}: {err.instance!r}"
    return err.message


# --- Building typed values --------------------------------------------------------------------


def _prompt(value) -> spec.PromptSpec:
    if isinstance(value, dict) and "slot" in value:
        return spec.SlotRef(value["slot"], value.get("end"))
    if isinstance(value, dict):
        return spec.SettingRef(value["setting"], value.get("say_as", "digits"))
    return value


def _prompts(values) -> tuple[spec.PromptSpec, ...]:
    return tuple(_prompt(v) for v in values or ())


def _build(data: dict) -> spec.Flow:
    items = {
        key: spec.Item(
            key=key,
            min=raw["min"],
            max=raw["max"],
            direction=raw["direction"],
            anchors={str(k): v for k, v in (raw.get("anchors") or {}).items()},
            label=raw.get("label", ""),
            unit=raw.get("unit", ""),
        )
        for key, raw in (data.get("items") or {}).items()
    }
    nodes = {node_id: _node(node_id, raw) for node_id, raw in data["nodes"].items()}
    speech = data.get("speech")
    return spec.Flow(
        id=data["id"],
        version=data["version"],
        start=data["start"],
        nodes=nodes,
        items=items,
        speech=spec.SpeechSettings(**speech) if speech else None,
        description=data.get("description", ""),
        checkin=data.get("checkin", "weekly"),
    )


def _node(node_id: str, raw: dict) -> spec.Node:
    kind = raw["type"]
    common = {"id": node_id, "type": kind, "alert": raw.get("alert"), "action": raw.get("action")}
    if kind == "say":
        return spec.Say(**common, prompts=_prompts(raw["prompts"]), next=raw["next"])
    if kind == "route":
        routes = tuple((r["if"], r["next"]) for r in raw["routes"])
        return spec.Route(**common, routes=routes, next=raw["next"])
    if kind == "identify":
        fields = ("pin_prompt", "code_prompt", "pin_digits", "code_digits", "timeout", "next", "on_fail")
        return spec.Identify(
            **common,
            **{f: raw[f] for f in fields if f in raw},
            noinput=tuple(raw["noinput"]),
            invalid=tuple(raw["invalid"]),
        )
    if kind == "ask":
        return spec.Ask(
            **common,
            item=raw["item"],
            prompt=_prompts([raw["prompt"]] if isinstance(raw["prompt"], str) else raw["prompt"]),
            keys=spec.Keys(**raw.get("keys", {})),
            speech=raw.get("speech", False),
            noinput=tuple(raw["noinput"]),
            invalid=tuple(raw["invalid"]),
            branches=tuple((b["equals"], b["next"]) for b in raw.get("branches", ())),
            next=raw["next"],
        )
    if kind == "menu":
        return spec.Menu(
            **common,
            prompts=_prompts(raw.get("prompts")),
            prompt=raw["prompt"],
            choices={str(k): v for k, v in raw["choices"].items()},
            timeout=raw.get("timeout", 5),
            noinput=tuple(raw["noinput"]),
            invalid=tuple(raw["invalid"]),
            default=raw["default"],
        )
    if kind == "dial":
        return spec.Dial(
            **common, prompts=_prompts(raw.get("prompts")), number=raw["number"]["setting"], next=raw["next"]
        )
    if kind == "feedback":
        return spec.Feedback(**common, prompts=_prompts(raw.get("prompts")), next=raw["next"])
    return spec.End(**common, prompts=_prompts(raw["prompts"]))


# --- Graph checks ---------------------------------------------------------------------------------


def targets(node: spec.Node) -> list[tuple[str, str]]:
    """(field path, target node id) for every transition out of ``node``."""
    out: list[tuple[str, str]] = []
    if isinstance(node, spec.Route):
        out += [(f"routes.{i}.next", target) for i, (_, target) in enumerate(node.routes)]
    if isinstance(node, spec.Ask):
        out += [(f"branches.{i}.next", target) for i, (_, target) in enumerate(node.branches)]
    if isinstance(node, spec.Menu):
        out += [(f"choices.{key}", target) for key, target in node.choices.items()]
        out.append(("default", node.default))
    if isinstance(node, spec.Identify):
        out.append(("on_fail", node.on_fail))
    if getattr(node, "next", ""):
        out.append(("next", node.next))
    return out


def graph_problems(flow: spec.Flow, known_settings=KNOWN_SETTINGS) -> list[tuple[tuple, str]]:
    """Return (key path, message) for every graph problem in ``flow``."""
    problems: list[tuple[tuple, str]] = []
    if flow.start not in flow.nodes:
        problems.append((("start",), f"unknown node {flow.start!r}"))

    for node in flow.nodes.values():
        for field_path, target in targets(node):
            if target not in flow.nodes:
                problems.append((("nodes", node.id, *field_path.split(".")), f"unknown node {target!r}"))
    if problems:
        return problems  # the checks below walk the graph and need every target to exist

    reachable = _reachable(flow, [flow.start])
    for node_id in flow.nodes:
        if node_id not in reachable:
            problems.append((("nodes", node_id), "unreachable from start"))

    ends = {n.id for n in flow.nodes.values() if isinstance(n, spec.End)}
    reverse: dict[str, set[str]] = {n: set() for n in flow.nodes}
    for node in flow.nodes.values():
        for _, target in targets(node):
            reverse[target].add(node.id)
    can_end = _reachable_in(reverse, ends)
    for node_id in flow.nodes:
        if node_id not in can_end:
            problems.append((("nodes", node_id), "no path from here reaches an 'end' node"))

    problems += _loops_without_input(flow)

    asked: dict[str, str] = {}
    for node in flow.nodes.values():
        # A menu's default handles what its re-prompts do not; other input nodes need re-prompts.
        if isinstance(node, spec.Identify | spec.Ask) and not (node.noinput and node.invalid):
            problems.append((("nodes", node.id), "an input node must handle no-input and invalid input"))
        if isinstance(node, spec.Ask):
            problems += _ask_problems(flow, node, asked)
        lists = [("prompts", getattr(node, "prompts", ()))]
        if isinstance(node, spec.Ask):
            lists.append(("prompt", node.prompt))
        for name, prompts in lists:
            for index, prompt in enumerate(prompts):
                if isinstance(prompt, spec.SettingRef) and prompt.setting not in known_settings:
                    problems.append((("nodes", node.id, name, index, "setting"), f"unknown setting {prompt.setting!r}"))
                if isinstance(prompt, spec.SlotRef) and prompt.slot not in KNOWN_SLOTS:
                    problems.append((("nodes", node.id, name, index, "slot"), f"unknown slot {prompt.slot!r}"))
        if isinstance(node, spec.Dial) and node.number not in known_settings:
            problems.append((("nodes", node.id, "number", "setting"), f"unknown setting {node.number!r}"))

    if flow.checkin == "none" and flow.items:
        problems.append((("checkin",), "a flow that fills no check-in cannot record items"))
    if flow.speech is None and any(isinstance(n, spec.Ask) and n.speech for n in flow.nodes.values()):
        problems.append((("speech",), "a node takes speech, so the flow needs a 'speech' block"))
    return problems


def _ask_problems(flow: spec.Flow, node: spec.Ask, asked: dict[str, str]) -> list[tuple[tuple, str]]:
    problems: list[tuple[tuple, str]] = []
    item = flow.items.get(node.item)
    if item is None:
        return [(("nodes", node.id, "item"), f"item {node.item!r} is not declared under 'items'")]
    if node.item in asked:
        problems.append(
            (("nodes", node.id, "item"), f"item {node.item!r} is already asked by node {asked[node.item]!r}")
        )
    asked[node.item] = node.id
    if item.min > item.max:
        problems.append((("items", item.key), f"min {item.min} is above max {item.max}"))
    for anchor in item.anchors:
        if not item.accepts(int(anchor)):
            problems.append((("items", item.key, "anchors", anchor), "anchor outside the scale"))
    for index, (value, _) in enumerate(node.branches):
        if not item.accepts(value):
            problems.append(
                (("nodes", node.id, "branches", index, "equals"), f"{value} is outside {item.min}-{item.max}")
            )
    widest = len(str(max(abs(item.min), abs(item.max))))
    if node.keys.max_digits is not None and node.keys.max_digits < widest:
        problems.append(
            (("nodes", node.id, "keys", "max_digits"), f"{node.keys.max_digits} digits cannot enter {item.max}")
        )
    if node.keys.max_digits is None and not node.keys.finish_on_key:
        problems.append((("nodes", node.id, "keys"), "without max_digits the caller needs a finish_on_key"))
    return problems


def _reachable(flow: spec.Flow, roots: list[str]) -> set[str]:
    graph = {n.id: {t for _, t in targets(n)} for n in flow.nodes.values()}
    return _reachable_in(graph, set(roots))


def _reachable_in(graph: dict[str, set[str]], roots: set[str]) -> set[str]:
    seen, queue = set(roots), deque(roots)
    while queue:
        for nxt in graph.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _loops_without_input(flow: spec.Flow) -> list[tuple[tuple, str]]:
    """Find cycles made only of nodes that never wait for the caller (they would spin)."""
    passive = {
        n.id: {t for _, t in targets(n)}
        for n in flow.nodes.values()
        if not isinstance(n, (*spec.INPUT_NODES, spec.End))
    }
    state: dict[str, int] = {}
    problems: list[tuple[tuple, str]] = []

    def visit(node_id: str, trail: list[str]) -> None:
        state[node_id] = 1
        for nxt in passive.get(node_id, ()):
            if nxt not in passive:
                continue
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node_id, nxt]
                problems.append((("nodes", nxt), "loop without waiting for the caller: " + " -> ".join(cycle)))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node_id] = 2

    for node_id in passive:
        if node_id not in state:
            visit(node_id, [node_id])
    return problems
