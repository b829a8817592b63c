"""The sample index, columnar: per sample a shard number, a key, a task family and a source, in numpy and
Arrow arrays (no Python object per sample). Built from the build's manifest (kept rows carry `shard`,
`key`, `task_family`, `source`) in one streamed DuckDB query (memory-limited, so its sort spills), in the
order finalisation writes them (shard path, then id), batch by batch into the compact columns; a build
without a manifest falls back to scanning tar headers and reading each sample's JSON.

Where a sample's members sit inside its shard is looked up on first read of that shard (one header
scan of that shard only, kept per process), so start-up never reads a tar.
"""


from __future__ import annotations

import json
import logging
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests import storage
from manifests.shards import SHARDS_DIR, relative_shard, shard_locations
from pipeline.curriculum.schedule import FAMILIES

log = logging.getLogger(__name__)

Members = tuple[tuple[str, int, int], ...]  # (suffix, data offset, size), in tar order


@dataclass
class ShardIndex:
    """Sample i sits in `shards[shard[i]]` under `keys[i]`; `family[i]`/`source[i]` label it."""

    shards: list[str]
    shard: np.ndarray  # int32 per sample
    keys: pa.Array  # string per sample
    family_code: np.ndarray  # int8 per sample, into FAMILIES
    source_code: np.ndarray  # int32 per sample, into source_names
    source_names: list[str]
    _members: dict[int, dict[str, Members]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.shard)

    @property
    def family(self) -> np.ndarray:
        return np.asarray(FAMILIES)[self.family_code]

    @property
    def source(self) -> np.ndarray:
        return np.asarray(self.source_names)[self.source_code]

    def key(self, position: int) -> str:
        return self.keys[position].as_py()

    def members(self, position: int) -> tuple[int, Members]:
        """(shard number, members) of a sample; the shard's headers are scanned on its first use."""
        shard = int(self.shard[position])
        table = self._members.get(shard)
        if table is None:
            table = self._members[shard] = dict(scan_tar(self.shards[shard]))
        key = self.key(position)
        try:
            return shard, table[key]
        except KeyError:
            raise KeyError(f"sample {key} is in the manifest but not in {self.shards[shard]}") from None


def shard_paths(build_dirs: Sequence[Path | str]) -> list[str]:
    """Every shard of each build, `shards/<group>/*.tar` (manifests/shards.py), in a fixed order."""
    paths: list[Path] = []
    for build_dir in build_dirs:
        found = shard_locations(build_dir)
        if not found:
            raise FileNotFoundError(f"no shards under {storage.join(str(build_dir), SHARDS_DIR)}; run `unimed build` first")
        paths.extend(found)
    return paths


def scan_tar(path: Path | str) -> list[tuple[str, Members]]:
    """(key, members) per sample, in tar order: headers only. Plain ustar headers (what the build and
    webdataset write) are walked header to header, seeking over the data (a local file, or a shard on
    object storage read through fsspec's read-ahead), so memory holds one header, never the shard; anything
    else (long names, pax) goes through `tarfile`."""
    with storage.open_input(path) as stream:
        entries = _walk_ustar(stream)
    if entries is None:
        entries = _walk_tarfile(path)
    samples: list[tuple[str, list[tuple[str, int, int]]]] = []
    for name, offset, size in entries:
        key, dot, suffix = name.rsplit("/", 1)[-1].partition(".")
        if not dot or key.startswith("."):
            continue
        if not samples or samples[-1][0] != key:
            samples.append((key, []))
        samples[-1][1].append((suffix, offset, size))
    return [(key, tuple(members)) for key, members in samples]


