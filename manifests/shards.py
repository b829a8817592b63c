"""The shard layout of a build: one member layout per shard group, one folder per group, the
dataset card that lets Hugging Face `datasets` open each group, and `ShardReader` for a sample's members.

    shards/<group>/<recipe>-<group>-<tag>.tar      every sample in it has the same members
    README.md                                      dataset card: one `datasets` config per group

A group is the task family plus the sample's image members, for example `i2t-in0_jpg` (`<key>.json` and
`<key>.in0.jpg`), `t2i-out0_png`, `interleaved-in0_png-out0_png`, `text` (the JSON alone). Every sample
has its `<key>.json`, so `json` is not named. Hugging Face's webdataset builder infers its columns from
the first examples of the first shard and needs every example to have the same members: one group is
one such set of columns, and one `data_files` glob per group loads it. JPEG and PNG never share a group,
so images keep their bytes (PNG lossless, JPEG passed through).

A build fills each group's shards to the recipe's bounds across work units (pipeline/engine/finalize.py)
and names each shard after its first sample (`<tag>`: a short hash of that sample's key): a shard keeps
its name, and its bytes, for as long as its samples stay the same, whatever changes elsewhere.

The manifest's `shard` column holds the shard's path relative to `shards/` (`<group>/<file>.tar`).
No dots in a group or a shard's file name: `datasets` picks its builder from every dot-suffix of a
file name, and a dot in a WebDataset key would end the key.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import threading
from pathlib import Path

from manifests import storage
from typing import Iterable, Mapping

SHARDS_DIR = "shards"
CARD_NAME = "README.md"
_UNSAFE = re.compile(r"[^a-z0-9]+")


def shard_group(task_family: str, suffixes: Iterable[str]) -> str:
    """`i2t` + (`in0.jpg`,) -> `i2t-in0_jpg`; the member suffixes sorted, `json` left out."""
    parts = [_UNSAFE.sub("_", suffix.lower()).strip("_") for suffix in sorted(set(suffixes)) if suffix != "json"]
    return "-".join([_UNSAFE.sub("_", task_family.lower()).strip("_") or "unknown", *parts])


def shard_group_of_members(task_family: str, members: str | None) -> str:
    """The group of a staged row: `members` is its JSON list of `[suffix, offset, size]`."""
    return shard_group(task_family or "unknown", [entry[0] for entry in json.loads(members or "[]")])


def shard_name(recipe: str, group: str, index: int) -> str:
    """`<group>/<recipe>-<group>-NNNNNN.tar`: the path relative to `shards/` of a group's shard numbered `index`."""
    return f"{group}/{recipe}-{group}-{index:06d}.tar"


def keyed_shard_name(recipe: str, group: str, first_key: str) -> str:
    """`<group>/<recipe>-<group>-<tag>.tar`: a build's shard, named after the key of its first sample."""
    return f"{group}/{recipe}-{group}-{key_tag(first_key)}.tar"


def key_tag(text: str) -> str:
    """10 hex digits of a key or id: stable, and free of the dots and slashes ids may hold."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=5).hexdigest()


def group_of_shard(name: str) -> str:
    """The group of a shard path relative to `shards/` (a flat, older shard has the empty group)."""
    return name.rpartition("/")[0]


def list_shards(build_dir: Path | str) -> list[Path]:
    """Every shard of a build, in a fixed order (group, then number); flat older layouts too."""
    root = Path(build_dir, SHARDS_DIR)
    return sorted(root.rglob("*.tar"), key=lambda path: path.relative_to(root).as_posix())


def shard_locations(build_dir: Path | str) -> list[str]:
    """`list_shards` for a build in a local folder or at a URL (`s3://...`): paths or URLs, in the same order."""
    fs, root = storage.filesystem(build_dir)
    return [storage.location(fs, path) for path in storage.find(fs, storage.join(root, SHARDS_DIR), ".tar")]


def relative_shard(build_dir: Path | str, path: Path | str) -> str:
    """A shard's path as the manifest's `shard` column holds it."""
    if storage.is_url(build_dir):
        prefix = storage.join(str(build_dir).rstrip("/"), SHARDS_DIR) + "/"
        if not str(path).startswith(prefix):
            raise ValueError(f"{path} is not a shard of {build_dir}")
        return str(path)[len(prefix):]
    return Path(path).relative_to(Path(build_dir, SHARDS_DIR)).as_posix()


def dataset_card(recipe: str, groups: Mapping[str, int]) -> str:
    """The build's README.md: `configs:` front matter (one config per group) and how to load each."""
    lines = ["---", "configs:" if groups else "configs: []"]
    for group in sorted(groups):
        lines += [f"- config_name: {group}", "  data_files:", "  - split: train",
                  f"    path: {SHARDS_DIR}/{group}/*.tar"]
    lines += ["---", "", f"# {recipe}", "",
              "WebDataset shards, one member layout per group (`shards/<group>/*.tar`); every sample has its",
              "`<key>.json` (UniMedVL's record) and the image members the group names (`in0_jpg`: `<key>.in0.jpg`).",
              "The manifest (`manifest/*.parquet`) has one row per input record; `shard` is relative to `shards/`.",
              "", "| group | samples |", "| --- | ---: |"]
    lines += [f"| {group} | {groups[group]} |" for group in sorted(groups)]
    lines += ["", "```python", "from datasets import load_dataset", ""]
    for group in sorted(groups):
        lines.append(f'load_dataset("<this folder>", "{group}", split="train")')
    lines += ["# or, without this card:", 'load_dataset("webdataset", data_files={"train": '
              '"<this folder>/shards/<group>/*.tar"}, split="train")', "```", ""]
    return "\n".join(lines)


MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "npy": "application/octet-stream"}


class ShardReader:
    """Reads `<key>.<suffix>` members from BUILD/shards/ (the manifest's `shard` column is relative to it); one member
    index per shard, built on first use. BUILD is a folder or a URL: on object storage a member is one ranged GET."""

    def __init__(self, build_dir: Path | str):
        self.build_dir = build_dir
        self.fs, self.root = storage.filesystem(build_dir)
        self._index: dict[str, dict[str, tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def _members(self, shard: str) -> dict[str, tuple[int, int]]:
        with self._lock:
            if shard not in self._index:
                with self.fs.open(storage.join(self.root, "shards", shard), "rb") as handle, \
                        tarfile.open(fileobj=handle, mode="r:") as tar:
                    self._index[shard] = {m.name: (m.offset_data, m.size) for m in tar.getmembers() if m.isfile()}
            return self._index[shard]

    def read(self, shard: str, key: str, suffix: str) -> bytes:
        try:
            offset, size = self._members(shard)[f"{key}.{suffix}"]
        except (KeyError, FileNotFoundError, tarfile.TarError) as err:
            raise FileNotFoundError(f"{key}.{suffix} is not in shard {shard} of {self.build_dir}") from err
        path = storage.join(self.root, "shards", shard)
        if not storage.is_local(self.fs):
            return storage.read_range(self.fs, path, offset, size)
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)
