"""`unimed release BUILD --out DIR`: a metadata-only release of a finished build, as UniMedVL-5M ships its part1/.

A release folder holds::

    records/part-00000.parquet  one row per kept sample (every row with --all-rows), in the manifest's order
    release.json                recipe name, processing digest, the shards' sha256, per-source licence facts
    recipe.yaml                 the recipe as run (no paths of the builder's machine)
    stats.json                  the build's counts (paths and error texts left out)
    LICENCES.md                 per source: licence, access class, what the release redistributes, evidence
    ACKNOWLEDGMENTS.md          each source's citation
    README.md                   how to rebuild

A row is the manifest row (id, source, split, provenance as source-relative paths, image facts, scores,
decision, shard, key, task construction, `image_hashes`: the pixel hash of each image as the build decoded
it, in the sample's order in0, in1, ..., out0, ...) plus `image_members` (the shard's member suffixes, same
order). Texts (the sample's message turns, the source's own metadata, task fields and rendered instructions,
the alignment caption) are carried only where the source's card says `redistribute_text`; image bytes
(`image_data`) only where it says `redistribute_images`. Unknown means no.

One pass over the manifest: the kept rows stream in the manifest's own order (no sort), batch by batch, and
a shard's members are read (by offset, the member tables of the last few shards kept) only for rows whose
images travel or are verified; each shard's sha256 and sample count come after, shard by shard. The hashes
are the build's own (`image_hashes`); nothing is decoded unless `verify` is set, which decodes every kept
image from its shard and counts those whose hash differs (16-bit RGB stored as 8-bit PNG does). A build
written before `image_hashes` existed has its images decoded from the shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from manifests import storage
from manifests.images import ImageDecodeError, decode_bytes
from manifests.query import QUERY_MEMORY_LIMIT, open_build
from manifests.schema import MANIFEST_SCHEMA
from manifests.shards import SHARDS_DIR
from pipeline.curriculum.index import Members, scan_tar
from pipeline.engine.licences import acknowledgments_markdown, card, licences_markdown

RELEASE_FORMAT = "unimed5m-release"
RELEASE_VERSION = 1
RECORDS_FILE = "records/part-00000.parquet"
BATCH_ROWS = 2_000  # manifest rows per batch: what the release holds of the manifest at a time
# Task construction that is no text: which builder, template and seed made a sample, and the refiner's settings.
TASK_BUILD_KEYS = ("builder", "template_version", "template_id", "seed", "params", "refine")
TEXT_COLUMNS = ("align_caption",)

RELEASE_SCHEMA = pa.schema(
    list(MANIFEST_SCHEMA)
    + [
        pa.field("text_redistributed", pa.bool_()),
        pa.field("images_redistributed", pa.bool_()),
        pa.field("image_members", pa.list_(pa.string())),  # in0.png, out0.jpg, ... (the order of image_hashes)
        pa.field("image_data", pa.list_(pa.binary())),  # the bytes, only where the card allows it
    ],
    metadata={"unimed5m.release_version": str(RELEASE_VERSION)},
)


class ReleaseError(RuntimeError):
    """The build cannot be released (not finished, shards missing); the message says what to do."""


@dataclass
class ReleaseSummary:
    out: Path
    rows: int = 0
    kept: int = 0
    shards: int = 0
    texts_carried: int = 0
    images_carried: int = 0
    images_decoded: int = 0  # images decoded from the shards (under --verify, or a build without image_hashes)
    hash_mismatches: int = 0  # decoded shard image whose hash differs from the build's (lossy 16-bit RGB)
    by_source: dict = field(default_factory=dict)


class _ShardMembers:
    """Sample members read by offset; the member tables (tar headers walked on first use) of the last
    `keep` shards used are kept, enough for a manifest whose rows come shard after shard. `root` is the
    build's folder or URL (a ranged read per member on object storage)."""

    def __init__(self, root: str, keep: int = 16):
        self.root, self.keep = root, keep
        self.tables: OrderedDict[str, dict[str, Members]] = OrderedDict()

    def read(self, shard: str, key: str, suffixes: list[str]) -> dict[str, bytes]:
        path = storage.join(self.root, SHARDS_DIR, shard)
        table = self.tables.get(shard)
        if table is None:
            table = self.tables[shard] = dict(scan_tar(path))
            if len(self.tables) > self.keep:
                self.tables.popitem(last=False)
        self.tables.move_to_end(shard)
        found = {}
        with storage.open_input(path) as handle:
            for suffix, offset, size in table.get(key, ()):
                if suffix in suffixes:
                    handle.seek(offset)
                    found[suffix] = handle.read(size)
        return found


