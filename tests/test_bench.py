"""The benchmarks' own mechanisms (not their numbers): what they count, and what they generate."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.bench.measure import folder_bytes, run_measured
from pipeline.bench.rethreshold import compare, shard_states

WRITER = """
import json, os, sys, time
path = sys.argv[1]
with open(path, "wb") as handle:
    handle.write(os.urandom(4 << 20))
    handle.flush()
    os.fsync(handle.fileno())
time.sleep(0.6)
os.truncate(path, 1 << 20)
time.sleep(0.3)
print(json.dumps({"done": True}))
"""


def test_run_measured_counts_a_known_write_and_the_folder_peak(tmp_path):
    watched = tmp_path / "out"
    watched.mkdir()
    run = run_measured([sys.executable, "-c", WRITER, str(watched / "blob")], watch=watched, interval=0.05)
    assert run["result"] == {"done": True}
    assert 4 << 20 <= run["bytes_written"] < 6 << 20  # the 4 MiB written, plus the interpreter's own few bytes
    assert run["peak_folder"] == 4 << 20 and folder_bytes(watched) == 1 << 20
    assert run["peak_pss"] > 0 and run["seconds"] >= 0.9


ALLOCATOR = """
import time
block = bytearray(200 << 20)  # touched: resident
del block
time.sleep(0.5)
"""


def test_run_measured_keeps_the_drivers_own_peak_rss():
    run = run_measured([sys.executable, "-c", ALLOCATOR], interval=0.05)
    assert 200 << 20 <= run["peak_rss"] < 400 << 20  # its high-water mark, though freed before the end


def test_run_measured_says_why_a_command_failed(tmp_path):
    with pytest.raises(RuntimeError, match="exited 3: boom"):
        run_measured([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])


def test_folder_bytes_sums_files_below(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "x").write_bytes(b"1" * 10)
    (tmp_path / "a" / "b" / "y").write_bytes(b"1" * 5)
    assert folder_bytes(tmp_path) == 15 and folder_bytes(tmp_path / "missing") == 0


def test_a_shard_rewritten_with_the_same_bytes_counts_as_needless(tmp_path):
    shards = tmp_path / "build" / "shards" / "g"
    shards.mkdir(parents=True)
    for name in ("s0.tar", "s1.tar", "s2.tar"):
        (shards / name).write_bytes(name.encode())
    before = shard_states(tmp_path / "build")
    keys = {"g/s0.tar": frozenset("a"), "g/s1.tar": frozenset("b"), "g/s2.tar": frozenset("c")}
    tmp = shards / ".s1.tmp"
    tmp.write_bytes(b"s1.tar")  # the same bytes, written again
    os.replace(tmp, shards / "s1.tar")
    (shards / "s2.tar").write_bytes(b"other")  # changed, and so were its samples
    counts = compare(before, shard_states(tmp_path / "build"), keys, {**keys, "g/s2.tar": frozenset("cd")})
    assert counts == {"shards_before": 3, "shards_after": 3, "rewritten": 2, "changed": 1, "needless": 1}


def test_generated_manifest_has_the_real_schema_and_reads_through_the_views(tmp_path):
    from manifests.query import open_build
    from manifests.schema import MANIFEST_SCHEMA
    from pipeline.bench.manifest import GROUP_BY, write_manifest

    build = write_manifest(2_000, tmp_path)
    table = pq.read_table(build / "manifest")
    assert table.schema.remove_metadata() == MANIFEST_SCHEMA.remove_metadata() and table.num_rows == 2_000
    con = open_build(build)
    assert sum(n for *_, n, _ in con.execute(GROUP_BY).fetchall()) == 2_000
    kept = con.execute("SELECT sample, shard, key FROM kept LIMIT 1").fetchone()
    assert json.loads(kept[0])["message"][1]["value"] and kept[1].endswith(".tar") and kept[2]
    assert con.execute("SELECT count(*) FROM rejected WHERE reason IS NULL").fetchone()[0] == 0


def test_tiny_build_indexes_from_its_manifest_like_its_tars(tmp_path):
    pytest.importorskip("torch")
    from pipeline.bench.loader import write_tiny_build
    from pipeline.curriculum.index import build_index

    build = write_tiny_build(tmp_path / "tiny", 230, per_shard=40)
    index = build_index([build])
    (build / "manifest" / "part-00000.parquet").unlink()
    scanned = build_index([build])
    assert len(index) == len(scanned) == 230
    assert [index.key(i) for i in range(230)] == [scanned.key(i) for i in range(230)]
    assert (index.family == scanned.family).all() and (index.source == scanned.source).all()
    assert Path(index.shards[index.members(229)[0]]).is_file()
