"""The engine at five million records (issue 26): a unit listing the driver never holds, shards filled to the
recipe's bounds across units, a rerun with nothing changed that stops after listing, a changed unit that
rewrites only its own shards, and output files whose mode follows the umask."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import weakref
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from manifests import storage
from manifests.query import open_build
from manifests.shards import group_of_shard, list_shards
from pipeline.config import load_recipe
from pipeline.engine.build import build
from pipeline.engine.rerun import listing_digest, write_listing
from pipeline.engine.finalize import CutItem, ShardCutter
from pipeline.engine.units import UnitTask
from sources.base import WorkUnit
from tests.conftest import REPO
from tests.test_build import _many_unit_slake
from tests.test_writes_once import shard_state


def _cut(keys: list[str], max_samples: int = 1000, max_bytes: int = 1 << 40, fill: float = 0.92,
         size=lambda key: 100) -> list[tuple[str, ...]]:
    cutter, shards = ShardCutter(max_samples, max_bytes, fill), []
    for key in keys:
        shards += cutter.add(CutItem(key, size(key)))
    shards += cutter.flush()
    return [tuple(item.key for item in shard) for shard in shards]


def test_listing_is_written_as_it_is_listed_never_held():
    alive, peak = [0], [0]

    def tasks(count: int, changed: int | None = None):
        for index in range(count):
            items = tuple(f"img{index}-{i}.jpg" for i in range(50))
            unit = WorkUnit("slake", f"slake/train/{index:05d}", "train", items)
            task = UnitTask("slake", "/data/Slake1.0", "{}", ("train",), unit, "changed" if index == changed else "fp")
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
            weakref.finalize(task, lambda: alive.__setitem__(0, alive[0] - 1))
            yield task

    listing = write_listing(tasks(2_000), rows_per_group=100)
    try:
        assert peak[0] <= 2  # each task is written out (pickled into a row group) before the next is listed
        metadata = pq.read_metadata(listing.path)
        assert (listing.count, metadata.num_rows, metadata.num_row_groups) == (2_000, 2_000, 20)
        fs, _ = storage.filesystem(listing.path)
        assert listing_digest(fs, listing.path) == listing.digest
        same, other = write_listing(tasks(2_000), 100), write_listing(tasks(2_000, changed=1_234), 100)
        assert same.digest == listing.digest != other.digest
        os.unlink(same.path), os.unlink(other.path)
    finally:
        os.unlink(listing.path)


def test_shard_cutter_fills_to_the_bounds_and_cuts_where_the_samples_say():
    keys = [f"rocov2/train/{index // 256:05d}/{index:07d}" for index in range(20_000)]
    shards = _cut(keys)
    assert [key for shard in shards for key in shard] == keys  # order kept, nothing lost or doubled
    assert all(920 <= len(shard) <= 1000 for shard in shards[:-1])  # only the group's last may be partly filled
    # a sample removed or added anywhere changes its own shard, not every shard after it (greedy packing would)
    rng = random.Random(26)
    for _ in range(40):
        index = rng.randrange(len(keys))
        for changed in (keys[:index] + keys[index + 1:], keys[:index] + [keys[index] + "-new"] + keys[index:]):
            assert len(set(_cut(changed)) - set(shards)) <= 2
    # the byte bound: shards of 300-byte samples under 1 MB hold 3,000 to 3,333 of them
    sized = _cut(keys, max_samples=10_000, max_bytes=1_000_000, size=lambda key: 300)
    assert all(0.92 * 1_000_000 <= 300 * len(shard) <= 1_000_000 for shard in sized[:-1])


def test_many_small_units_fill_shards_across_units(ray_session, tmp_path):
    recipe = load_recipe("stage1")
    recipe.sources = [entry for entry in recipe.sources if entry.name == "slake"]
    recipe.sources[0].options = {"items_per_unit": 3}  # 48 units of 3 images (18 questions each)
    recipe.shards.max_samples = 40
    report = build(recipe, tmp_path / "out", _many_unit_slake(tmp_path / "src"), progress=False)
    out = report.out_dir
    assert report.exit_code == 0 and report.units_total == 48
    per_shard = dict(open_build(out).execute("SELECT shard, count(*) FROM kept GROUP BY shard").fetchall())
    units = dict(open_build(out).execute("SELECT shard, count(DISTINCT unit_id) FROM kept GROUP BY shard").fetchall())
    by_group: dict[str, list[int]] = {}
    for name, count in per_shard.items():
        by_group.setdefault(group_of_shard(name), []).append(count)
    for group, counts in by_group.items():
        assert sum(count < 0.92 * 40 for count in counts) <= 1, (group, counts)  # at most one partly filled
        assert max(counts) <= 40
    assert max(units.values()) > 1  # a shard holds samples of several units
    assert len(per_shard) == sum(-(-sum(counts) // 40) for counts in by_group.values())


def test_noop_rerun_stops_after_listing_and_a_changed_unit_rewrites_its_own_shards(ray_session, tmp_path,
                                                                                     monkeypatch):
    import ray.data

    from pipeline.engine import build as build_module

    def never(*args, **kwargs):
        raise AssertionError("the driver built a list of the units for Ray Data")

    monkeypatch.setattr(ray.data, "from_items", never)
    recipe = load_recipe("stage1")
    recipe.sources = [entry for entry in recipe.sources if entry.name == "slake"]
    recipe.sources[0].options = {"items_per_unit": 3}
    recipe.shards.max_samples = 10
    root = _many_unit_slake(tmp_path / "src")
    first = build(recipe, tmp_path / "out", root, progress=False)
    out = first.out_dir
    manifest = sorted((out / "manifest").glob("*.parquet"))
    files = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in
             [*manifest, out / "stats.json", out / "README.md", out / "config.resolved.yaml"]}
    shards = shard_state(out)

    def no_finalisation(*args, **kwargs):
        raise AssertionError("a rerun with nothing changed finalised again")

    with monkeypatch.context() as patch:
        patch.setattr(build_module, "finalize", no_finalisation)
        again = build(recipe, tmp_path / "out", root, progress=False)
    assert again.units_run == 0 and again.result.shards_written == 0
    assert again.result.kept == first.result.kept and again.result.shards == first.result.shards
    assert shard_state(out) == shards
    assert {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in files} == files

    # one image is replaced: the units whose inputs changed are read again (for SLAKE's default listing of
    # inputs, the image's folder changed: every unit), and only the shards holding its questions are rewritten
    image = root / "Slake1.0" / "imgs" / "xmlab5" / "source.jpg"
    from sources.samples.common import phantom, rng_for, write_jpeg

    image.unlink()
    write_jpeg(image, phantom(rng_for("another image"), 192, 192))
    changed = build(recipe, tmp_path / "out", root, progress=False)
    assert changed.units_run >= 1 and changed.units_changed == changed.units_run
    holding = {row[0] for row in open_build(out).execute(
        "SELECT DISTINCT shard FROM kept WHERE provenance::VARCHAR LIKE '%xmlab5/%'").fetchall()}
    after = shard_state(out)
    assert holding and {name for name in after if after[name] != shards.get(name)} == holding
    assert changed.result.shards_written == len(holding) < len(after)


def test_output_files_follow_the_umask(ray_session, tmp_path):
    import yaml

    umask = 0o027  # not the usual 022: files must be 0640 and none 0600

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "modes", "sources": [{"name": "slake", "splits": ["train"]}],
                                      "shards": {"max_samples": 10}}))
    root = _many_unit_slake(tmp_path / "src", images=4, questions=2)
    command = (f"umask {umask:03o} && exec {sys.executable} -m pipeline.cli build --recipe {recipe} "
               f"--sources-root {root} --out {tmp_path / 'out'} --quiet")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": "local"}
    result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "out" / "modes"
    files = [path for path in out.rglob("*") if path.is_file()]
    assert any(path.parent.name == "manifest" for path in files) and list_shards(out)
    wrong = {str(path.relative_to(out)): oct(path.stat().st_mode & 0o777) for path in files
             if path.stat().st_mode & 0o777 != 0o666 & ~umask}
    assert wrong == {}


def test_second_pass_writes_only_the_bytes_that_were_staged(tmp_path):
    from pipeline.engine.reread import MissingPixels, UnitReader
    from pipeline.engine.staging import members_json, record_members
    from pipeline.engine.units import _adapter
    from tests.support import make_flaky_root, register_test_sources

    register_test_sources()
    root = make_flaky_root(tmp_path)
    recipe = load_recipe("stage1")
    task = UnitTask("flaky", str(root), "{}", ("train",), WorkUnit("flaky", "flaky/train/good", "train", ("good",)))
    first = next(iter(_adapter("flaky", str(root), "{}", ("train",)).iter_records(task.unit)))
    staged = {"id": first.id, "members": members_json(record_members(first, recipe.shards.png_compress_level))}
    reader = UnitReader(recipe)
    assert reader.read(task, {first.id: staged}) == {first.id: record_members(first, recipe.shards.png_compress_level)}
    other = json.loads(staged["members"])
    other[0][3] = "0" * 32  # the source now gives other bytes of the same size
    with pytest.raises(MissingPixels, match="other bytes than the build staged"):
        reader.read(task, {first.id: {**staged, "members": json.dumps(other)}})
    with pytest.raises(MissingPixels, match="no longer gives it"):
        reader.read(task, {"flaky/train/good-9": {**staged, "id": "flaky/train/good-9"}})
