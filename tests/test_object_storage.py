"""Object storage all the way (issue 30), the fast part: every cache and state file of a build and every source
adapter on fsspec's in-memory store (`memory://`), the same code that serves `s3://`.

The builds themselves on a local S3 server and a 3-node cluster are in tests/test_cluster_s3.py (slow).
"""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import fsspec
import pyarrow as pa
import pytest

from filters.alignment.cache import (CACHE_INDEX, NO_INDEX, cache_relation, compact_cache, index_version, prepare,
                                     read_cache, write_cache)
from filters.alignment.pairs import KEY, TODO, scorer_digest
from filters.cag.steps import ReplyCache
from manifests import storage
from pipeline.engine.benchmarks import BENCHMARK_SCHEMA, load_benchmarks, write_benchmarks
from pipeline.config import load_recipe
from pipeline.engine.inputs import StatCache, unit_fingerprint
from sources import SOURCES
from sources.io import files
from sources.io.files import source_path
from sources.samples import HUB_SAMPLE_WRITERS, SAMPLE_WRITERS, write_sample_tree
from tests.test_alignment import cached_batch, cpu_settings, make_record


@pytest.fixture
def memory_root() -> str:
    """A fresh prefix on the process-wide in-memory filesystem, removed afterwards."""
    prefix = f"/t{uuid.uuid4().hex[:12]}"
    yield f"memory://{prefix}"
    fsspec.filesystem("memory").rm(prefix, recursive=True) if fsspec.filesystem("memory").exists(prefix) else None


def _upload(local: Path, url: str) -> None:
    fs, path = storage.filesystem(url)
    fs.put(f"{local}/", f"{path}/", recursive=True)


# Caches and state ----------------------------------------------------------------------------------------


def test_alignment_cache_round_trip_on_a_store(memory_root, monkeypatch, tmp_path):
    settings = cpu_settings()
    cache = storage.join(memory_root, ".state", "align_cache")
    digest = scorer_digest(settings)
    first = cached_batch([(1, 0.1), (2, 0.2)], settings)
    assert write_cache(first, settings, cache) == 2
    fs, folder = storage.filesystem(storage.join(cache, digest))
    assert len(storage.glob(fs, storage.join(folder, "*.parquet"))) == 1  # one object per batch
    assert index_version(cache, digest) == NO_INDEX
    assert compact_cache(cache, digest) == 2
    assert storage.glob(fs, storage.join(folder, "*.parquet")) == []  # folded, then deleted
    assert fs.isfile(storage.join(folder, CACHE_INDEX))  # the table is published on the store itself

    # a worker probes a local copy, fetched once per version: the lookups of later batches make no request
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    fetched = []
    original = type(fs).get_file
    monkeypatch.setattr(type(fs), "get_file", lambda self, *a, **k: fetched.append(a[0]) or original(self, *a, **k))
    version = index_version(cache, digest)
    keys = [record.scores[KEY] for record in first]
    for _ in range(3):
        rows = {row["key"]: row for row in read_cache(cache, digest, keys + ["0" * 32], version)}
        assert set(rows) == set(keys) and rows[keys[1]]["align_s_raw"] == pytest.approx(0.2)
    assert len(fetched) == 1

    # a later batch adds a pair and scores pair 2 again: the first score of a key wins, as on a local disk
    write_cache(cached_batch([(2, 0.9), (3, 0.3)], settings), settings, cache)
    assert compact_cache(cache, digest) == 3
    later = index_version(cache, digest)
    assert later != version
    again = [make_record(2), make_record(3), make_record(4)]
    prepare(again, settings, cache, version=later)
    assert [r.scores[TODO] for r in again] == [False, False, True]
    assert again[0].scores["align_s_raw"] == pytest.approx(0.2)
    assert len(fetched) == 2  # the new version, once

    import duckdb

    con = storage.duckdb_connect(fs, duckdb.connect())
    relation = cache_relation(con, cache, digest)
    assert con.execute(f"SELECT count(DISTINCT key) FROM {relation}").fetchone() == (3,)


