"""Shards every WebDataset reader opens (#20): one member layout per shard group, and a dataset card with
one Hugging Face `datasets` config per group. The stage-1 and stage-3 sample builds load with `datasets`
(by `data_files` and through the card, streaming and not), `webdataset.WebDataset` and
`ray.data.read_webdataset`, and every count agrees with the manifest."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from collections import Counter
from itertools import islice
from pathlib import Path

import datasets
import pytest
import yaml
from PIL import Image as PILImage

from manifests.query import open_build
from manifests.shards import group_of_shard, keyed_shard_name, list_shards, relative_shard, shard_group, shard_name


@pytest.fixture(scope="module", params=["stage1_build", "stage3_build"])
def built(request):
    return request.getfixturevalue(request.param)


def kept_by_group(out: Path) -> dict[str, set[str]]:
    """The manifest's kept keys, by the group of the shard its `shard` column names."""
    groups: dict[str, set[str]] = {}
    for shard, key in open_build(out).execute("SELECT shard, key FROM kept").fetchall():
        groups.setdefault(group_of_shard(shard), set()).add(key)
    return groups


def card_configs(out: Path) -> dict[str, str]:
    text = (out / "README.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    return {config["config_name"]: config["data_files"][0]["path"] for config in front["configs"]}


def count(dataset, bound: int) -> int:
    return sum(1 for _ in islice(dataset, bound + 1))  # an iterable dataset: never read past the bound


def test_group_names():
    assert shard_group("i2t", ["json", "in0.jpg"]) == "i2t-in0_jpg"
    assert shard_group("interleaved", ["out0.png", "json", "in0.png"]) == "interleaved-in0_png-out0_png"
    assert shard_group("text", ["json"]) == "text"
    assert shard_name("stage1", "t2i-out0_png", 3) == "t2i-out0_png/stage1-t2i-out0_png-000003.tar"
    assert "." not in shard_name("stage1", "i2t-in0_jpg", 0).removesuffix(".tar")


def test_each_shard_holds_one_member_layout(built):
    out = built.out_dir
    recipe = out.name
    con = open_build(out)
    family = dict(con.execute("SELECT key, task_family FROM kept").fetchall())
    per_shard = dict(con.execute("SELECT shard, count(*) FROM kept GROUP BY shard").fetchall())
    for path in list_shards(out):  # shards are named after their first sample (expectation changed by issue 26)
        name = relative_shard(out, path)
        group = group_of_shard(name)
        members: dict[str, set[str]] = {}
        with tarfile.open(path) as tar:
            for member in tar:
                key, _, suffix = member.name.partition(".")
                members.setdefault(key, set()).add(suffix)
        assert name == keyed_shard_name(recipe, group, next(iter(members)))
        layouts = {frozenset(suffixes) for suffixes in members.values()}
        assert len(layouts) == 1, f"{name} mixes member layouts: {layouts}"
        assert {shard_group(family[key], suffixes) for key, suffixes in members.items()} == {group}
        assert len(members) == per_shard[name]


def _check_first_image(dataset, group: str, out: Path) -> None:
    """One example of the group: its images decode, at the size its JSON says, to the shard's own pixels."""
    example = next(iter(dataset))
    shard = open_build(out).execute("SELECT shard FROM kept WHERE key = ?", [example["__key__"]]).fetchone()[0]
    assert group_of_shard(shard) == group
    images = [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Image)]
    assert sorted(images) == sorted(suffix.replace("_", ".") for suffix in group.split("-")[1:])
    for ref in example["json"]["input_img"] + example["json"]["output_img"]:
        image = example[ref["path"]]
        assert isinstance(image, PILImage.Image) and (image.width, image.height) == (ref["width"], ref["height"])
        with tarfile.open(out / "shards" / shard) as tar:
            stored = PILImage.open(io.BytesIO(tar.extractfile(f"{example['__key__']}.{ref['path']}").read()))
            assert image.mode == stored.mode and image.tobytes() == stored.tobytes()


@pytest.mark.parametrize("streaming", [False, True], ids=["arrow", "streaming"])
def test_hf_datasets_loads_each_group_by_data_files(built, streaming, tmp_path):
    out = built.out_dir
    expected = kept_by_group(out)
    assert sum(len(keys) for keys in expected.values()) == built.result.kept
    for group, keys in sorted(expected.items()):
        dataset = datasets.load_dataset("webdataset", data_files={"train": str(out / "shards" / group / "*.tar")},
                                        split="train", streaming=streaming, cache_dir=str(tmp_path / "hf"))
        assert count(dataset, len(keys)) == len(keys), group
        if not streaming:
            assert set(dataset["__key__"]) == keys
        _check_first_image(dataset, group, out)


@pytest.mark.parametrize("streaming", [False, True], ids=["arrow", "streaming"])
def test_hf_datasets_loads_each_group_through_the_card(built, streaming, tmp_path):
    out = built.out_dir
    expected = kept_by_group(out)
    assert set(card_configs(out)) == set(expected)
    for group, keys in sorted(expected.items()):
        dataset = datasets.load_dataset(str(out), group, split="train", streaming=streaming,
                                        cache_dir=str(tmp_path / "hf"))
        assert count(dataset, len(keys)) == len(keys), group
        _check_first_image(dataset, group, out)


def test_the_whole_build_reads_with_webdataset_and_ray(built, ray_session):
    import ray.data
    import webdataset as wds

    out = built.out_dir
    urls = [str(path) for path in list_shards(out)]
    keys = set().union(*kept_by_group(out).values())
    samples = list(islice(wds.WebDataset(urls, shardshuffle=False, empty_check=False), built.result.kept + 1))
    assert len(samples) == built.result.kept and {sample["__key__"] for sample in samples} == keys
    rows = ray.data.read_webdataset(urls, decoder=None).select_columns(["__key__"]).take_all()
    assert Counter(row["__key__"] for row in rows) == Counter(keys)


def test_a_build_in_the_older_flat_layout_moves_to_groups_on_rerun(stage1_build, sample_root, tmp_path):
    from pipeline.engine.build import build
    from tests.conftest import sample_recipe

    out = tmp_path / "stage1"
    shutil.copytree(stage1_build.out_dir, out)
    flat = out / "shards" / "stage1-000000.tar"
    shutil.copy(list_shards(out)[0], flat)
    (out / ".state" / "shards" / "stage1-000000.tar.json").write_text("{}")
    digests = {relative_shard(out, p): hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(out)}
    rerun = build(sample_recipe(), tmp_path, sample_root, progress=False)
    assert rerun.units_run == 0 and rerun.result.shards_written == 0
    assert not flat.exists() and not (out / ".state" / "shards" / "stage1-000000.tar.json").exists()
    del digests["stage1-000000.tar"]
    assert {relative_shard(out, p): hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(out)} == digests
