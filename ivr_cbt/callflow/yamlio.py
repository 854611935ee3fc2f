"""YAML loading for flows and prompts: YAML 1.2 booleans, and line numbers for errors.

PyYAML follows YAML 1.1, where ``yes``, ``no``, ``on`` and ``off`` are booleans: a prompt
that reads ``no`` or an anchor labelled ``yes`` would silently change type. Here only
``true`` and ``false`` are booleans.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_BOOL = "tag:yaml.org,2002:bool"


class DataLoader(yaml.SafeLoader):
    """SafeLoader that only treats ``true``/``false`` as booleans."""


DataLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
DataLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class YamlError(ValueError):
    def __init__(self, path: Path, line: int | None, message: str):
        self.path, self.line, self.message = path, line, message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


def load(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Load a YAML file; return the data and a map from key path to line number."""
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=DataLoader)
        data = yaml.load(text, Loader=DataLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlError(path, mark.line + 1 if mark else None, f"not valid YAML: {exc}") from exc
    lines: dict[tuple, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            _collect_lines(value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, value_node in enumerate(node.value):
            _collect_lines(value_node, (*path, str(index)), lines)


def line_of(lines: dict[tuple, int], path: tuple) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    path = tuple(str(part) for part in path)
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path)