def test_cag_replies_round_trip_and_a_batch_is_one_read(memory_root, monkeypatch):
    cache = ReplyCache(storage.join(memory_root, "cag_cache"))
    keys = [f"{i:02x}" + "ab" * 15 for i in range(4)]
    cache.put("describe", keys[0], "a reply", "v1")
    cache.put("describe", keys[2], "another", "v1")
    calls = []
    original = storage.read_many
    monkeypatch.setattr(storage, "read_many", lambda fs, paths: calls.append(len(paths)) or original(fs, paths))
    assert cache.get_many("describe", keys) == {keys[0]: "a reply", keys[2]: "another"}
    assert calls == [4]  # one batched read for the whole batch, never a listing
    assert cache.get("fuse", keys[0]) is None  # each step its own replies
    assert ReplyCache(None).get_many("describe", keys) == {}


def test_benchmark_hashes_round_trip(memory_root):
    table = pa.Table.from_pylist([{"benchmark": "vqa_rad", "item_id": "a", "split": "test", "pixel_hash": "00",
                                   "phash": 5, "text_minhash": b"\x01", "is_slice": False}], schema=BENCHMARK_SCHEMA)
    assert load_benchmarks(memory_root) is None
    write_benchmarks(table, {"slake": "not found"}, memory_root)
    loaded = load_benchmarks(memory_root)
    assert loaded.to_pylist() == table.to_pylist()
    assert b"slake" in loaded.schema.metadata[b"unimed5m.missing"]


def test_read_many_leaves_out_what_is_missing(memory_root, tmp_path):
    for root in (memory_root, str(tmp_path)):
        fs, base = storage.filesystem(root)
        storage.write_bytes(fs, storage.join(base, "a"), b"1")
        assert storage.read_many(fs, [storage.join(base, "a"), storage.join(base, "b")]) == {
            storage.join(base, "a"): b"1"}


# Sources -----------------------------------------------------------------------------------------------------


def _records(cls, root, options: dict | None = None, splits=None) -> list[bytes]:
    found = cls.find_root(root)
    assert found is not None, f"{cls.card.name} not found under {root}"
    adapter = cls(found, options or {}, splits)
    return [pickle.dumps(item.__dict__) for unit in adapter.work_units() for item in adapter.iter_records(unit)]


@pytest.fixture(scope="module")
def sample_on_a_store(tmp_path_factory):
    """The bundled sample tree of every adapter (and its Hub layouts) on disk and on the in-memory store."""
    local = tmp_path_factory.mktemp("sample")
    write_sample_tree(local)
    hub = tmp_path_factory.mktemp("hub")
    for writer in HUB_SAMPLE_WRITERS.values():
        writer(hub)
    url = f"memory:///samples-{uuid.uuid4().hex[:8]}"
    _upload(local, f"{url}/tree")
    _upload(hub, f"{url}/hub")
    yield local, hub, url
    fsspec.filesystem("memory").rm(storage.filesystem(url)[1], recursive=True)


@pytest.mark.parametrize("name", sorted(SAMPLE_WRITERS))
def test_every_adapter_reads_its_sample_from_a_store_as_from_disk(sample_on_a_store, name):
    local, _, url = sample_on_a_store
    remote = source_path(f"{url}/tree")
    assert files.is_remote(remote) and not files.is_remote(local)
    records = _records(SOURCES[name], remote)
    assert records and records == _records(SOURCES[name], local)


@pytest.mark.parametrize("name", sorted(HUB_SAMPLE_WRITERS))
def test_hub_cache_layouts_read_from_a_store(sample_on_a_store, name):
    _, hub, url = sample_on_a_store
    records = _records(SOURCES[name], source_path(f"{url}/hub"))
    assert records and records == _records(SOURCES[name], hub)


# the code paths the bundled recipes switch on by their options (segmentation masks, volume pairs, ...)
RECIPE_OPTIONS = [pytest.param(entry.name, entry.options, list(entry.splits) or None, id=f"{recipe}-{entry.name}")
                  for recipe in ("stage1", "stage2", "stage3") for entry in load_recipe(recipe).sources
                  if entry.options]


