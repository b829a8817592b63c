"""The sample index: each shard's tar headers scanned once, every sample a `SampleRef` (shard, key,
member offsets); task family and source from the build's manifest, else from the sample's own JSON.
"""


from __future__ import annotations

import json
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


from manifests import storage
from manifests.shards import relative_shard, shard_locations
from pipeline.curriculum.schedule import FAMILIES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleRef:
    shard: int  # index into ShardIndex.shards
    key: str
    members: tuple[tuple[str, int, int], ...]  # (suffix, data offset, size), in tar order


@dataclass
class ShardIndex:
    shards: list[str]
    samples: list[SampleRef]
    family: list[str]
    source: list[str]

    def __len__(self) -> int:
        return len(self.samples)


def shard_paths(build_dirs: Sequence[Path | str]) -> list[str]:
    """Every shard of each build, `shards/<group>/*.tar` (manifests/shards.py), in a fixed order: local
    paths, or URLs for a build on object storage."""
    paths: list[str] = []
    for build_dir in build_dirs:
        found = shard_locations(build_dir)
        if not found:
            raise FileNotFoundError(f"no shards under {storage.join(str(build_dir), 'shards')}; run `unimed build` first")
        paths.extend(found)
    return paths


def scan_tar(path: Path | str) -> list[tuple[str, tuple[tuple[str, int, int], ...]]]:
    """(key, members) per sample, in tar order: headers only, member data is skipped over."""
    samples: list[tuple[str, list[tuple[str, int, int]]]] = []
    with storage.open_input(path) as stream, tarfile.open(fileobj=stream, mode="r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.rsplit("/", 1)[-1]
            key, dot, suffix = name.partition(".")
            if not dot or key.startswith("."):
                continue
            if not samples or samples[-1][0] != key:
                samples.append((key, []))
            samples[-1][1].append((suffix, member.offset_data, member.size))
    return [(key, tuple(members)) for key, members in samples]


def infer_family(doc: dict[str, Any]) -> str:
    """The task family of a sample JSON without a manifest: from which image lists it fills."""
    n_in, n_out = len(doc.get("input_img") or []), len(doc.get("output_img") or [])
    if n_in == 0 and n_out == 0:
        return "text"
    if n_out == 0:
        return "i2t"
    return "t2i" if n_in == 0 else "interleaved"


class ManifestLabels:
    """(task_family, source) of each kept key, per shard, from a build's manifest (empty without one)."""

    def __init__(self, build_dir: Path | str):
        from manifests.query import ManifestNotFound, open_build

        try:
            self.con = open_build(build_dir)
        except ManifestNotFound:
            self.con = None

    def for_shard(self, shard_name: str) -> dict[str, tuple[str, str]]:
        """`shard_name` as the manifest's `shard` column holds it: relative to shards/."""
        if self.con is None:
            return {}
        rows = self.con.execute("SELECT key, task_family, source FROM kept WHERE shard = ?", [shard_name]).fetchall()
        return {key: (family, source) for key, family, source in rows}


def build_index(build_dirs: Sequence[Path | str]) -> ShardIndex:
    index = ShardIndex([], [], [], [])
    for build_dir in build_dirs:
        manifest = ManifestLabels(build_dir)
        for path in shard_paths([build_dir]):
            labels = manifest.for_shard(relative_shard(build_dir, path))
            shard_id = len(index.shards)
            index.shards.append(str(path))
            with storage.open_input(path) as stream:
                for key, members in scan_tar(path):
                    label = labels.get(key)
                    if label is None:  # no manifest row: read the sample's own JSON
                        doc = json.loads(read_member(stream, members, "json"))
                        label = (infer_family(doc), str(doc.get("dataset") or "unknown"))
                    if label[0] not in FAMILIES:
                        log.warning("sample %s in %s has task family %r; skipped", key, path, label[0])
                        continue
                    index.samples.append(SampleRef(shard_id, key, members))
                    index.family.append(label[0])
                    index.source.append(label[1])
    return index


def read_member(stream, members: tuple[tuple[str, int, int], ...], suffix: str) -> bytes:
    for name, offset, size in members:
        if name == suffix:
            stream.seek(offset)
            return stream.read(size)
    raise KeyError(f"sample has no {suffix!r} member")
