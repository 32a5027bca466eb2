"""Where things are in a YAML file: line numbers of key paths, for error messages.

Shared by every YAML reader (the configuration, experiments, drift schedule through
:func:`observatory.config.validate_yaml`, and the multi-document SLO spec files of
:mod:`observatory.slo_specs`), so each names ``file:line: key.path[0]: what`` the
same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml


def line_index(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map every key path of a composed YAML document to its 1-based line.

    A key's own path maps to the line of the key; list items to the line where the
    item starts.  ``None`` (an empty document) maps nothing.
    """
    if node is None:
        return {}
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            lines.update(line_index(value_node, (*path, key_node.value)))
            lines[(*path, key_node.value)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(line_index(item, (*path, i)))
    return lines


def nearest_line(lines: dict[tuple[Any, ...], int], loc: Sequence[Any]) -> int | None:
    """The line of ``loc``, else of its nearest ancestor in ``lines`` (None if none)."""
    loc = tuple(loc)
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def format_loc(loc: Sequence[Any], empty: str = "(top level)") -> str:
    """A key path as people write it: ``regions[1].url``; ``empty`` for the root."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or empty


def yaml_error(exc: yaml.YAMLError, source: str) -> str:
    """``source:line: invalid YAML: problem (context at line k)`` for a PyYAML parse error.

    A problem found at the end of the stream (an unclosed quote or bracket) is reported
    at the line where the unclosed construct starts (PyYAML's ``context_mark``): its
    ``problem_mark`` lies past the last line of the file, which names no line a person
    can look at.
    """
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    at = mark
    if context_mark is not None and (mark is None or "end of stream" in problem):
        at = context_mark
    where = f"{source}:{at.line + 1}" if at is not None else source
    if context and context_mark is not None:
        problem += f" ({context} at line {context_mark.line + 1})"
    return f"{where}: invalid YAML: {problem}"


class TextTimestampLoader(yaml.SafeLoader):
    """PyYAML's ``SafeLoader`` that leaves timestamps as text.

    ``SafeLoader`` turns ``2026-02-30`` into a ``datetime.date`` while parsing and
    raises a bare ``ValueError`` (no file, no line) for an impossible date.  Left as
    text, the value reaches the pydantic model, whose error names the file, line and
    key path like every other mistake.
    """


TextTimestampLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
