"""The raters' answers: BUILD/audit/answers.jsonl, one JSON line per score given, fsync'd before the
server answers, so a killed server loses nothing it acknowledged. Later lines override earlier ones for the
same (rater, item, dimension); a half-written last line (power cut mid-write) is skipped on reading.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

from manifests import storage
from pipeline.audit import BY_NAME, AuditError, audit_dir

RATER_NAME = re.compile(r"^[\w .@'-]{1,64}$")


def check_rater(name) -> str:
    if not isinstance(name, str) or not RATER_NAME.match(name.strip() or "-") or not name.strip():
        raise AuditError("rater name: 1-64 letters, digits, spaces or . @ ' - _")
    return name.strip()


class AnswerStore:
    def __init__(self, build_dir: Path | str):
        # a local file (appended to), or an object on a store (rewritten whole per answer: one PUT)
        self.path = (storage.join(str(build_dir), "audit", "answers.jsonl") if storage.is_url(build_dir)
                     else audit_dir(build_dir) / "answers.jsonl")
        self._lock = threading.Lock()

    def add(self, rater: str, item: int, dimension: str, score, n_items: int | None = None) -> dict:
        rater = check_rater(rater)
        if dimension not in BY_NAME:
            raise AuditError(f"unknown dimension {dimension!r}; one of {', '.join(BY_NAME)}")
        if isinstance(item, bool) or not isinstance(item, int) or item < 0 or (n_items is not None and item >= n_items):
            raise AuditError(f"item must be an index from 0 to {(n_items or 1) - 1}, got {item!r}")
        try:
            score = BY_NAME[dimension].check(score)
        except ValueError as err:
            raise AuditError(str(err)) from None
        entry = {"rater": rater, "item": item, "dimension": dimension, "score": score, "at": round(time.time(), 3)}
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            if isinstance(self.path, str):
                fs, path = storage.filesystem(self.path)
                before = storage.read_text(fs, path) if fs.isfile(path) else ""
                storage.write_text(fs, path, before + line)
                return entry
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        return entry

    def entries(self) -> list[dict]:
        fs, path = storage.filesystem(self.path)
        if not fs.isfile(path):
            return []
        out = []
        for line in storage.read_text(fs, path).splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line
        return out

    def count(self) -> int:
        return len(self.entries())

    def latest(self, rater: str | None = None) -> dict[tuple[str, int, str], int]:
        """{(rater, item, dimension): score}, the last answer of each; one rater's only when named."""
        out = {}
        for e in self.entries():
            if rater is None or e["rater"] == rater:
                out[(e["rater"], e["item"], e["dimension"])] = e["score"]
        return out