def _sha256(path: Path | str, fs=None) -> str:
    """The SHA-256 of a local file, or of `path` on `fs` (a build on object storage: one streamed GET)."""
    with (fs.open(path, "rb") if fs is not None else open(path, "rb")) as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _public_meta(meta: str | None) -> str | None:
    """The task construction of a sample without any of its text (template ids, seed, params, refiner)."""
    if not meta:
        return None
    build = json.loads(meta).get("task_build")
    if not build:
        return None
    kept = {key: build[key] for key in TASK_BUILD_KEYS if key in build}
    return json.dumps({"task_build": kept}, ensure_ascii=False, sort_keys=True)


def _public_sample(sample: str | None) -> str | None:
    """The sample document with every turn's text removed (roles and image references stay)."""
    if not sample:
        return None
    document = json.loads(sample)
    document["message"] = [{"from": turn.get("from"), "value": None} for turn in document.get("message") or []]
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


def _image_refs(sample: str | None) -> list[str]:
    """The member suffixes of a sample's images, in0, in1, ..., out0, ... (its `<key>.json` order)."""
    if not sample:
        return []
    document = json.loads(sample)
    return [ref["path"] for ref in (document.get("input_img") or []) + (document.get("output_img") or [])]


def _release_row(row: dict, shards: _ShardMembers | None, verify: bool, summary: ReleaseSummary) -> dict:
    """A manifest row as the release carries it; `shards` is None for rows outside any shard (rejections)."""
    facts = card(row["source"])
    text_ok = bool(facts and facts.redistribute_text)
    images_ok = bool(facts and facts.redistribute_images)
    row["text_redistributed"], row["images_redistributed"] = text_ok, images_ok
    names = _image_refs(row["sample"]) if shards is not None else []
    if not text_ok:
        row["sample"] = _public_sample(row["sample"])
        row["meta"] = _public_meta(row["meta"])
        for column in TEXT_COLUMNS:
            row[column] = None
    hashes = row.get("image_hashes")
    if names and not hashes and len(names) == 1 and row["pixel_hash"]:
        hashes = [row["pixel_hash"]]  # a build from before image_hashes: its one image's hash
    decode = bool(names) and (verify or not hashes)
    members = shards.read(row["shard"], row["key"], names) if names and (images_ok or decode) else {}
    if decode:
        decoded = []
        for name in names:
            summary.images_decoded += 1
            try:
                decoded.append(decode_bytes(members.get(name) or b"", source_path=name).pixel_hash)
            except ImageDecodeError:
                decoded.append(None)
        if hashes and decoded != list(hashes):
            summary.hash_mismatches += 1
        hashes = hashes or decoded
    row["image_hashes"] = (list(hashes) if names else []) if shards is not None else None
    row["image_members"] = names if shards is not None else None
    data = [members.get(name) for name in names] if images_ok and names else None
    row["image_data"] = data
    summary.texts_carried += int(text_ok and row["sample"] is not None)
    summary.images_carried += len(data) if data else 0
    return row


