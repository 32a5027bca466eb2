"""What ad hoc SQL users can query: the views, their documentation, the example queries.

One machine-readable source for the SQL page's schema browser, ``observatory sql``
and the tests:

- the view names come from ``sql/views.sql`` (``CREATE OR REPLACE VIEW name``);
- each view's one-line description and its columns (type, unit, description) come
  from ``docs/sql.md``: a ``### `name` `` heading, a paragraph, then a table
  ``| column | type | unit | description |``;
- the example queries are ``sql/examples/*.sql``; each starts with a comment header
  ``-- title: ...`` followed by ``-- `` lines that describe it.

Pure: reads text files, no DuckDB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = ROOT / "sql"
DOCS_PATH = ROOT / "docs" / "sql.md"
EXAMPLES_DIR = SQL_DIR / "examples"

_VIEW_RE = re.compile(r"^\s*CREATE\s+OR\s+REPLACE\s+VIEW\s+([A-Za-z_][A-Za-z0-9_]*)", re.I | re.M)
_HEADING_RE = re.compile(r"^###\s+`([A-Za-z_][A-Za-z0-9_]*)`\s*$")


@dataclass(frozen=True)
class ColumnDoc:
    """One documented column of a view."""

    name: str
    type: str
    unit: str
    description: str


@dataclass(frozen=True)
class ViewDoc:
    """One documented view: a one-line description and its columns, in order."""

    name: str
    description: str
    columns: tuple[ColumnDoc, ...]


@dataclass(frozen=True)
class Example:
    """One example query of ``sql/examples``."""

    name: str
    title: str
    description: str
    sql: str


def view_names(path: Path = SQL_DIR / "views.sql") -> list[str]:
    """The views ``sql/views.sql`` creates, in file order."""
    return _VIEW_RE.findall(path.read_text(encoding="utf-8"))


def _cells(line: str) -> list[str]:
    return [c.strip().strip("`").strip() for c in line.strip().strip("|").split("|")]


def view_docs(path: Path = DOCS_PATH) -> dict[str, ViewDoc]:
    """Every view documented in ``docs/sql.md``, by name."""
    docs: dict[str, ViewDoc] = {}
    name: str | None = None
    text: list[str] = []
    columns: list[ColumnDoc] = []

    def flush() -> None:
        if name is not None:
            docs[name] = ViewDoc(name, " ".join(text).strip(), tuple(columns))

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        heading = _HEADING_RE.match(line)
        if heading or line.startswith("## ") or line.startswith("### "):
            flush()
            name, text, columns = (heading.group(1) if heading else None), [], []
            continue
        if name is None:
            continue
        if line.startswith("|"):
            cells = _cells(line)
            if len(cells) == 4 and cells[0] != "column" and not set(cells[0]) <= {"-", ":"}:
                columns.append(ColumnDoc(*cells))
        elif line and not columns:
            text.append(line)
    flush()
    return docs


def examples(directory: Path = EXAMPLES_DIR) -> list[Example]:
    """The example queries, sorted by title."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        sql = path.read_text(encoding="utf-8")
        title, described = path.stem.replace("_", " "), []
        for line in sql.splitlines():
            if not line.startswith("--"):
                break
            body = line[2:].strip()
            if body.lower().startswith("title:"):
                title = body[6:].strip()
            elif body:
                described.append(body)
        found.append(Example(path.stem, title, " ".join(described), sql))
    return sorted(found, key=lambda e: e.title)
