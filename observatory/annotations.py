"""Deployment annotations: a small JSON-lines file in the store folder.

``observatory annotate`` appends one line per deployment (or any event an operator
wants next to the charts) to ``<store>/annotations.jsonl``; regression analysis reads
them as candidate causes and as the moments to judge (deployment verdicts).  One
``write`` of one line per annotation, like the collector's run log, so concurrent
writers do not interleave and readers never see half a line.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FILE = "annotations.jsonl"


@dataclass(frozen=True)
class Annotation:
    """One annotation.

    Attributes:
        time: when it happened (UTC).
        description: what happened ("llama-3.1-70b v2: new quantisation").
        kind: ``deployment`` (judged and used as a cause) or another word.
        region, model, arm: what it concerns (None: everything).
        author: who recorded it.
    """

    time: datetime
    description: str
    kind: str = "deployment"
    region: str | None = None
    model: str | None = None
    arm: str | None = None
    author: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["time"] = _utc(self.time).isoformat()
        return d


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def path(root: str | os.PathLike[str]) -> Path:
    """The annotations file of the store at ``root``."""
    return Path(root) / FILE


def add(root: str | os.PathLike[str], annotation: Annotation) -> Path:
    """Append ``annotation`` to the store's annotations file (created when missing)."""
    if not annotation.description.strip():
        raise ValueError("an annotation needs a description")
    target = path(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(annotation.to_json(), sort_keys=True) + "\n"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)
    return target


def read(root: str | os.PathLike[str]) -> list[Annotation]:
    """Every annotation of the store, oldest first (unreadable lines are skipped)."""
    target = path(root)
    if not target.exists():
        return []
    out = []
    for raw in target.read_text(encoding="utf-8").splitlines():
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
            out.append(
                Annotation(
                    time=_utc(datetime.fromisoformat(d["time"])),
                    description=str(d["description"]),
                    kind=str(d.get("kind") or "deployment"),
                    region=d.get("region"),
                    model=d.get("model"),
                    arm=d.get("arm"),
                    author=d.get("author"),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(out, key=lambda a: a.time)
