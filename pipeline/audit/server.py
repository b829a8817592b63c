"""`unimed audit serve BUILD --port P`: the rating workbench for invited raters (stdlib ThreadingHTTPServer).

Signing in: `unimed audit invite` gives each rater a link ending in `#token=TOKEN`. The page (GET /, the only
thing served without a token) hands the token over once, as `Authorization: Bearer TOKEN` on POST /api/session,
which sets it as an HttpOnly, SameSite=Strict cookie (Secure behind an https proxy) and then drops it from the
address bar. Every other request needs a valid token, as that header or that cookie: none or a wrong one gets
401. The rater is whoever the token belongs to; a query `rater=` or a body `"rater"` naming anyone else gets 403
and nothing is written. POSTs must be JSON (a cross-site form cannot send that), on top of SameSite=Strict.

Images: GET /img/<item>/<member> serves a member of that item's shard sample, looked up among the item's own
image names; the request's text never becomes a file path. Anything else (`..`, `%2f`, absolute paths) is 404.

Network: loopback by default. Another address is refused while nobody is invited, so a server on a network
always wants tokens; put it behind TLS (a reverse proxy) or reach it through an SSH tunnel (README).

The rater sees one item of BUILD/audit/sample.parquet at a time: its images, the human and gpt turns, the seven
dimensions. Keys: a digit scores the highlighted dimension and moves on (after the last, to the next item);
up/down move between dimensions; left/right or p/n go to the previous/next item; u jumps to the first item not
fully scored. Each score is POSTed when given and fsync'd before the reply (store.py).

API (JSON): GET|POST /api/session, POST /api/signout, GET /api/meta, GET /api/item/<i>, GET /api/progress,
POST /api/answer {item, dimension, score}; GET /img/<i>/<member>.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from manifests.shards import MEDIA_TYPES, ShardReader
from pipeline.audit import DIMENSIONS, AuditError
from pipeline.audit.invitations import COOKIE, Invitations
from pipeline.audit.sample import read_sample
from pipeline.audit.store import AnswerStore

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("page.html")
MAX_BODY = 10_000
DRAINED_BODY = 1 << 20
COOKIE_SECONDS = 30 * 24 * 3600
ITEM_INDEX = re.compile(r"[0-9]{1,9}")
SECURITY_HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
                    ("Content-Security-Policy", "frame-ancestors 'none'"))


class Refused(Exception):
    """A request turned away with an HTTP status; the message is the JSON error."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    """True when every address `host` stands for is on this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


class AuditServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, build_dir: Path, host: str = "127.0.0.1", port: int = 8765, max_idle: float = 0):
        self.build_dir = Path(build_dir)
        self.items = read_sample(self.build_dir)
        self.invitations = Invitations(self.build_dir)
        if not is_loopback(host) and not self.invitations.names():
            raise AuditError(f"refusing to listen on {host}: nobody is invited to {self.build_dir} yet; run "
                             f"`unimed audit invite {self.build_dir} --rater NAME` first (or serve on 127.0.0.1)")
        self.store = AnswerStore(self.build_dir)
        self.shards = ShardReader(self.build_dir)
        # each item's image member names, from the sample: the only names /img/ serves
        self.images = [[(role, ref["path"]) for role, key in (("input", "input_img"), ("output", "output_img"))
                        for ref in json.loads(row["sample"]).get(key, [])] for row in self.items]
        self.max_idle = max_idle
        self.last_request = time.monotonic()
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Handler)

    def handle_error(self, request, client_address) -> None:
        log.exception("audit server: request from %s failed", client_address[0])

    def item_view(self, index: int, rater: str) -> dict:
        row = self.items[index]
        sample = json.loads(row["sample"])
        images = [{"role": role, "path": member, "url": f"/img/{index}/{quote(member, safe='')}"}
                  for role, member in self.images[index]]
        mine = self.store.latest(rater)
        return {"item": index, "total": len(self.items), "id": row["id"], "source": row["source"],
                "modality": row["modality"], "task_family": row["task_family"],
                "sub_task_type": row["sub_task_type"], "message": sample.get("message", []), "images": images,
                "scores": {d.name: mine[(rater, index, d.name)] for d in DIMENSIONS if (rater, index, d.name) in mine}}

    def image(self, index: int, requested: str) -> tuple[bytes, str]:
        """The bytes and media type of the item's image named `requested`, or Refused(404)."""
        members = {member: member for _, member in self.images[index]}
        if requested not in members:
            raise Refused(HTTPStatus.NOT_FOUND, f"item {index} has no image {requested!r}")
        member = members[requested]  # the sample's own string from here on
        row = self.items[index]
        data = self.shards.read(row["shard"], row["key"], member)
        return data, MEDIA_TYPES.get(member.rsplit(".", 1)[-1], "application/octet-stream")

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
    timeout = 120  # an idle connection gives its thread back

    def log_message(self, fmt, *args):  # quiet: the terminal is the operator's, not a log
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, body: bytes, media: str, headers: tuple = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (*SECURITY_HEADERS, *headers):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload, headers: tuple = ()) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _token(self) -> str | None:
        header = self.headers.get("Authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            return value.strip() if scheme.lower() == "bearer" else None
        # by hand, not SimpleCookie: one odd cookie of another app on this host must not hide ours
        for header in self.headers.get_all("Cookie") or []:
            for pair in header.split(";"):
                name, _, value = pair.strip().partition("=")
                if name == COOKIE:
                    return value
        return None

    def _signed_in(self) -> str:
        rater = self.server.invitations.rater_for(self._token())
        if rater is None:
            raise Refused(HTTPStatus.UNAUTHORIZED, "sign in with the link from your invitation "
                                                   "(`unimed audit invite`); this token is missing, wrong or revoked")
        return rater

    def _cookie(self, value: str, seconds: int) -> tuple:
        secure = "; Secure" if self.headers.get("X-Forwarded-Proto", "").lower() == "https" else ""
        return (("Set-Cookie", f"{COOKIE}={value}; Path=/; Max-Age={seconds}; HttpOnly; SameSite=Strict{secure}"),)

    def _item_index(self, text: str) -> int:
        if not ITEM_INDEX.fullmatch(text) or int(text) >= len(self.server.items):
            raise Refused(HTTPStatus.NOT_FOUND, f"no item {text!r}; items are 0 to {len(self.server.items) - 1}")
        return int(text)

    def _read_body(self) -> bytes:
        """The whole POST body, read before any answer so the connection stays in step."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        if not 0 <= length <= MAX_BODY:
            if 0 < length <= DRAINED_BODY:  # read it all, so the client is not reset before it hears why
                self.rfile.read(length)
            self.close_connection = True
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a body of 0 to {MAX_BODY} bytes, please")
        return self.rfile.read(length)

    def _json_body(self, raw: bytes) -> dict:
        if self.headers.get_content_type() != "application/json":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON (Content-Type: application/json)")
        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Refused(HTTPStatus.BAD_REQUEST, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused(HTTPStatus.BAD_REQUEST, "expected a JSON object such as {item, dimension, score}")
        return body

    @staticmethod
    def _only_self(rater: str, named: list) -> None:
        """403 when a request names a rater other than the signed-in one."""
        for other in named:
            if other != rater:
                raise Refused(HTTPStatus.FORBIDDEN, f"signed in as {rater!r}; you cannot read or write as {other!r}")

    def do_GET(self):  # noqa: N802
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def _handle(self, method: str) -> None:
        self.server.last_request = time.monotonic()
        url = urlsplit(self.path)
        try:
            raw = self._read_body() if method == "POST" else b""
            if method == "GET" and url.path == "/":
                return self._send(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
            rater = self._signed_in()
            body = self._json_body(raw) if method == "POST" else {}
            self._only_self(rater, parse_qs(url.query).get("rater", []))
            if "rater" in body:
                self._only_self(rater, [body["rater"]])
            # split before decoding, so an encoded slash stays inside its segment
            parts = [unquote(segment) for segment in url.path.split("/")[1:]]
            return self._route(method, parts, rater, body)
        except Refused as err:
            headers = (("WWW-Authenticate", 'Bearer realm="unimed audit"'),) if err.status == 401 else ()
            return self._json(err.status, {"error": str(err)}, headers)
        except AuditError as err:
            return self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(err)})
        except (BrokenPipeError, ConnectionResetError):  # the client left; nobody to answer
            self.close_connection = True
        except FileNotFoundError as err:  # an image missing from its shard: the detail is for the operator
            log.error("%s %s: %s", method, url.path, err)
            return self._json(HTTPStatus.NOT_FOUND, {"error": "this image is missing from the build's shards"})
        except OSError as err:  # a full or failing disk: nothing acknowledged, the rater is told
            log.error("%s %s failed: %s", method, url.path, err)
            return self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"not saved, the server cannot write: {err}"})

    def _route(self, method: str, parts: list[str], rater: str, body: dict) -> None:
        server = self.server
        if (method, parts) == ("GET", ["api", "session"]):
            return self._json(HTTPStatus.OK, {"rater": rater})
        if (method, parts) == ("POST", ["api", "session"]):
            return self._json(HTTPStatus.OK, {"rater": rater}, self._cookie(self._token(), COOKIE_SECONDS))
        if (method, parts) == ("POST", ["api", "signout"]):
            return self._json(HTTPStatus.OK, {"rater": None}, self._cookie("", 0))
        if (method, parts) == ("GET", ["api", "meta"]):
            return self._json(HTTPStatus.OK, {
                "total": len(server.items), "build": server.build_dir.name, "rater": rater,
                "dimensions": [{"name": d.name, "title": d.title, "low": d.low, "high": d.high} for d in DIMENSIONS]})
        if method == "GET" and len(parts) == 3 and parts[:2] == ["api", "item"]:
            return self._json(HTTPStatus.OK, server.item_view(self._item_index(parts[2]), rater))
        if (method, parts) == ("GET", ["api", "progress"]):
            return self._json(HTTPStatus.OK, server.progress(rater))
        if (method, parts) == ("POST", ["api", "answer"]):
            entry = server.store.add(rater, body.get("item"), body.get("dimension"), body.get("score"),
                                     n_items=len(server.items))
            return self._json(HTTPStatus.OK, {"saved": entry, "progress": server.progress(rater)})
        if method == "GET" and len(parts) == 3 and parts[0] == "img":
            data, media = server.image(self._item_index(parts[1]), parts[2])
            return self._send(HTTPStatus.OK, data, media)
        raise Refused(HTTPStatus.NOT_FOUND, f"no such page: {method} /{'/'.join(parts)}")


def serve(build_dir: Path, host: str, port: int, max_idle: float = 0) -> AuditServer:
    return AuditServer(build_dir, host, port, max_idle)
