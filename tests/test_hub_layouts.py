"""Hugging Face Hub copies (issue #18): the contract per Hub layout, equal records from both layouts of the
same items, Hub-cache discovery, Parquet read by row groups, and a CLI build from a Hub cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from manifests.records import Record, Rejection
from filters.settings import RecipeError
from pipeline.config import Recipe, SourceEntry, parse_recipe
from pipeline.engine.build import resolve_sources
from sources import SOURCES
from sources.io.hub import download_command, find_snapshot, hub_text, iter_parquet_rows, row_group_ranges
from sources.io.image import load_pixels, pixel_hash
from sources.samples import HUB_SAMPLE_WRITERS, SAMPLE_WRITERS
from sources.samples.hub import IMAGE_TYPE, image_cell, parquet_bytes, write_snapshot
from tests.conftest import REPO
from tests.test_contract import check_contract, read_all

HUB = sorted(HUB_SAMPLE_WRITERS)
CONTENT_KEYED = {"vqa_rad", "pathvqa"}  # no original id survives on the Hub: matched by meta.content_key
# The Hub lacks PubMedQA's test PMID list: given from the original clone, the splits (and so the ids) agree
HUB_OPTIONS = {"pubmedqa": lambda original: {"test_ids_file": str(original / "pubmedqa/data/test_ground_truth.json")},
               # Hub repos without their images (VL-Health, PMC-Inline) or with them only packed in a split
               # archive (InternVL): the images the user fetched elsewhere, from the original sample
               "vl_health": lambda original: {"image_roots": [str(original / "PubMedVision")]},
               "pmc_inline": lambda original: {"figures_root": str(original / "PMC-Inline/figures")},
               "internvl_medical": lambda original: {
                   "images_root": str(original / "InternVL-Domain-Adaptation-Data/images/medical_images")}}
# The Hub holds one variant of MedQA: compare with that variant of the original
ORIGINAL_OPTIONS = {"medqa": {"variant": "4_options"}}
# The Hub keeps fewer facts that the modality is read from (rocov2: the manual CUIs only, rocov2.md)
FEWER_MODALITY_FACTS = {"rocov2"}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, tuple[list, list, Path]]:
    """name -> (items from the original sample, items from the Hub sample, Hub dataset root)."""
    result = {}
    for name in HUB:
        original_root, hub_root = tmp_path_factory.mktemp(f"{name}-orig"), tmp_path_factory.mktemp(f"{name}-hub")
        SAMPLE_WRITERS[name](original_root)
        HUB_SAMPLE_WRITERS[name](hub_root)
        options = HUB_OPTIONS.get(name, lambda _: {})(original_root)
        original = _read(name, original_root, ORIGINAL_OPTIONS.get(name, {}))
        result[name] = (original, _read(name, hub_root, options), SOURCES[name].find_root(hub_root))
    return result


def _read(name: str, root: Path, options: dict) -> list:
    adapter = SOURCES[name](SOURCES[name].find_root(root), options, None)
    return [item for unit in adapter.work_units() for item in adapter.iter_records(unit)]


def test_every_hub_source_names_its_repos():
    assert len(HUB) >= 3
    for name in HUB:
        assert SOURCES[name].card.hub_repos, f"{name}: a Hub sample writer but no card.hub_repos"
    with_repos = {name for name, cls in SOURCES.items() if cls.card.hub_repos}
    assert with_repos == set(HUB), f"card.hub_repos without a Hub sample (and so without tests): {with_repos - set(HUB)}"


@pytest.mark.parametrize("name", HUB)
def test_hub_layout_follows_the_contract(name, layouts):
    _, items, root = layouts[name]
    assert root is not None and root.parent.name == "snapshots", f"{name}: Hub snapshot not found, got {root}"
    check_contract(name, root, items)


def _texts(record: Record) -> list[str]:
    return [turn["value"] for turn in record.message]


def _pixels(record: Record) -> list[str]:
    return [pixel_hash(load_pixels(image)) for image in record.images]


@pytest.mark.parametrize("name", HUB)
def test_original_and_hub_layouts_give_equal_records(name, layouts):
    original, hub, _ = layouts[name]
    kept = [item for item in hub if isinstance(item, Record)]
    assert kept, f"{name}: no record from the Hub sample"
    if name in CONTENT_KEYED:
        by_key = {item.meta["content_key"]: item for item in original if isinstance(item, Record)}
        matched = [(by_key[item.meta["content_key"]], item) for item in kept if item.meta["content_key"] in by_key]
        # vqa_rad: the float answer 3.0 is "3" in the original and str(3.0) == "3.0" on the Hub (documented)
        assert len(matched) >= len(kept) - (1 if name == "vqa_rad" else 0), f"{name}: items without a twin"
        for first, second in matched:
            assert first.split == second.split
            assert [hub_text(t) for t in _texts(first)] == _texts(second)
            assert _pixels(first) == _pixels(second)
            assert [i.encoded for i in first.images] == [i.encoded for i in second.images]  # JPEG passed through
        return
    by_id = {item.id: item for item in original}
    for item in hub:
        if isinstance(item, Rejection) and item.id not in by_id:  # a row without an id: ids name the file
            assert any(isinstance(o, Rejection) and (o.split, o.reason) == (item.split, item.reason)
                       for o in original), f"{name}: rejection {item.id} ({item.reason}) has no original twin"
            continue
        assert item.id in by_id, f"{name}: Hub item {item.id} has no original twin"
        twin = by_id[item.id]
        assert type(twin) is type(item), f"{item.id}: {twin} vs {item}"
        if isinstance(item, Rejection):
            assert item.reason == twin.reason
            continue
        assert _texts(item) == _texts(twin), item.id
        assert _pixels(item) == _pixels(twin), item.id
        assert (item.task_family, item.sub_task_type) == (twin.task_family, twin.sub_task_type)
        if name not in FEWER_MODALITY_FACTS:
            assert item.modality == twin.modality, item.id


def test_hub_cache_is_found_as_hub_folder_hf_home_repo_folder_and_windows_copies(tmp_path):
    files = {"data/train-00000-of-00001.parquet": b"x"}
    snapshot = write_snapshot(tmp_path / "home", "owner/name", files)
    assert (snapshot / "data/train-00000-of-00001.parquet").is_symlink()
    for root in (tmp_path / "home", tmp_path / "home" / "hub", tmp_path / "home" / "hub" / "datasets--owner--name"):
        assert find_snapshot(root, ["other/repo", "owner/name"]) == snapshot
    assert find_snapshot(tmp_path / "home", ["other/repo"]) is None
    copies = write_snapshot(tmp_path / "win", "owner/name", files, symlinks=False)
    assert find_snapshot(tmp_path / "win", ["owner/name"]) == copies and not (copies / "data").is_symlink()
    # refs/main naming a snapshot that is not there: the snapshot present is taken
    (tmp_path / "win" / "hub" / "datasets--owner--name" / "refs" / "main").write_text("0" * 40)
    assert find_snapshot(tmp_path / "win", ["owner/name"]) == copies


def _big_parquet(path: Path, groups: int, rows_per_group: int, blob: int) -> None:
    schema = pa.schema([("n", pa.int64()), ("image", IMAGE_TYPE)])
    rows = [{"n": n, "image": image_cell(bytes([n % 251]) * blob, None)} for n in range(groups * rows_per_group)]
    path.write_bytes(parquet_bytes(rows, schema, row_group_size=rows_per_group))


def test_parquet_is_read_in_row_groups_with_bounded_memory(tmp_path):
    path = tmp_path / "train-00000-of-00001.parquet"
    _big_parquet(path, groups=24, rows_per_group=4, blob=256 << 10)  # 24 MiB of image bytes in 24 row groups
    assert pq.ParquetFile(path).metadata.num_row_groups == 24
    ranges = row_group_ranges(path, rows_per_unit=8)
    assert ranges == [(g, g + 2, g * 4) for g in range(0, 24, 2)]  # two groups (8 rows, 2 MiB) per unit
    seen = []
    pool = pa.default_memory_pool()
    for start, stop, first in ranges:
        before, peak = pool.bytes_allocated(), 0
        for row, values in iter_parquet_rows(path, (start, stop), first, ["n", "image"]):
            assert row == values["n"]
            seen.append(row)
            peak = max(peak, pool.bytes_allocated() - before)
        # bounded by the unit's row groups (2 MiB, read and decompressed), far below the 24 MiB file
        assert peak < 6 << 20, f"unit {start}-{stop} held {peak} bytes of Arrow memory (the file has 24 MiB)"
    assert seen == list(range(96))


def test_adapter_units_cover_row_group_ranges(tmp_path):
    HUB_SAMPLE_WRITERS["medmcqa"](tmp_path)
    adapter = SOURCES["medmcqa"](SOURCES["medmcqa"].find_root(tmp_path), {"rows_per_unit": 1}, ["train"])
    units = adapter.work_units()
    assert [u.items[0]["row_groups"] for u in units] == [(0, 1), (1, 2)]  # 3 rows in row groups of 2
    assert [len(list(adapter.iter_records(u))) for u in units] == [2, 1]


def test_missing_hub_copy_names_the_download_command(tmp_path):
    recipe = Recipe(name="t", sources=[SourceEntry("vqa_rad", hub="flaviagiammarino/vqa-rad"), SourceEntry("pathvqa")])
    resolved = resolve_sources(recipe, tmp_path, {}, None)
    assert [r.root for r in resolved] == [None, None]
    assert download_command("flaviagiammarino/vqa-rad") in resolved[0].reason
    assert "huggingface-cli download --repo-type dataset flaviagiammarino/path-vqa" in resolved[1].reason
    HUB_SAMPLE_WRITERS["vqa_rad"](tmp_path)
    found = resolve_sources(recipe, tmp_path, {}, None)[0]
    assert found.root is not None and found.root.parent.name == "snapshots"


def test_recipe_hub_entry_must_be_a_repo_of_the_source(tmp_path):
    recipe = parse_recipe({"name": "t", "sources": [{"name": "vqa_rad", "hub": "flaviagiammarino/vqa-rad"}]})
    assert recipe.sources[0].hub == "flaviagiammarino/vqa-rad"
    with pytest.raises(RecipeError, match="owner/name"):
        parse_recipe({"name": "t", "sources": [{"name": "vqa_rad", "hub": "vqa-rad"}]})
    HUB_SAMPLE_WRITERS["vqa_rad"](tmp_path)
    other = Recipe(name="t", sources=[SourceEntry("vqa_rad", hub="OctoMed/VQA-RAD")])
    (resolved,) = resolve_sources(other, tmp_path, {}, None)
    assert resolved.root is None and "reads ['flaviagiammarino/vqa-rad']" in resolved.reason


def test_sources_listing_shows_hub_repos():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "sources", "--json"], capture_output=True,
                            text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    cards = {card["name"]: card for card in json.loads(result.stdout)}
    assert cards["vqa_rad"]["hub_repos"] == ["flaviagiammarino/vqa-rad"]
    assert cards["brats"]["hub_repos"] == []


def test_build_from_a_hub_cache_through_the_cli(tmp_path):
    cache = tmp_path / "cache"
    for name in HUB:
        HUB_SAMPLE_WRITERS[name](cache)
    recipe = tmp_path / "hub.yaml"
    recipe.write_text(yaml.safe_dump({"name": "hub", "sources": [
        {"name": name, "splits": ["train", "validate", "test", "unsplit"]} for name in HUB],
        "shards": {"max_samples": 8}}), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "build", "--recipe", str(recipe), "--sources-root",
                             str(cache / "hub"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = pq.read_table(tmp_path / "out" / "hub" / "manifest").to_pylist()
    by_source: dict[str, int] = {}
    for row in manifest:
        by_source[row["source"]] = by_source.get(row["source"], 0) + 1
    expected = {name: len(read_all(name, cache)) for name in HUB}
    assert by_source == expected
    stats = json.loads((tmp_path / "out" / "hub" / "stats.json").read_text())
    assert stats and np.sum([1 for row in manifest if row["status"] == "kept"]) > 0
