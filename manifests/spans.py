"""Where a build's time goes: named spans that every process of a build records about itself.

Off unless the environment variable `UNIMED_SPANS` names a local folder; then each process (the driver,
every Ray worker) appends its spans to `<folder>/spans-<host>-<pid>.jsonl`, one JSON object a line::

    {"step": "decode", "pid": 123, "start": 1718000000.12, "seconds": 0.0132, "self_seconds": 0.0110,
     "self_cpu": 0.0108, "depth": 1, "items": 1}

`self_seconds` is the span's wall time minus the spans opened inside it (in the same thread), so the self
times of one process never count a second twice and sum to at most its wall time; `self_cpu` is the same
for the thread's CPU time (a span that waits, for Ray to start or for a disk, has less CPU than wall).
Ray workers inherit the variable from the process that starts Ray (`ray.init` in the driver); on a
cluster pass it in the job's runtime environment. A span costs a few microseconds; when recording is off, `span` returns one shared
no-op context.

Spans are written when the outermost span of a process closes (at most every `FLUSH_SECONDS`) and when a
task calls `flush()` at its end, so a worker that Ray reuses or kills loses at most its last seconds.
`STEPS` names the steps the build records (`name.*`: one step per stage or check); pipeline/bench/build.py
turns them into its breakdown.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

ENV = "UNIMED_SPANS"
FLUSH_SECONDS = 2.0

#: The steps a build records, in the order the breakdown prints them: (step, what it covers).
STEPS: tuple[tuple[str, str], ...] = (
    ("start_up", "interpreter start and imports, until the build's code runs (the bench's child)"),
    ("ray_start", "ray.init"),
    ("listing", "the adapters list their work units and the inputs' fingerprints (driver)"),
    ("adapter", "an adapter's own work per record: parsing annotations, building records"),
    ("read", "reading an input file's bytes"),
    ("decode", "decoding pixels: a JPEG header and its reduced (draft) decode, or a full decode"),
    ("image_facts", "the facts of decoded pixels: pixel hash and intensity spread"),
    ("check.resolution", "size rules"),
    ("check.image_quality", "blank-image rule"),
    ("check.text_quality", "text cleaning and text rules"),
    ("decide", "thresholds over the score columns"),
    ("resize", "downscaling an image over the loaders' limits (its decode counted under decode)"),
    ("stage.*", "a stage's own work outside the steps above (task builders, near-duplicate hashes, models)"),
    ("serialise", "pickling records between the steps of the Ray pipeline"),
    ("encode", "encoding pixels (PNG) for a shard"),
    ("write", "writing pieces and staged rows (tar and Parquet, to storage)"),
    ("finalise", "global rules, shards, manifest, stats (driver)"),
    ("shutdown", "ray.shutdown"),
)

_local = threading.local()
_lock = threading.Lock()
_buffer: list[dict] = []
_last_flush = [time.monotonic()]


def folder() -> str | None:
    """The folder spans go to, or None when recording is off."""
    return os.environ.get(ENV) or None


def enabled() -> bool:
    return folder() is not None


class _Span:
    __slots__ = ("step", "items", "start", "cpu", "wall", "children", "children_cpu")

    def __init__(self, step: str, items: int):
        self.step, self.items, self.children, self.children_cpu = step, items, 0.0, 0.0

    def __enter__(self):
        stack = _stack()
        stack.append(self)
        self.wall, self.start, self.cpu = time.time(), time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc):
        seconds, cpu = time.perf_counter() - self.start, time.thread_time() - self.cpu
        stack = _stack()
        stack.pop()
        if stack:
            stack[-1].children += seconds
            stack[-1].children_cpu += cpu
        _append(self.step, self.wall, seconds, seconds - self.children, cpu - self.children_cpu, len(stack),
                self.items)
        if not stack and time.monotonic() - _last_flush[0] >= FLUSH_SECONDS:
            flush()
        return False


_OFF = nullcontext()


def span(step: str, items: int = 0):
    """`with span("decode"):` records the block's time under `step` (when recording is on)."""
    if not enabled():
        return _OFF
    return _Span(step, items)


def record(step: str, start_wall: float, seconds: float, cpu: float, items: int = 0) -> None:
    """A span measured elsewhere (a process's start-up, before this module could time it)."""
    if enabled():
        _append(step, start_wall, seconds, seconds, cpu, len(_stack()), items)


@contextmanager
def task():
    """Around a unit of work that ends a task (a Ray Data batch): its spans are written when it ends."""
    try:
        yield
    finally:
        if enabled():
            flush()


def timed_iter(iterable, step: str):
    """Yield from `iterable`, timing each step of it (its own code, not the consumer's) as `step`."""
    if not enabled():
        yield from iterable
        return
    iterator = iter(iterable)
    while True:
        with _Span(step, 1):
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


def flush() -> None:
    """Append the buffered spans to this process's file."""
    where = folder()
    with _lock:
        lines, _buffer[:] = list(_buffer), []
        _last_flush[0] = time.monotonic()
    if not lines or where is None:
        return
    path = Path(where, f"spans-{socket.gethostname()}-{os.getpid()}.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(line) + "\n" for line in lines))


def read(where: str | Path) -> list[dict]:
    """Every span recorded under `where`, from all processes."""
    spans = []
    for path in sorted(Path(where).glob("spans-*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            spans.extend(json.loads(line) for line in handle if line.strip())
    return spans


def _stack() -> list[_Span]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def _append(step: str, start_wall: float, seconds: float, self_seconds: float, self_cpu: float, depth: int,
            items: int) -> None:
    with _lock:
        _buffer.append({"step": step, "pid": os.getpid(), "start": round(start_wall, 6), "seconds": seconds,
                        "self_seconds": self_seconds, "self_cpu": self_cpu, "depth": depth, "items": items})


atexit.register(lambda: flush() if enabled() else None)