def _walk_ustar(stream: BinaryIO) -> list[tuple[str, int, int]] | None:
    """(name, data offset, size) of each regular file of a seekable tar stream; None when a header needs
    `tarfile` to read."""
    entries, pos = [], 0
    while True:
        stream.seek(pos)
        header = stream.read(512)
        if len(header) < 512 or header[0] == 0:
            break
        kind = header[156:157]
        if kind not in (b"0", b"\0", b"5") or header[124] & 0x80:  # long names, pax, links, base-256 sizes
            return None
        name = header[:100].split(b"\0", 1)[0].decode("utf-8")
        prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8") if header[257:262] == b"ustar" else ""
        size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        if kind != b"5":
            entries.append((f"{prefix}/{name}" if prefix else name, pos + 512, size))
        pos += 512 + -(-size // 512) * 512
    return entries


def _walk_tarfile(path: Path) -> list[tuple[str, int, int]]:
    with storage.open_input(path) as stream, tarfile.open(fileobj=stream, mode="r:") as tar:
        return [(member.name, member.offset_data, member.size) for member in tar if member.isfile()]


def infer_family(doc: dict[str, Any]) -> str:
    """The task family of a sample JSON without a manifest: from which image lists it fills."""
    n_in, n_out = len(doc.get("input_img") or []), len(doc.get("output_img") or [])
    if n_in == 0 and n_out == 0:
        return "text"
    if n_out == 0:
        return "i2t"
    return "t2i" if n_in == 0 else "interleaved"


@dataclass
class _Columns:
    """One build's samples as compact columns: codes into `shards` / `sources`, family codes into FAMILIES
    (-1: a family outside them)."""

    shards: list[str]  # relative to shards/
    shard: np.ndarray  # int32
    keys: pa.Array
    family: np.ndarray  # int8
    sources: list[str]
    source: np.ndarray  # int32


def _from_manifest(build_dir: Path) -> _Columns | None:
    """Every kept row with a shard, in write order (shard, then id), from one streamed query, batch by batch
    into compact columns; None without a manifest."""
    from manifests.query import QUERY_MEMORY_LIMIT, ManifestNotFound, open_build

    try:
        con = open_build(build_dir, memory_limit=QUERY_MEMORY_LIMIT)
    except ManifestNotFound:
        return None
    reader = con.sql("SELECT shard, key, task_family, coalesce(source, 'unknown') AS source FROM kept "
                     "WHERE shard IS NOT NULL ORDER BY shard, id").to_arrow_reader(100_000)
    columns = _encode(pa.Table.from_batches([batch]) for batch in reader)
    con.close()
    on_disk = {relative_shard(build_dir, path) for path in shard_locations(build_dir)}
    missing = sorted(set(columns.shards) - on_disk)
    if missing:
        raise FileNotFoundError(f"{len(missing)} shards named by the manifest of {build_dir} are missing, "
                                f"e.g. {storage.join(str(build_dir), SHARDS_DIR, missing[0])}; rebuild or restore them")
    return columns


def _encode(tables: Iterable[pa.Table]) -> _Columns:
    """Batches of (shard, key, task_family, source) strings as compact columns: a dictionary holds one entry
    per distinct shard and source, never one per row."""
    shards: dict[str, int] = {}
    sources: dict[str, int] = {}
    shard_codes, keys, family_codes, source_codes = [], [], [], []
    for table in tables:
        shard_codes.append(_codes(table["shard"], shards))
        source_codes.append(_codes(table["source"], sources))
        keys.append(table["key"].combine_chunks())
        family = pc.index_in(table["task_family"], value_set=pa.array(FAMILIES))
        family_codes.append(pc.fill_null(family, -1).to_numpy(zero_copy_only=False).astype(np.int8))
    return _Columns(list(shards), _concat(shard_codes, np.int32), pa.chunked_array(keys, pa.string()).combine_chunks(),
                    _concat(family_codes, np.int8), list(sources), _concat(source_codes, np.int32))


def _codes(values: pa.ChunkedArray | pa.Array, seen: dict[str, int]) -> np.ndarray:
    """int32 codes of a batch's strings in `seen` (first-seen order), adding the new ones."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = values.dictionary_encode()
    local = np.array([seen.setdefault(value, len(seen)) for value in encoded.dictionary.to_pylist()], np.int32)
    return local[encoded.indices.to_numpy(zero_copy_only=False)] if len(local) else np.zeros(len(values), np.int32)


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _from_tars(build_dir: Path) -> _Columns:
    """The fallback without a manifest: every tar's headers, labels from each sample's own JSON."""
    shards, keys, families, sources = [], [], [], []
    for path in shard_paths([build_dir]):
        with storage.open_input(path) as stream:
            for key, members in scan_tar(path):
                doc = json.loads(read_member(stream, members, "json"))
                shards.append(relative_shard(build_dir, path))
                keys.append(key)
                families.append(infer_family(doc))
                sources.append(str(doc.get("dataset") or "unknown"))
    return _encode([pa.table({"shard": pa.array(shards, pa.string()), "key": pa.array(keys, pa.string()),
                              "task_family": pa.array(families, pa.string()),
                              "source": pa.array(sources, pa.string())})])


def build_index(build_dirs: Sequence[Path | str]) -> ShardIndex:
    shards: list[str] = []
    sources: dict[str, int] = {}
    shard_parts, key_parts, family_parts, source_parts = [], [], [], []
    for build_dir in build_dirs:  # local folders or URLs
        columns = _from_manifest(build_dir)
        if columns is None:
            columns = _from_tars(build_dir)
        if len(columns.keys) == 0 and not shard_locations(build_dir):
            raise FileNotFoundError(f"no shards under {storage.join(str(build_dir), SHARDS_DIR)}; run `unimed build` first")
        known = columns.family >= 0
        if not known.all():
            log.warning("%d samples of %s have a task family outside %s; skipped", int((~known).sum()), build_dir,
                        FAMILIES)
        shard_parts.append(columns.shard[known] + len(shards))
        fs, root = storage.filesystem(build_dir)
        shards.extend(storage.location(fs, storage.join(root, SHARDS_DIR, name)) for name in columns.shards)
        key_parts.append(columns.keys if known.all() else columns.keys.filter(pa.array(known)))
        family_parts.append(columns.family[known])
        to_global = np.array([sources.setdefault(name, len(sources)) for name in columns.sources], np.int32)
        source_parts.append(to_global[columns.source[known]] if len(to_global) else np.zeros(0, np.int32))
    return ShardIndex(shards=shards, shard=_concat(shard_parts, np.int32),
                      keys=pa.chunked_array(key_parts, pa.string()).combine_chunks(),
                      family_code=_concat(family_parts, np.int8), source_code=_concat(source_parts, np.int32),
                      source_names=[str(name) for name in sources])


def read_member(stream, members: Members, suffix: str) -> bytes:
    for name, offset, size in members:
        if name == suffix:
            stream.seek(offset)
            return stream.read(size)
    raise KeyError(f"sample has no {suffix!r} member")
