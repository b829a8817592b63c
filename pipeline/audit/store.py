"""The raters' answers: one append-only JSONL log per rater, BUILD/audit/answers/<name>-<hash>.jsonl, one line
per score given, fsync'd before the server answers. Later lines override earlier ones for the same (item,
dimension).

Why a log per rater rather than SQLite in WAL mode: the answers are a few thousand short lines, written by one
server; a log is plain text a person can read, grep and copy off the machine with the build, and it needs no
shared-memory file, so it is as safe on a network file system as on a local disk (SQLite's WAL is not). One
file per rater keeps each rater's answers apart by construction (the file is chosen by the authenticated name,
never by the request), lets five raters' fsyncs run side by side, and makes a rater's page read only their own.

Durability: each answer is one `write` to a file opened with O_APPEND, under an exclusive `flock` (threads
and other processes such as `audit ls-import`), then `fsync`; the first answer in a new file also fsyncs the
folder. Only then does the server acknowledge. A process killed mid-write can leave a torn last line that was
never acknowledged: the next writer cuts it off under the lock before appending, and readers skip it, so every
acknowledged answer is read back exactly once.

The file name is the rater's name made safe for any file system plus a hash of the exact name, so "Alice" and
"alice" (one file on a case-insensitive disk) never share a log. answers.jsonl, the single log of earlier
versions, is still read (first), never written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

from pipeline.audit import BY_NAME, AuditError, audit_dir

log = logging.getLogger(__name__)
RATER_NAME = re.compile(r"^[\w .@'-]{1,64}$")
UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def check_rater(name) -> str:
    if not isinstance(name, str) or not name.strip() or not RATER_NAME.match(name.strip()):
        raise AuditError("rater name: 1-64 letters, digits, spaces or . @ ' - _")
    return name.strip()


def log_name(rater: str) -> str:
    slug = UNSAFE_IN_FILE_NAME.sub("_", rater)[:40].strip("_") or "rater"
    return f"{slug}-{hashlib.sha256(rater.encode('utf-8')).hexdigest()[:12]}.jsonl"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cut_torn_tail(fd: int, path: Path) -> None:
    """Truncates bytes after the last newline: the remains of a write that was killed before its fsync."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:
        start = max(0, end - 65536)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    log.warning("%s: cut %d bytes of a torn, unacknowledged answer", path, size - end)
    os.ftruncate(fd, end)


class AnswerStore:
    def __init__(self, build_dir: Path):
        self.root = audit_dir(build_dir) / "answers"
        self.legacy = audit_dir(build_dir) / "answers.jsonl"

    def path_for(self, rater: str) -> Path:
        return self.root / log_name(check_rater(rater))

    def add(self, rater: str, item: int, dimension: str, score, n_items: int | None = None) -> dict:
        """Validates and appends one answer; returns it once it is on disk."""
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
        data = memoryview((json.dumps(entry, sort_keys=True) + "\n").encode("utf-8"))
        path = self.path_for(rater)
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            first = os.fstat(fd).st_size == 0
            _cut_torn_tail(fd, path)
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
            if first:  # the new file's name must be as durable as its first line
                _fsync_dir(self.root)
                _fsync_dir(self.root.parent)
        finally:
            os.close(fd)  # releases the lock
        return entry

    def _logs(self, rater: str | None) -> list[Path]:
        if rater is not None:
            own = [self.path_for(rater)]
        else:
            own = sorted(self.root.glob("*.jsonl")) if self.root.is_dir() else []
        return [p for p in [self.legacy, *own] if p.is_file()]

    def entries(self, rater: str | None = None) -> list[dict]:
        """Every answer in the order given (one rater's only when named); torn lines skipped."""
        out = []
        for path in self._logs(rater):
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a torn last line, cut on the next append
                    if rater is None or entry.get("rater") == rater:
                        out.append(entry)
        return out

    def count(self) -> int:
        return len(self.entries())

    def latest(self, rater: str | None = None) -> dict[tuple[str, int, str], int]:
        """{(rater, item, dimension): score}, the last answer of each; one rater's only when named."""
        return {(e["rater"], e["item"], e["dimension"]): e["score"] for e in self.entries(rater)}