@pytest.mark.parametrize(("name", "options", "splits"), RECIPE_OPTIONS)
def test_recipe_options_read_from_a_store_as_from_disk(sample_on_a_store, name, options, splits):
    local, _, url = sample_on_a_store
    records = _records(SOURCES[name], source_path(f"{url}/tree"), options, splits)
    assert records and records == _records(SOURCES[name], local, options, splits)


def test_local_roots_stay_plain_paths(tmp_path):
    """No fsspec on the hot path of a local build: a local root is a pathlib.Path, files open with `open`."""
    root = source_path(str(tmp_path))
    assert type(root) is type(Path(tmp_path)) and not files.is_remote(root)
    (tmp_path / "a.txt").write_text("x")
    with files.open_file(root / "a.txt", "r", encoding="utf-8") as handle:
        assert type(handle).__module__ == "_io"
    with files.local_file(root / "a.txt") as name:
        assert name == str(root / "a.txt")


def test_listing_walk_and_local_copies_on_a_store(memory_root):
    fs, base = storage.filesystem(memory_root)
    for relative in ("d/a.nii.gz", "d/e/b.txt", "c.json"):
        storage.write_bytes(fs, storage.join(base, relative), relative.encode())
    root = source_path(memory_root)
    assert sorted((e.name, e.is_dir()) for e in files.scan(root)) == [("c.json", False), ("d", True)]
    assert files.scan(root / "absent") == []
    walked = [(files.relative_to(folder, root), dirs, names) for folder, dirs, names in files.walk(root)]
    assert walked == [(".", ["d"], ["c.json"]), ("d", ["e"], ["a.nii.gz"]), ("d/e", [], ["b.txt"])]
    with files.local_file(root / "d" / "a.nii.gz") as name:  # a C library gets a real file, suffixes kept
        assert name.endswith(".nii.gz") and Path(name).read_bytes() == b"d/a.nii.gz"
    assert not Path(name).exists()
    with files.open_file(f"{memory_root}/c.json", "r", encoding="utf-8") as handle:
        assert handle.read() == "c.json"


# Input fingerprints --------------------------------------------------------------------------------------


def test_fingerprints_from_one_listing_of_the_store(memory_root, monkeypatch):
    fs, base = storage.filesystem(memory_root)
    for relative, data in (("ds/train.json", b"[1]"), ("ds/images/a.png", b"aa"), ("ds/images/b.png", b"bb")):
        storage.write_bytes(fs, storage.join(base, relative), data)
    listings, listing = [], [False]
    find, info = type(fs).find, type(fs).info

    def counted_find(self, *args, **kwargs):
        listings.append(args[0])
        listing[0] = True
        try:
            return find(self, *args, **kwargs)
        finally:
            listing[0] = False

    def no_stat_per_file(self, *args, **kwargs):
        assert listing[0], "a request per file"
        return info(self, *args, **kwargs)

    monkeypatch.setattr(type(fs), "find", counted_find)
    monkeypatch.setattr(type(fs), "info", no_stat_per_file)
    stats = StatCache(f"{memory_root}/ds")
    states = {path: stats(path) for path in ("train.json", "images/a.png", "images", ".", "missing.png")}
    assert len(listings) == 1  # the prefix is listed once, every path looked up in that listing
    assert states["train.json"].startswith("3@") and states["images/a.png"].startswith("2@")
    assert states["missing.png"] == "-" and states["images"].startswith("dir@")
    monkeypatch.undo()

    storage.write_bytes(fs, storage.join(base, "ds/images/c.png"), b"c")  # a file added to a folder
    storage.write_bytes(fs, storage.join(base, "ds/train.json"), b"[1, 2]")  # an annotation file resized
    again = StatCache(f"{memory_root}/ds")
    assert again("images") != states["images"] and again("train.json") != states["train.json"]
    assert again("images/a.png") == states["images/a.png"]

    adapter = SOURCES["slake"](f"{memory_root}/ds", {}, None)
    from sources.base import WorkUnit

    unit = WorkUnit("slake", "slake/train/00000", "train", (("images/a.png",),))
    assert unit_fingerprint(adapter, unit, StatCache(f"{memory_root}/ds")) == unit_fingerprint(
        adapter, unit, StatCache(f"{memory_root}/ds"))
