"""A small finished build written in code, in the real output layout (manifest Parquet with the manifest
schema, one WebDataset shard, stats.json, config.resolved.yaml), for the report and audit tests; an HTTP call
and a self-stopping `unimed audit serve` subprocess on loopback; Fleiss' kappa and Krippendorff's alpha by hand."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from fractions import Fraction
from itertools import permutations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image as PILImage

from manifests.schema import MANIFEST_SCHEMA

# (modality, task_family, kept count): 60/30/10 by modality; `interleaved` only once, in mri
LAYOUT = (("chest_xray", "i2t", 40), ("chest_xray", "t2i", 20), ("ct", "i2t", 30), ("mri", "i2t", 9),
          ("mri", "interleaved", 1))


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, size=(32, 40), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_build(root: Path) -> Path:
    build = Path(root) / "stage1"
    (build / "manifest").mkdir(parents=True)
    (build / "shards").mkdir()
    rows, n = [], 0
    with tarfile.open(build / "shards" / "stage1-000000.tar", "w") as tar:
        for modality, family, count in LAYOUT:
            for i in range(count):
                n += 1
                rid = f"src{n % 3}/train/{modality}-{family}-{i:03d}"
                key = rid.replace("/", "_")
                role = "out" if family == "t2i" else "in"
                message = [{"from": "human", "value": f"<image>\nDescribe {modality} image {i}."},
                           {"from": "gpt", "value": f"A {modality} image, finding number {i}."}]
                sample = {"id": rid, "modality": modality, "dataset": f"src{n % 3}", "split": "train",
                          "main_task_type": "image_understanding", "sub_task_type": "caption",
                          "input_img": [] if role == "out" else [{"path": "in0.png", "height": 32, "width": 40}],
                          "output_img": [{"path": "out0.png", "height": 32, "width": 40}] if role == "out" else [],
                          "message": message}
                _add(tar, f"{key}.json", json.dumps(sample).encode())
                _add(tar, f"{key}.{role}0.png", _png(n))
                score = 0.5 + (n % 50) / 100
                rows.append({"id": rid, "source": f"src{n % 3}", "dataset": f"src{n % 3}", "split": "train",
                             "modality": modality, "task_family": family, "main_task_type": "image_understanding",
                             "sub_task_type": "caption", "licence": "CC BY 4.0", "access": "open",
                             "status": "kept", "shard": "stage1-000000.tar", "key": key, "width": 40, "height": 32,
                             "text_chars": 30 + i, "align_s": score, "align_m": score / 2, "align_final": score * 1.5,
                             "sample": json.dumps(sample)})
    for i in range(6):  # rejected: two by the adapter, two coarse, two under the cut
        reason = ("missing_file", "missing_file", "image_too_small", "text_too_long",
                  "alignment_below_cut", "alignment_below_cut")[i]
        rows.append({"id": f"src0/train/rejected-{i}", "source": "src0", "dataset": "src0", "split": "train",
                     "modality": "ct", "task_family": "i2t", "licence": "CC BY 4.0", "access": "open",
                     "status": "rejected", "reason": reason, "detail": f"test reason {i}",
                     "align_final": 0.3 + i / 100 if reason == "alignment_below_cut" else None,
                     "align_s": 0.2 if reason == "alignment_below_cut" else None,
                     "align_m": 0.1 if reason == "alignment_below_cut" else None,
                     "sample": json.dumps({"id": f"src0/train/rejected-{i}", "message": [
                         {"from": "human", "value": "What is this?"}, {"from": "gpt", "value": f"rejected {i}"}],
                         "input_img": [{"path": "in0.png"}], "output_img": []})})
    table = pa.Table.from_pylist([{c: r.get(c) for c in MANIFEST_SCHEMA.names} for r in rows], schema=MANIFEST_SCHEMA)
    pq.write_table(table, build / "manifest" / "part-00000.parquet")
    stats = {"kept": n, "rejected": 6, "shards": 1, "alignment_demo_weights": True,
             "alignment_models": {"e5": {"demo": True, "model": "intfloat/e5-large-v2", "path": "/demo/e5"}}}
    (build / "stats.json").write_text(json.dumps(stats))
    (build / "config.resolved.yaml").write_text("name: stage1\nversion: 1\n")
    return build


REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, token: str | None = None, cookie: str | None = None,
         body=None, headers: dict | None = None, timeout: float = 10) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request to 127.0.0.1:port with the path sent exactly as given (no normalising of `..`)."""
    sent = {}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        sent["Cookie"] = f"unimed_audit={cookie}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def serve_process(build: Path, port: int, max_idle: float = 120) -> subprocess.Popen:
    """`unimed audit serve BUILD --port P --max-idle S` as a subprocess (it stops itself when idle), once its
    page answers; AssertionError with its stderr if it exits, or after 60 s."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "audit", "serve", str(build), "--port", str(port),
                             "--max-idle", str(max_idle)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if call(port, "GET", "/", timeout=1)[0] == 200:
                return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode()) from None
            time.sleep(0.2)
    proc.kill()
    proc.wait(timeout=30)
    raise AssertionError("audit serve did not come up in 60 s")


def fleiss_by_hand(ratings: list[list[int]], categories: list[int]) -> Fraction:
    """Textbook Fleiss' kappa, items x raters with no gaps: mean per-item agreement against chance agreement from
    the pooled category proportions."""
    m, items = len(ratings[0]), len(ratings)
    counts = [[row.count(c) for c in categories] for row in ratings]
    p_bar = sum(Fraction(sum(x * x for x in row) - m, m * (m - 1)) for row in counts) / items
    p_e = sum(Fraction(sum(row[j] for row in counts), items * m) ** 2 for j in range(len(categories)))
    return (p_bar - p_e) / (1 - p_e)


def alpha_by_hand(ratings: list[list[int]], level: str) -> Fraction:
    """Krippendorff's alpha, items x raters with no gaps: the coincidence matrix (each ordered pair of values
    within an item weighs 1/(m-1)) and the nominal or ordinal (rank-based) distance."""
    coincidences: dict[tuple[int, int], Fraction] = {}
    for row in ratings:
        for a, b in permutations(row, 2):
            coincidences[a, b] = coincidences.get((a, b), 0) + Fraction(1, len(row) - 1)
    n_c: dict[int, Fraction] = {}
    for (a, _), weight in coincidences.items():
        n_c[a] = n_c.get(a, 0) + weight
    n = sum(n_c.values())

    def delta(c: int, k: int) -> Fraction:
        if level == "nominal":
            return Fraction(int(c != k))
        low, high = min(c, k), max(c, k)
        return (sum(n_c.get(g, 0) for g in range(low, high + 1)) - (n_c[c] + n_c[k]) / 2) ** 2

    observed = sum(w * delta(c, k) for (c, k), w in coincidences.items())
    expected = sum(n_c[c] * n_c[k] * delta(c, k) for c in n_c for k in n_c)
    return 1 - (n - 1) * observed / expected
