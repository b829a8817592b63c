"""`unimed audit serve BUILD --port P`: the rating workbench, stdlib http.server only, loopback by default.

A rater enters a name and sees one item of BUILD/audit/sample.parquet at a time: its images (read from the
shards), the human and gpt turns, the seven dimensions. Keys: a digit scores the highlighted dimension and
moves to the next (after the last, to the next item); up/down move between dimensions; left/right or p/n go
to the previous/next item; u jumps to the first item not fully scored. Every score is POSTed when given and
fsync'd before the reply (store.py); the page shows the server's refusal for a score outside its scale.
Raters see only their own answers. It is a tool for a trusted room, not an authenticated service.

API (JSON): GET /api/meta, GET /api/item/<i>?rater=NAME, GET /api/progress?rater=NAME, POST /api/answer
{rater, item, dimension, score}; GET /img/<i>/<member> serves an item's image.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from pipeline.audit import DIMENSIONS, AuditError
from pipeline.audit.sample import read_sample
from pipeline.audit.store import AnswerStore, check_rater
from manifests.shards import MEDIA_TYPES, ShardReader

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("page.html")


class AuditServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, build_dir: Path, host: str = "127.0.0.1", port: int = 8765, max_idle: float = 0):
        self.build_dir = Path(build_dir)
        self.items = read_sample(self.build_dir)
        self.store = AnswerStore(self.build_dir)
        self.shards = ShardReader(self.build_dir)
        self.max_idle = max_idle
        self.last_request = time.monotonic()
        super().__init__((host, port), Handler)

    def item_view(self, index: int, rater: str) -> dict:
        row = self.items[index]
        sample = json.loads(row["sample"])
        images = [{"role": role, "path": ref["path"], "url": f"/img/{index}/{ref['path']}"}
                  for role, key in (("input", "input_img"), ("output", "output_img")) for ref in sample.get(key, [])]
        mine = self.store.latest(rater)
        return {"item": index, "total": len(self.items), "id": row["id"], "source": row["source"],
                "modality": row["modality"], "task_family": row["task_family"],
                "sub_task_type": row["sub_task_type"], "message": sample.get("message", []), "images": images,
                "scores": {d.name: mine[(rater, index, d.name)] for d in DIMENSIONS if (rater, index, d.name) in mine}}

    def progress(self, rater: str) -> dict:
        mine = self.store.latest(rater)
        per_item: dict[int, int] = {}
        for (_, item, _dim) in mine:
            per_item[item] = per_item.get(item, 0) + 1
        done = sorted(i for i, n in per_item.items() if n == len(DIMENSIONS))
        first_open = next((i for i in range(len(self.items)) if per_item.get(i, 0) < len(DIMENSIONS)), None)
        return {"rater": rater, "total": len(self.items), "complete": len(done), "scores": len(mine),
                "first_incomplete": first_open}

    def serve_until_idle(self) -> None:
        """serve_forever, stopping after max_idle seconds without a request when max_idle > 0."""
        if self.max_idle > 0:
            def watch():
                while True:
                    time.sleep(min(1.0, self.max_idle))
                    if time.monotonic() - self.last_request > self.max_idle:
                        self.shutdown()
                        return
            threading.Thread(target=watch, daemon=True).start()
        self.serve_forever(poll_interval=0.2)


class Handler(BaseHTTPRequestHandler):
    server: AuditServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the terminal is the rater's, not a log
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, body: bytes, media: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _rater(self, query: dict) -> str:
        return check_rater((query.get("rater") or [""])[0])

    def _item_index(self, text: str) -> int:
        if not text.isdigit() or int(text) >= len(self.server.items):
            raise AuditError(f"no item {text!r}; items are 0 to {len(self.server.items) - 1}")
        return int(text)

    def do_GET(self):  # noqa: N802
        self.server.last_request = time.monotonic()
        url = urlparse(self.path)
        query = parse_qs(url.query)
        parts = [unquote(p) for p in url.path.strip("/").split("/") if p]
        try:
            if not parts:
                return self._send(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
            if parts == ["api", "meta"]:
                return self._json(HTTPStatus.OK, {
                    "total": len(self.server.items), "build": self.server.build_dir.name,
                    "dimensions": [{"name": d.name, "title": d.title, "low": d.low, "high": d.high}
                                   for d in DIMENSIONS]})
            if len(parts) == 3 and parts[:2] == ["api", "item"]:
                return self._json(HTTPStatus.OK, self.server.item_view(self._item_index(parts[2]), self._rater(query)))
            if parts == ["api", "progress"]:
                return self._json(HTTPStatus.OK, self.server.progress(self._rater(query)))
            if len(parts) == 3 and parts[0] == "img":
                row = self.server.items[self._item_index(parts[1])]
                member = parts[2]
                allowed = {ref["path"] for k in ("input_img", "output_img")
                           for ref in json.loads(row["sample"]).get(k, [])}
                if member not in allowed:
                    return self._error(HTTPStatus.NOT_FOUND, f"item {parts[1]} has no image {member!r}")
                data = self.server.shards.read(row["shard"], row["key"], member)
                return self._send(HTTPStatus.OK, data, MEDIA_TYPES.get(member.rsplit(".", 1)[-1], "application/octet-stream"))
            return self._error(HTTPStatus.NOT_FOUND, f"no such page: {url.path}")
        except AuditError as err:
            return self._error(HTTPStatus.BAD_REQUEST, str(err))
        except FileNotFoundError as err:
            return self._error(HTTPStatus.NOT_FOUND, str(err))

    def do_POST(self):  # noqa: N802
        self.server.last_request = time.monotonic()
        if urlparse(self.path).path != "/api/answer":
            return self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: {self.path}")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > 10_000:
                raise AuditError("request too large")
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise AuditError("expected a JSON object {rater, item, dimension, score}")
            entry = self.server.store.add(body.get("rater"), body.get("item"), body.get("dimension"),
                                          body.get("score"), n_items=len(self.server.items))
        except json.JSONDecodeError:
            return self._error(HTTPStatus.BAD_REQUEST, "the body is not JSON")
        except (AuditError, ValueError) as err:
            return self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(err))
        return self._json(HTTPStatus.OK, {"saved": entry, "progress": self.server.progress(entry["rater"])})


def serve(build_dir: Path, host: str, port: int, max_idle: float = 0) -> AuditServer:
    return AuditServer(build_dir, host, port, max_idle)
