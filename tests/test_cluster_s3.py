"""A build on a 3-node Ray cluster into s3:// on a local S3 server (moto), killed once and rerun, against a
local single-node build of the same sources; then `unimed query`, `unimed export` and the loader on it.
And (issue 30) stage 1 with alignment, stage 2 and stage 3 read from sources on the S3 server into s3://,
byte for byte the same as from and into local folders, then rethreshold, report, release and audit sample
on the s3:// build, with the S3 requests counted from the server's access log.

The cluster is Ray's own `ray.cluster_utils.Cluster` (head + 2 nodes on this machine, each with a custom
resource: scorer, reader, writer); the S3 server is moto's, on 127.0.0.1 and a free port, stopped at the end.
Wall times of both builds are printed (`pytest -s`), never asserted. The local build runs with
RAY_ADDRESS=local so that it starts its own single-node Ray rather than join the test cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from manifests import storage
from manifests.query import open_build
from manifests.shards import list_shards, relative_shard, shard_locations
from sources.samples import write_sample_tree
from tests.conftest import REPO

pytest.importorskip("moto.server", reason="moto[server] is a dev extra: pip install -e '.[dev]'")
pytest.importorskip("s3fs", reason="s3fs is a dev extra: pip install -e '.[dev]'")

BUCKET, RECIPE = "unimed-test", "cluster"
SOURCES = [{"name": "slake", "splits": ["train"], "options": {"items_per_unit": 2}},
           {"name": "medqa", "splits": ["train"]}]
PLACEMENT = {"read": {"reader": 0.5}, "score": {"scorer": 0.5}, "write": {"writer": 0.5}}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 in server mode on loopback; the usual AWS_* variables point every client (and Ray worker) at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        fs, _ = storage.filesystem(f"s3://{BUCKET}")
        fs.mkdir(BUCKET)
        yield env
    server.stop()


@pytest.fixture(scope="module")
def cluster(s3_server):
    """Head (scorer) + a reader node + a writer node, started after the S3 variables so every raylet has them."""
    import tempfile

    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(REPO))
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # Cluster records its address in <RAY_TMPDIR>/ray/ray_current_cluster, where any other plain ray.init()
        # on this machine would find and join it: a private folder keeps it to this test (short: socket paths).
        patch.setenv("RAY_TMPDIR", tempfile.mkdtemp(prefix="rc"))
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "resources": {"scorer": 4},
                                                               "include_dashboard": False})
        nodes.add_node(num_cpus=2, resources={"reader": 4})
        nodes.add_node(num_cpus=2, resources={"writer": 4})
        nodes.wait_for_nodes()
        yield nodes
        nodes.shutdown()


def _recipe(path: Path, placement: dict | None) -> Path:
    data = {"name": RECIPE, "sources": SOURCES, "shards": {"max_samples": 3}, "execution": {"batch_size": 4}}
    if placement:
        data["execution"]["placement"] = placement
    path.write_text(yaml.safe_dump(data))
    return path


def _build_command(recipe: Path, root: Path, out: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "build", "--recipe", str(recipe), "--sources-root", str(root),
            "--out", out, "--quiet"]


def _env(**extra) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    return {**env, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **extra}


def _staged(fs, prefix: str) -> list[str]:
    return storage.glob(fs, storage.join(prefix, RECIPE, ".state", "staging", "*", "*.parquet"))


def _manifest_rows(build) -> list[tuple]:
    return open_build(build).execute(
        "SELECT id, status, reason, shard, key, content_hash FROM records ORDER BY id").fetchall()


def _task_nodes(address: str) -> dict[str, set[str]]:
    """Ray Data operator name -> the node ids its tasks ran on, from the cluster's task events (both runs)."""
    code = (
        "import json, ray\n"
        "from ray._private import state\n"
        f"ray.init(address={address!r}, logging_level='ERROR')\n"
        "seen = {}\n"
        "for event in state.state._get_all_task_events():\n"
        "    node = event.state_updates.node_id.hex()\n"
        "    if node:\n"
        "        seen.setdefault(event.task_info.name, set()).add(node)\n"
        "nodes = {key: node['NodeID'] for node in ray.nodes() for key in ('scorer', 'reader', 'writer')\n"
        "         if key in node['Resources']}\n"
        "print(json.dumps({'tasks': {k: sorted(v) for k, v in seen.items()}, 'nodes': nodes}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # 3.5 to 6 minutes on 2 shared cores: three Ray nodes, two builds, query, export, loader
def test_cluster_build_to_s3_killed_and_rerun_equals_a_local_build(s3_server, cluster, tmp_path):
    root = tmp_path / "src"
    write_sample_tree(root, [entry["name"] for entry in SOURCES])
    url = f"s3://{BUCKET}/x"
    fs, prefix = storage.filesystem(url)
    command = _build_command(_recipe(tmp_path / "cluster.yaml", PLACEMENT), root, url)
    on_cluster = _env(RAY_ADDRESS=cluster.address)

    log = tmp_path / "killed.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=on_cluster, start_new_session=True, stdout=output, stderr=output)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not _staged(fs, prefix) and process.poll() is None:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert _staged(fs, prefix), f"the killed build staged nothing before it was killed: {log.read_text()[-2000:]}"
    assert not storage.exists(fs, storage.join(prefix, RECIPE, "stats.json")), "killed after it had finished"

    started = time.monotonic()
    rerun = subprocess.run(command, env=on_cluster, capture_output=True, text=True, timeout=300)
    cluster_seconds = time.monotonic() - started
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    started = time.monotonic()
    local = subprocess.run(_build_command(_recipe(tmp_path / "local.yaml", None), root, str(tmp_path / "local")),
                           env=_env(RAY_ADDRESS="local"), capture_output=True, text=True, timeout=300)
    local_seconds = time.monotonic() - started
    assert local.returncode == 0, local.stderr[-3000:]
    print(f"\nwall time: 3-node cluster rerun into s3:// {cluster_seconds:.1f}s (after a kill); "
          f"single-node local build {local_seconds:.1f}s")

    remote_build, local_build = f"{url}/{RECIPE}", tmp_path / "local" / RECIPE
    rows = _manifest_rows(remote_build)
    assert rows == _manifest_rows(local_build) and any(row[1] == "kept" for row in rows)
    kept = {row[0] for row in rows if row[1] == "kept"}
    assert {row[0] for row in _manifest_rows(local_build) if row[1] == "kept"} == kept
    remote_shards = {relative_shard(remote_build, u): hashlib.sha256(storage.read_bytes(fs, storage.filesystem(u)[1]))
                     .hexdigest() for u in shard_locations(remote_build)}
    local_shards = {relative_shard(local_build, p): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in list_shards(local_build)}
    assert remote_shards == local_shards and len(remote_shards) > 1
    for name in ("stats.json", "config.resolved.yaml", "README.md"):
        assert storage.exists(fs, storage.join(prefix, RECIPE, name)), name
    leftovers = [p for p in fs.find(storage.join(prefix, RECIPE)) if p.endswith(".tmp")]
    assert leftovers == []

    # the stages really ran where the recipe placed them
    spread = _task_nodes(cluster.address)
    nodes, tasks = spread["nodes"], spread["tasks"]
    assert len(set(nodes.values())) == 3
    read_ops = [name for name in tasks if "expand_units" in name]
    write_ops = [name for name in tasks if "write_staging_batch" in name]
    score_ops = [name for name in tasks if "run_task_stage" in name]
    assert read_ops and write_ops and score_ops, sorted(tasks)
    assert {node for name in read_ops for node in tasks[name]} == {nodes["reader"]}, spread
    assert {node for name in score_ops for node in tasks[name]} == {nodes["scorer"]}
    assert {node for name in write_ops for node in tasks[name]} <= {nodes["writer"]}
    assert {node for name in tasks if "write_shard" in name for node in tasks[name]} <= {nodes["writer"]}

    _query_export_and_loader(remote_build, local_build, tmp_path)


def _query_export_and_loader(remote_build: str, local_build: Path, tmp_path: Path) -> None:
    sql = "SELECT source, status, count(*) AS n FROM records GROUP BY ALL ORDER BY ALL"
    answers = []
    for build in (remote_build, str(local_build)):
        query = subprocess.run([sys.executable, "-m", "pipeline.cli", "query", build, sql, "--format", "json"],
                               env=_env(), capture_output=True, text=True, timeout=120)
        assert query.returncode == 0, query.stderr[-2000:]
        answers.append(json.loads(query.stdout))
    assert answers[0] == answers[1] and answers[0]

    exported = []
    for name, build in (("remote", remote_build), ("local", str(local_build))):
        out = tmp_path / f"export-{name}"
        export = subprocess.run([sys.executable, "-m", "pipeline.cli", "export", "--format", "unimedvl", build,
                                 "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=120)
        assert export.returncode == 0, export.stderr[-2000:]
        exported.append({p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in sorted(out.rglob("*")) if p.is_file()})
    assert exported[0] == exported[1] and any(name.endswith(".jsonl") for name in exported[0])

    from pipeline.curriculum.index import build_index
    from pipeline.curriculum.loader import make_loader

    remote_index, local_index = build_index([remote_build]), build_index([local_build])
    assert remote_index.keys.to_pylist() == local_index.keys.to_pylist()
    assert list(remote_index.family) == list(local_index.family) and len(remote_index) > 0
    batches = [next(iter(make_loader([build], scale=1e-4, batch_size=4, rank=0, world_size=1)))
               for build in (remote_build, local_build)]
    assert batches[0]["key"] == batches[1]["key"] and len(batches[0]["key"]) == 4


# Issue 30: every recipe from sources on S3 into S3, byte for byte the same as from and into local folders ----------


class RequestLog(logging.Handler):
    """Counts the S3 server's requests (werkzeug's access log) by method and by the first part of the key."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.requests: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = next((arg for arg in record.args or () if isinstance(arg, str) and arg.count(" ") >= 2), "")
        method, _, rest = line.partition(" ")
        if method in ("GET", "HEAD", "PUT", "POST", "DELETE"):
            self.requests.append((method, rest.rsplit(" ", 1)[0]))

    def count(self, marker: str) -> Counter:
        """Requests whose path or query names `marker` (a prefix such as /bucket/src or prefix=src), by method."""
        return Counter(method for method, target in self.requests if marker in target)


@pytest.fixture
def s3_requests(s3_server):
    server_log = logging.getLogger("werkzeug")
    handler, level, propagate = RequestLog(), server_log.level, server_log.propagate
    server_log.setLevel(logging.INFO)
    server_log.propagate = False  # counted, not printed
    server_log.addHandler(handler)
    yield handler
    server_log.removeHandler(handler)
    server_log.setLevel(level)
    server_log.propagate = propagate


def _unimed(*args: str, env: dict, timeout: int = 900) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"unimed {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result, time.monotonic() - started


def _build_outputs(build) -> tuple[list[tuple], dict[str, str], str]:
    """(manifest rows, shard name -> sha256, dataset card) of a build, local or on S3."""
    rows = open_build(build).execute("SELECT * FROM records ORDER BY id").fetchall()
    fs, root = storage.filesystem(build)
    shards = {relative_shard(build, location): hashlib.sha256(storage.read_bytes(fs, storage.filesystem(location)[1]))
              .hexdigest() for location in shard_locations(build)}
    return rows, shards, storage.read_text(fs, storage.join(root, "README.md"))


def _same_build(remote: str, local: Path) -> dict:
    rows, shards, card = _build_outputs(remote)
    local_rows, local_shards, local_card = _build_outputs(local)
    assert rows == local_rows and any(row for row in rows)
    assert shards == local_shards and shards
    assert card == local_card
    return {"records": len(rows), "shards": len(shards)}


@pytest.mark.slow  # 10 to 20 minutes on 2 shared cores: six builds on three Ray nodes, then the commands after a build
def test_every_recipe_from_s3_sources_into_s3_equals_the_local_build(s3_server, cluster, s3_requests, tmp_path):
    root = tmp_path / "src"
    write_sample_tree(root)
    fs, _ = storage.filesystem(f"s3://{BUCKET}")
    fs.put(f"{root}/", f"{BUCKET}/src/", recursive=True)
    sources, out, local_out = f"s3://{BUCKET}/src", f"s3://{BUCKET}/out", tmp_path / "out"
    env = _env(RAY_ADDRESS=cluster.address)  # both builds on the same 3-node cluster: only the storage differs
    _unimed("demo-models", "--out", str(tmp_path / "demo"), env=env)
    stage1 = yaml.safe_load((REPO / "pipeline" / "recipes" / "stage1.yaml").read_text())
    stage1["near_duplicates"]["enabled"] = True  # benchmark hashes and decontamination on the store too
    recipe1 = tmp_path / "stage1.yaml"
    recipe1.write_text(yaml.safe_dump(stage1))
    runs = {
        "stage1": ["--recipe", str(recipe1), "--align", "--models-dir", str(tmp_path / "demo"),
                   "--only", "slake,rocov2,medqa,pmc_vqa"],
        "stage2": ["--recipe", "stage2", "--models-dir", str(tmp_path / "demo"), "--only", "medreason,medthink"],
        "stage3": ["--recipe", "stage3", "--only", "brats,kvasir_seg,bci"],
    }
    timings, found = {}, {}
    for stage, args in runs.items():
        hq = {"stage2": [["--hq-build", f"{out}/stage1"], ["--hq-build", str(local_out / "stage1")]]}.get(stage)
        before = len(s3_requests.requests)
        _, remote_seconds = _unimed("build", *args, "--sources-root", sources, "--out", out, "--quiet",
                                    *(hq[0] if hq else []), env=env)
        requests = s3_requests.requests[before:]
        _, local_seconds = _unimed("build", *args, "--sources-root", str(root), "--out", str(local_out), "--quiet",
                                   *(hq[1] if hq else []), env=env)
        found[stage] = _same_build(f"{out}/{stage}", local_out / stage)
        units = len(open_build(f"{out}/{stage}").execute("SELECT DISTINCT unit_id FROM records").fetchall())
        source_requests = Counter(method for method, target in requests
                                  if "/src/" in target or "prefix=src" in target)
        timings[stage] = (local_seconds, remote_seconds, units, dict(source_requests), len(requests))
    # the builds kept their caches and state on the store: alignment scores, benchmark hashes, HQ subset, CAG replies
    assert fs.isfile(f"{BUCKET}/out/stage1/.state/benchmarks.parquet")
    assert storage.find(fs, f"{BUCKET}/out/stage1/.state/align_cache", ".parquet")
    assert fs.isfile(f"{BUCKET}/out/stage2/.state/hq_selection.parquet")
    assert storage.find(fs, f"{BUCKET}/out/stage2/.state/cag_cache", ".json")
    print("\nlocal folders vs s3:// (moto on loopback), both on the 3-node cluster; wall seconds of `unimed build`:")
    for stage, (local_seconds, remote_seconds, units, source_requests, total) in timings.items():
        print(f"  {stage}: local {local_seconds:.1f}s, s3 {remote_seconds:.1f}s "
              f"({remote_seconds / local_seconds:.2f}x); "
              f"{found[stage]['records']} records, {found[stage]['shards']} shards, {units} units; "
              f"S3 requests {total} in all, on the sources {source_requests} "
              f"({sum(source_requests.values()) / max(units, 1):.1f} per unit)")

    # `unimed score` finds every pair in the cache the build left (on the store, or on disk): no model runs
    wide = {**env, "COLUMNS": "400"}  # one line per message
    for build in (f"{out}/stage1", str(local_out / "stage1")):
        scored, _ = _unimed("score", build, "--models-dir", str(tmp_path / "demo"), env=wide)
        assert " 0 scored now" in scored.stdout + scored.stderr, scored.stdout + scored.stderr
    _same_build(f"{out}/stage1", local_out / "stage1")

    # the commands after a build, on the S3 build and on the local one
    for build in (f"{out}/stage1", str(local_out / "stage1")):
        _unimed("rethreshold", build, "--keep-fraction", "0.6", env=env)
    _same_build(f"{out}/stage1", local_out / "stage1")
    _unimed("report", f"{out}/stage1", env=env)
    assert fs.isfile(f"{BUCKET}/out/stage1/report/index.html")
    assert storage.find(fs, f"{BUCKET}/out/stage1/report/images", ".png")
    releases = []
    for name, build in (("remote", f"{out}/stage1"), ("local", str(local_out / "stage1"))):
        _unimed("release", build, "--out", str(tmp_path / f"release-{name}"), env=env)
        _unimed("audit", "sample", build, "--n", "12", "--seed", "3", env=env)
        folder = tmp_path / f"release-{name}"
        releases.append({p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in sorted(folder.rglob("*")) if p.is_file()})
    stats = [json.loads((tmp_path / f"release-{name}" / "stats.json").read_text()) for name in ("remote", "local")]
    assert stats[0] == stats[1], {key: (stats[0].get(key), stats[1].get(key)) for key in stats[0]
                                  if stats[0].get(key) != stats[1].get(key)}
    assert releases[0] == releases[1] and "release.json" in releases[0]
    from pipeline.audit.sample import read_sample

    assert read_sample(f"{out}/stage1") == read_sample(local_out / "stage1")
