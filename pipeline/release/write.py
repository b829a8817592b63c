"""`unimed release BUILD --out DIR`: a metadata-only release of a finished build, as UniMedVL-5M ships its part1/.

A release folder holds::

    records/part-00000.parquet  one row per kept sample (every row with --all-rows), shard by shard
    release.json                recipe name, processing digest, the shards' sha256, per-source licence facts
    recipe.yaml                 the recipe as run (no paths of the builder's machine)
    stats.json                  the build's counts (paths and error texts left out)
    LICENCES.md                 per source: licence, access class, what the release redistributes, evidence
    ACKNOWLEDGMENTS.md          each source's citation
    README.md                   how to rebuild

A row is the manifest row (id, source, split, provenance as source-relative paths, image facts, scores,
decision, shard, key, task construction) plus `image_members` / `image_hashes` (the pixel hash of each
decoded image, in the sample's order: in0, in1, ..., out0, ...). Texts (the sample's message turns, the
source's own metadata, task fields and rendered instructions, the alignment caption) are carried only
where the source's card says `redistribute_text`; image bytes (`image_data`) only where it says
`redistribute_images`. Unknown means no.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from manifests import storage
from manifests.images import ImageDecodeError, decode_bytes
from manifests.query import open_build
from manifests.schema import MANIFEST_SCHEMA
from pipeline.engine.licences import acknowledgments_markdown, card, licences_markdown

RELEASE_FORMAT = "unimed5m-release"
RELEASE_VERSION = 1
RECORDS_FILE = "records/part-00000.parquet"
# Task construction that is no text: which builder, template and seed made a sample, and the refiner's settings.
TASK_BUILD_KEYS = ("builder", "template_version", "template_id", "seed", "params", "refine")
TEXT_COLUMNS = ("align_caption",)

RELEASE_SCHEMA = pa.schema(
    list(MANIFEST_SCHEMA)
    + [
        pa.field("text_redistributed", pa.bool_()),
        pa.field("images_redistributed", pa.bool_()),
        pa.field("image_members", pa.list_(pa.string())),  # in0.png, out0.jpg, ... (the shard's member suffixes)
        pa.field("image_hashes", pa.list_(pa.string())),  # pixel hash of each decoded image, same order
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
    hash_mismatches: int = 0  # decoded shard image whose hash differs from the manifest's (lossy 16-bit RGB)
    by_source: dict = field(default_factory=dict)


def _shard_members(fs, path: str) -> dict[str, dict[str, bytes]]:
    """key -> {suffix: bytes} of one shard (a local file, or one streamed GET on object storage)."""
    members: dict[str, dict[str, bytes]] = {}
    with fs.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r:") as tar:
        for info in tar:
            if not info.isfile():
                continue
            key, _, suffix = info.name.partition(".")
            members.setdefault(key, {})[suffix] = tar.extractfile(info).read()
    return members


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


def _release_row(row: dict, members: dict[str, bytes] | None, summary: ReleaseSummary) -> dict:
    facts = card(row["source"])
    text_ok = bool(facts and facts.redistribute_text)
    images_ok = bool(facts and facts.redistribute_images)
    row["text_redistributed"], row["images_redistributed"] = text_ok, images_ok
    if not text_ok:
        row["sample"] = _public_sample(row["sample"])
        row["meta"] = _public_meta(row["meta"])
        for column in TEXT_COLUMNS:
            row[column] = None
    names, hashes, data = [], [], []
    if members is not None and row["sample"]:
        document = json.loads(row["sample"])
        for ref in (document.get("input_img") or []) + (document.get("output_img") or []):
            payload = members.get(ref["path"])
            names.append(ref["path"])
            try:
                hashes.append(decode_bytes(payload or b"", source_path=ref["path"]).pixel_hash)
            except ImageDecodeError:
                hashes.append(None)
            data.append(payload)
        if hashes and hashes[0] != row["pixel_hash"]:
            summary.hash_mismatches += 1
    row["image_members"] = names if members is not None else None
    row["image_hashes"] = hashes if members is not None else None
    row["image_data"] = data if (images_ok and members is not None) else None
    summary.texts_carried += int(text_ok and row["sample"] is not None)
    summary.images_carried += len(data) if row["image_data"] else 0
    return row


def write_release(build_dir: Path | str, out: Path, all_rows: bool = False) -> ReleaseSummary:
    """Release the build at `build_dir` (a folder, or a URL: read through manifests/storage.py) into `out`."""
    build_dir, out = storage.as_location(build_dir), Path(out)
    fs, root = storage.filesystem(build_dir)
    config_file, stats_file = storage.join(root, "config.resolved.yaml"), storage.join(root, "stats.json")
    if not (fs.isfile(config_file) and fs.isfile(stats_file)):
        raise ReleaseError(f"{build_dir} is not a finished build (no config.resolved.yaml / stats.json); "
                           "run `unimed build` to the end first")
    con = open_build(build_dir)
    resolved = yaml.safe_load(storage.read_text(fs, config_file))
    shards = [name for (name,) in con.execute("SELECT DISTINCT shard FROM kept ORDER BY 1").fetchall()]
    present_shards = {relative for relative in (path[len(storage.join(root, "shards")) + 1:]
                                                for path in storage.find(fs, storage.join(root, "shards"), ".tar"))}
    missing = [name for name in shards if name not in present_shards]
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
    shard_facts = []
    with pq.ParquetWriter(records_tmp, RELEASE_SCHEMA) as writer:
        for name in shards:  # shard by shard (paths relative to shards/), id order within each
            path = storage.join(root, "shards", name)
            members = _shard_members(fs, path)
            cursor = con.execute(f"SELECT {columns} FROM kept WHERE shard = ? ORDER BY id", [name])
            rows = [dict(zip(MANIFEST_SCHEMA.names, values)) for values in cursor.fetchall()]
            batch = [_release_row(row, members.get(row["key"], {}), summary) for row in rows]
            writer.write_table(pa.Table.from_pylist(batch, schema=RELEASE_SCHEMA))
            shard_facts.append({"name": name, "sha256": _sha256(path, fs), "samples": len(rows)})
            summary.kept += len(rows)
        if all_rows:
            reader = con.sql(f"SELECT {columns} FROM rejected ORDER BY id").to_arrow_reader(10_000)
            for part in reader:
                batch = [_release_row(row, None, summary) for row in part.to_pylist()]
                writer.write_table(pa.Table.from_pylist(batch, schema=RELEASE_SCHEMA))
    os.replace(records_tmp, out / RECORDS_FILE)
    summary.rows = pq.ParquetFile(out / RECORDS_FILE).metadata.num_rows
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
        "image_hash_mismatches": summary.hash_mismatches,
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