def write_release(build_dir: Path | str, out: Path, all_rows: bool = False, verify: bool = False) -> ReleaseSummary:
    """Release the build at `build_dir` (a folder, or a URL: read through manifests/storage.py) into `out`."""
    build_dir, out = storage.as_location(build_dir), Path(out)
    fs, root = storage.filesystem(build_dir)
    config_file, stats_file = storage.join(root, "config.resolved.yaml"), storage.join(root, "stats.json")
    if not (fs.isfile(config_file) and fs.isfile(stats_file)):
        raise ReleaseError(f"{build_dir} is not a finished build (no config.resolved.yaml / stats.json); "
                           "run `unimed build` to the end first")
    con = open_build(build_dir, memory_limit=QUERY_MEMORY_LIMIT)
    resolved = yaml.safe_load(storage.read_text(fs, config_file))
    samples = dict(con.execute("SELECT shard, count(*) FROM kept GROUP BY shard").fetchall())
    shards_root = storage.join(root, SHARDS_DIR)
    on_disk = {path[len(shards_root) + 1:] for path in storage.find(fs, shards_root, ".tar")}
    missing = sorted(set(samples) - on_disk, key=str)
    if missing:
        raise ReleaseError(f"{build_dir}/shards lacks {missing[:3]}; rerun `unimed build` to finish it")
    if out.exists() and any(out.iterdir()):
        if not ((out / "release.json").is_file() or {p.name for p in out.iterdir()} <= {"records"}):
            raise ReleaseError(f"{out} exists and is not a release; choose an empty folder")
        shutil.rmtree(out)
    (out / "records").mkdir(parents=True, exist_ok=True)

    summary = ReleaseSummary(out)
    records_tmp = out / "records" / ".part-00000.parquet.tmp"
    present = {row[0] for row in con.execute("DESCRIBE records").fetchall()}  # an older build lacks newer columns
    columns = ", ".join(f'"{name}"' if name in present else f'NULL AS "{name}"' for name in MANIFEST_SCHEMA.names)
    shards = _ShardMembers(storage.location(fs, root))
    with pq.ParquetWriter(records_tmp, RELEASE_SCHEMA) as writer:
        for part in con.sql(f"SELECT {columns} FROM kept").to_arrow_reader(BATCH_ROWS):
            batch = [_release_row(row, shards, verify, summary) for row in part.to_pylist()]
            writer.write_table(pa.Table.from_pylist(batch, schema=RELEASE_SCHEMA))
            summary.kept += len(batch)
        if all_rows:
            reader = con.sql(f"SELECT {columns} FROM rejected").to_arrow_reader(BATCH_ROWS)
            for part in reader:
                batch = [_release_row(row, None, False, summary) for row in part.to_pylist()]
                writer.write_table(pa.Table.from_pylist(batch, schema=RELEASE_SCHEMA))
    os.replace(records_tmp, out / RECORDS_FILE)
    summary.rows = pq.ParquetFile(out / RECORDS_FILE).metadata.num_rows
    shard_facts = [{"name": name, "sha256": _sha256(storage.join(root, SHARDS_DIR, name), fs),
                    "samples": samples[name]} for name in sorted(samples)]  # paths relative to shards/
    summary.shards = len(shard_facts)

    counts = dict(con.execute("SELECT source, count(*) FILTER (status = 'kept') FROM records GROUP BY ALL").fetchall())
    summary.by_source = counts
    sources = {}
    for source in sorted(counts):
        facts = card(source)
        sources[source] = {"kept": counts[source], "licence": facts.licence if facts else None,
                           "access": facts.access if facts else None,
                           "redistribute_text": bool(facts and facts.redistribute_text),
                           "redistribute_images": bool(facts and facts.redistribute_images)}
    digest = resolved.pop("processing_digest", None)
    resolved_sources = resolved.pop("resolved_sources", {}) or {}
    release = {
        "format": RELEASE_FORMAT, "version": RELEASE_VERSION, "recipe": resolved["name"],
        "processing_digest": digest, "rows": "all" if all_rows else "kept", "kept": summary.kept,
        "records": RECORDS_FILE, "shards": shard_facts, "sources": sources,
        "sources_built": sorted(name for name, info in resolved_sources.items() if info.get("root")),
        "images_verified": verify,
        "image_hash_mismatches": summary.hash_mismatches if verify else None,
    }
    stats = json.loads(storage.read_text(fs, stats_file))
    stats["sources_skipped"] = sorted(stats.get("sources_skipped") or {})  # reasons name the builder's paths
    stats["failed_units"] = [unit.get("unit_id") for unit in stats.get("failed_units") or []]
    stats.pop("engine_error", None)
    _write(out / "release.json", json.dumps(release, indent=2, sort_keys=True))
    _write(out / "recipe.yaml", yaml.safe_dump(resolved, sort_keys=False))
    _write(out / "stats.json", json.dumps(stats, indent=2, sort_keys=True))
    _write(out / "LICENCES.md", licences_markdown(counts))
    _write(out / "ACKNOWLEDGMENTS.md", acknowledgments_markdown(counts))
    _write(out / "README.md", _readme(release))
    return summary


def _readme(release: dict) -> str:
    return "\n".join([
        f"# {release['recipe']}: a metadata-only release ({release['kept']} kept samples)", "",
        "No images and no texts are here except where a source's licence allows it (LICENCES.md).",
        "Download each source from its own site under its terms (ACKNOWLEDGMENTS.md lists them), put the",
        "downloads under one folder by their own top folder names (`unimed sources` shows them), then:", "",
        "```", "unimed rebuild RELEASE_DIR --sources-root /data/medical --out build/", "```", "",
        "With the same files the shards come out byte-identical (release.json holds their sha256); an item",
        "whose file is missing is rejected as `source_missing`, one whose pixels differ as `source_changed`.", ""])


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
