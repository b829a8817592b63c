"""`unimed audit invite BUILD --rater NAME`: one secret token per rater; BUILD/audit/raters.json keeps only hashes.

A token is `secrets.token_urlsafe(32)` (256 random bits). The file stores its SHA-256, never the token: a plain
hash is enough for a random 256-bit secret (there is nothing to guess, so a slow password hash would only slow
every request down), and a copy of raters.json signs nobody in. A request's token is hashed and compared with
every stored hash by `hmac.compare_digest`. Inviting a rater again rotates the token (the old link stops
working); revoking removes the hash; a running server sees either on its next request (it re-reads the file
when it changes). Answers stay under the rater's name in both cases.

The file is rewritten whole (temporary file, fsync, rename) under an exclusive lock, so two `invite` commands
at once cannot lose each other's change, and a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.audit import AuditError, audit_dir
from pipeline.audit.store import check_rater

TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 256  # a longer Authorization value or cookie is not one of ours: refused without hashing
COOKIE = "unimed_audit"
BIND_ALL = ("", "0.0.0.0", "::")


def raters_path(build_dir: Path) -> Path:
    return audit_dir(build_dir) / "raters.json"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _read(path: Path) -> dict[str, str]:
    """{rater: sha256 hex} from raters.json; {} when there is none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as err:
        raise AuditError(f"cannot read {path}: {err}; invite the raters again to rewrite it") from None
    return {name: entry["sha256"] for name, entry in data.get("raters", {}).items()}


def _write(path: Path, hashes: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    body = json.dumps({"raters": {name: {"sha256": h} for name, h in sorted(hashes.items())}}, indent=2) + "\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextmanager
def _locked(build_dir: Path):
    """The raters file of BUILD, locked against other `invite` commands for a read-modify-write."""
    if not (Path(build_dir) / "manifest").is_dir():
        raise AuditError(f"{build_dir} is not a build directory (no manifest/ in it); pass one such as build/stage1")
    path = raters_path(build_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(".raters.lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield path


def invite(build_dir: Path, rater: str) -> str:
    """A new token for `rater` (replacing any earlier one); only its hash is stored. Returns the token."""
    rater = check_rater(rater)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with _locked(build_dir) as path:
        hashes = _read(path)
        hashes[rater] = token_hash(token)
        _write(path, hashes)
    return token


def revoke(build_dir: Path, rater: str) -> list[str]:
    """Removes `rater`'s token; returns the raters still invited. AuditError when `rater` is not invited."""
    rater = check_rater(rater)
    with _locked(build_dir) as path:
        hashes = _read(path)
        if rater not in hashes:
            others = ", ".join(sorted(hashes)) or "nobody"
            raise AuditError(f"{rater!r} is not invited to {build_dir}; invited: {others}")
        del hashes[rater]
        _write(path, hashes)
    return sorted(hashes)


def invited(build_dir: Path) -> list[str]:
    return sorted(_read(raters_path(build_dir)))


def link(token: str, host: str = "127.0.0.1", port: int = 8765, url: str | None = None) -> str:
    """The rater's sign-in link. The token sits in the fragment (#token=...): browsers never send a fragment to
    the server or in a Referer, so it stays out of access logs and proxies; the page hands it over once."""
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AuditError(f"--url must be an http(s) address such as https://audit.example.org/, got {url!r}")
        base = url if url.endswith("/") else url + "/"
    else:
        name = socket.getfqdn() if host in BIND_ALL else host
        base = f"http://[{name}]:{port}/" if ":" in name else f"http://{name}:{port}/"
    return f"{base}#token={token}"


class Invitations:
    """The server's view of raters.json: token -> rater, re-read whenever the file changes (rename: new inode)."""

    def __init__(self, build_dir: Path):
        self.path = raters_path(build_dir)
        self._lock = threading.Lock()
        self._seen: tuple | None = None
        self._hashes: dict[str, str] = {}

    def _current(self) -> dict[str, str]:
        try:
            info = os.stat(self.path)
            seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            seen = None
        with self._lock:
            if seen != self._seen:
                self._hashes = _read(self.path) if seen else {}
                self._seen = seen
            return self._hashes

    def names(self) -> list[str]:
        return sorted(self._current())

    def rater_for(self, token: str | None) -> str | None:
        """The rater whose token this is, or None. Every stored hash is compared, in constant time each."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        presented = token_hash(token)
        found = None
        for name, stored in self._current().items():
            if hmac.compare_digest(presented, stored):
                found = name
        return found
