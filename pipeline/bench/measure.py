"""What the benchmarks count about a process they spawned: wall time from spawn, peak summed PSS of its
process tree, the peak RSS of the process itself (its kernel high-water mark, VmHWM: the driver's own
memory, Ray's workers not included), bytes it wrote and CPU seconds it used (per process `/proc/<pid>/io`
write_bytes and user + system time, last value seen of each process, dead ones included), and the peak size
of a folder, all sampled in one thread.

Ray's workers are children of the raylet, which the build's driver starts: they are in the tree. Ray's
object store lives in /dev/shm and is not a block device, so its writes are not in write_bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def folder_bytes(root: Path) -> int:
    """Bytes of the regular files under `root` (apparent sizes; missing root = 0)."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:  # removed while we looked (a tmp file renamed)
                continue
    return total


def high_water_mark(pid: int) -> int:
    """Peak resident set size of a live process in bytes (VmHWM in /proc/<pid>/status); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


@dataclass
class TreeMeter:
    """Samples process `pid` and its descendants every `interval` s until stopped."""

    pid: int
    watch: Path | None = None
    interval: float = 0.1
    peak_pss: int = 0
    peak_rss: int = 0  # the root process's VmHWM, last value seen (it only grows)
    peak_folder: int = 0
    written: dict[int, int] = field(default_factory=dict)  # pid -> last write_bytes seen
    cpu: dict[int, float] = field(default_factory=dict)  # pid -> last user + system seconds seen
    names: dict[int, str] = field(default_factory=dict)  # pid -> its process name when last seen
    pss_by_name: dict[str, list[int]] = field(default_factory=dict)  # at the peak: name -> [summed PSS, processes]
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        pss, by_name = 0, {}
        for process in tree:
            try:
                with process.oneshot():
                    own = process.memory_full_info().pss
                    pss += own
                    self.names[process.pid] = process.name()
                    entry = by_name.setdefault(self.names[process.pid], [0, 0])
                    entry[0] += own
                    entry[1] += 1
                    self.written[process.pid] = process.io_counters().write_bytes
                    times = process.cpu_times()
                    self.cpu[process.pid] = times.user + times.system
            except psutil.Error:
                continue
        if pss > self.peak_pss:
            self.peak_pss, self.pss_by_name = pss, by_name
        self.peak_rss = max(self.peak_rss, high_water_mark(self.pid))
        if self.watch is not None:
            self.peak_folder = max(self.peak_folder, folder_bytes(self.watch))

    @property
    def bytes_written(self) -> int:
        return sum(self.written.values())

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())

    def cpu_by_name(self) -> dict[str, float]:
        """CPU seconds by process name (a Ray worker under the name it had last: its last task's)."""
        out: dict[str, float] = {}
        for pid, seconds in self.cpu.items():
            out[self.names.get(pid, "?")] = out.get(self.names.get(pid, "?"), 0.0) + seconds
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_measured(command: list[str], watch: Path | None = None, env: dict | None = None,
                 interval: float = 0.1) -> dict:
    """Spawn `command`, meter its tree until it exits; its last stdout line, if JSON, is returned too.

    The clock starts before the spawn: interpreter start, imports and Ray's start are counted.
    """
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    with TreeMeter(process.pid, watch, interval) as meter:
        stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    meter.sample()  # the folder as the command left it
    if process.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(command[:4])} ... exited {process.returncode}: {tail}")
    lines = stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {}
    return {"seconds": seconds, "peak_pss": meter.peak_pss, "peak_rss": meter.peak_rss,
            "bytes_written": meter.bytes_written,
            "root_written": meter.written.get(process.pid, 0), "peak_folder": meter.peak_folder,
            "cpu_seconds": meter.cpu_seconds, "cpu_by_name": meter.cpu_by_name(), "peak_pss_by_name": meter.pss_by_name,
            "result": result}
