"""Matching PromQL series selectors (``name{a="x", b=~"y.*"}``) against label sets.

Used where series are produced locally (the demo fleet) and must be routed through
the same presets as series fetched from Prometheus.  Supports the four matchers
``=``, ``!=``, ``=~``, ``!~``; regexes are fully anchored, as in PromQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SELECTOR = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)?\s*(?:\{(.*)\})?\s*$")
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


@dataclass(frozen=True)
class Selector:
    """A parsed series selector: metric name (empty for ``{__name__=~"a|b"}``) and
    label matchers."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]

    def matches(self, labels: dict[str, str]) -> bool:
        """True when ``labels`` (with ``__name__``) satisfy the selector."""
        if self.name and labels.get("__name__") != self.name:
            return False
        for label, op, value in self.matchers:
            actual = labels.get(label, "")
            if op == "=" and actual != value:
                return False
            if op == "!=" and actual == value:
                return False
            if op == "=~" and not re.fullmatch(value, actual):
                return False
            if op == "!~" and re.fullmatch(value, actual):
                return False
        return True


def parse_selector(text: str) -> Selector:
    """Parse ``name{label op "value", ...}``.

    Raises:
        ValueError: not a selector of that form (the message quotes it).
    """
    match = _SELECTOR.match(text)
    if not match or not (match.group(1) or match.group(2)):
        raise ValueError(f"not a series selector: {text!r}")
    name, body = match.group(1) or "", match.group(2) or ""
    matchers = []
    pos = 0
    while pos < len(body.strip()):
        m = _MATCHER.match(body, pos)
        if not m:
            raise ValueError(f"cannot parse label matchers in {text!r} at {body[pos:]!r}")
        value = m.group(3).encode().decode("unicode_escape")
        matchers.append((m.group(1), m.group(2), value))
        pos = m.end()
    if not name and not any(m[0] == "__name__" for m in matchers):
        raise ValueError(f"a selector without a metric name needs a __name__ matcher: {text!r}")
    return Selector(name, tuple(matchers))


def quote_label_value(value: str) -> str:
    """``value`` as a PromQL double-quoted string literal (backslash and quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def values_regex(values: list[str]) -> str:
    """An RE2 regex (anchored by PromQL) matching exactly the strings in ``values``.

    An empty string among them matches series that lack the label, as in PromQL.
    """
    return "|".join(re.escape(v) for v in sorted(set(values)))


def add_matchers(selector: str, matchers: list[str]) -> str:
    """``selector`` with the label ``matchers`` (PromQL text such as ``a=~"x|y"``) added.

    ``name`` -> ``name{m}``; ``name{a="b"}`` -> ``name{a="b",m}``; ``{...}`` likewise.

    Raises:
        ValueError: ``selector`` is not a series selector.
    """
    parse_selector(selector)  # refuses anything but a selector
    if not matchers:
        return selector
    text = selector.strip()
    extra = ",".join(matchers)
    if not text.endswith("}"):
        return f"{text}{{{extra}}}"
    head, body = text[: text.index("{")], text[text.index("{") + 1 : -1].strip().rstrip(",")
    return f"{head}{{{body + ',' if body else ''}{extra}}}"
