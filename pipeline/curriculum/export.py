"""Export a build to the files UniMedVL's released loaders read unmodified (spec section 6.3, issue #11).

    unimed export --format unimedvl build/stage1 --out export/stage1 [--ranks 8 --workers 1]
    unimed export --check export/stage1

Layout written under OUT (every path in it is relative to OUT, so `cp -r` of an export still trains)::

    images/<f1>/.../<digest>.<ext>            each distinct image once, bytes as stored in the shard (PNG stays
                                              lossless), named by their blake2b digest; nested by the digest in
                                              as many levels as the image count needs for about half of
                                              `folder_entries` (10,000) files a folder, never more than that many
                                              subfolders
    jsonl/<registry key>/<dataset>.jsonl      one row per line, ASCII-only JSON; image paths relative to images/
    parquet/t2i/part-NNNNN.parquet            Bagel t2i_pretrain: `image` (bytes), `captions` (JSON string);
                                              at least ranks x workers files (the loader hands out whole files)
    dataset_info.yaml                         DATASET_INFO entries (registry key -> name -> data_dir[, jsonl_path]),
                                              paths relative to OUT
    unimed_dataset_info.py                    merge_into(DATASET_INFO): the same entries, paths resolved against
                                              the folder this file is in (one line in codes/data/dataset_info.py)
    configs/stageN.yaml                       one Bagel dataset config per curriculum stage that has data
    unimed_export.json                        ranks, workers, row counts, skipped rows, warnings (read by --check)

Each row goes to the loader UniMedVL registers for its shape (`route`), not per task family:
counterfactual_generation -> CounterfactualMedicalIterableDataset_ver1; 1 input + 1 output image ->
MedicalImageEditingIterableDataset_ver1; input only -> SftJSONLIterableDataset_Ver1; neither ->
SftJSONLIterableDataset_TextOnly; output only with a gpt (planning) turn or several targets ->
T2IIterableDataset_Ver1 (JSONL); output only, one image, no gpt turn -> Bagel's t2i_pretrain (parquet).
Loaders that place images themselves (editing, counterfactual, T2I) get no `<image>` text; the SFT loader
gets exactly one `<image>` per input image, all in one human turn. Stage 2's planning rows (`<id>/plan`:
prompt, `<think>` plan as a gpt turn, image) go to T2IIterableDataset_Ver1 as they are, with no system turn:
that loader reads only human and gpt turns, and GEN_THINK_SYSTEM_PROMPT is an inference-time prompt (Bagel's
inferencer), not part of the released data code. Rows no released loader reads whole
(two input images to the editing loader, several turns) are left out and reported with the reason.

Stage weights are the curriculum's (schedule.CURRICULUM_STAGES); a family split over two loaders (t2i,
interleaved) shares its weight between them in proportion to their rows. `num_used_data` is the row
count per dataset for the JSONL loaders and the parquet file count for t2i_pretrain, the unit each
loader counts.

One pass: per build, DuckDB counts the kept rows of each shard, then streams the kept rows (shard, key,
family) in the manifest's own order, no sort; a shard is read, once and sequentially, as soon as its last
row has streamed past. Memory holds the labels of the shards still filling (in a manifest written by
finalisation, about one per shard group), one sample's bytes and one row group per open parquet file. A
duplicate image is found by its file already being there (its name is its digest), so nothing grows with
the corpus.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from manifests import storage
from manifests.query import QUERY_MEMORY_LIMIT, ManifestNotFound, limit_memory, manifest_glob
from manifests.records import IMAGE_TOKEN
from manifests.shards import SHARDS_DIR, relative_shard
from pipeline.curriculum.schedule import FAMILIES, CURRICULUM_STAGES
from pipeline.curriculum.index import infer_family, scan_tar, shard_paths

log = logging.getLogger(__name__)

SFT_I2T = "SftJSONLIterableDataset_Ver1"
TEXT_ONLY = "SftJSONLIterableDataset_TextOnly"
T2I_JSONL = "T2IIterableDataset_Ver1"
BAGEL_T2I = "t2i_pretrain"
EDIT = "MedicalImageEditingIterableDataset_ver1"
COUNTERFACTUAL = "CounterfactualMedicalIterableDataset_ver1"
JSONL_LOADERS = (SFT_I2T, TEXT_ONLY, T2I_JSONL, EDIT, COUNTERFACTUAL)
# The loaders of each curriculum family, in config order.
FAMILY_LOADERS = {"i2t": (SFT_I2T,), "t2i": (T2I_JSONL, BAGEL_T2I), "interleaved": (EDIT, COUNTERFACTUAL),
                  "text": (TEXT_ONLY,)}
LOADER_FAMILY = {key: family for family, keys in FAMILY_LOADERS.items() for key in keys}
T2I_PARQUET_NAME = "unimed_t2i"
T2I_PARQUET_DIR = "parquet/t2i"
# Which transform arguments each loader's __init__ takes (transform <- image_transform_args, vit_transform <-
# vit_image_transform_args); a missing required one or an unexpected one is a TypeError at construction.
TRANSFORM_KEYS = {SFT_I2T: ("image_transform_args", "vit_image_transform_args"), TEXT_ONLY: (),
                  T2I_JSONL: ("image_transform_args",), BAGEL_T2I: ("image_transform_args",),
                  EDIT: ("image_transform_args", "vit_image_transform_args"),
                  COUNTERFACTUAL: ("image_transform_args", "vit_image_transform_args")}
# Group keys PackedDataset pops or passes, allowed for every loader; t2i_pretrain takes no shuffle keys.
COMMON_KEYS = ("dataset_names", "num_used_data", "weight", "is_mandatory", "resume_data_status")
SHUFFLE_KEYS = ("shuffle_lines", "shuffle_seed")
# Image sides from the released configs/example.yaml (VAE 512-1024, stride 16; ViT 378-980, stride 14).
VAE_ARGS = {"image_stride": 16, "max_image_size": 1024, "min_image_size": 512}
VIT_ARGS = {"image_stride": 14, "max_image_size": 980, "min_image_size": 378, "max_pixels": 2_007_040}
TRANSFORM_ARGS = {"image_transform_args": VAE_ARGS, "vit_image_transform_args": VIT_ARGS}
# The loaders skip an image with a side of 4096 or more (JSONL; parquet: more) or over 20M pixels.
MAX_SIDE, MAX_PIXELS = 4096, 20_000_000
DEFAULT_RANKS, DEFAULT_WORKERS = 8, 1  # UniMedVL's train_example.sh: 8 GPUs, num_workers 1
SETTINGS_FILE = "unimed_export.json"
FOLDER_ENTRIES = 10_000  # at most this many files or folders in any folder of images/
SKIPPED_LISTED = 1_000  # skipped rows named one by one in unimed_export.json; the rest are counted


class Unreadable(ValueError):
    """A row no released loader reads whole; the message is the reason."""


@dataclass
class ExportReport:
    out: Path
    ranks: int = DEFAULT_RANKS
    workers: int = DEFAULT_WORKERS
    rows: Counter = field(default_factory=Counter)  # (registry key, dataset) -> JSONL rows
    images: int = 0  # image files written (distinct images)
    image_refs: int = 0  # image references of the exported JSONL rows
    skipped_count: int = 0  # `skipped` names the first SKIPPED_LISTED of them
    t2i_rows: int = 0
    t2i_files: int = 0
    stages: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def skip(self, why: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < SKIPPED_LISTED:
            self.skipped.append(why)


def iter_shard(path: Path | str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {suffix: bytes}) per sample, reading the tar sequentially: one sample in memory."""
    key, members = None, {}
    with storage.open_input(path) as stream, tarfile.open(fileobj=stream, mode="r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.rsplit("/", 1)[-1]
            this_key, dot, suffix = name.partition(".")
            if not dot:
                continue
            if key is not None and this_key != key:
                yield key, members
                members = {}
            key = this_key
            members[suffix] = tar.extractfile(member).read()
    if key is not None:
        yield key, members


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "unknown"


def _without_placeholders(text: str) -> str:
    """The text with every `<image>` (and the spaces around it) removed, for loaders that place images."""
    return re.sub(r" *" + re.escape(IMAGE_TOKEN) + " *", " ", text).strip()


def t2i_caption(doc: dict[str, Any]) -> str:
    """The T2I prompt: the human turns' text, placeholders removed."""
    turns = [t.get("value", "") for t in doc.get("message") or [] if t.get("from") == "human"]
    return " ".join(" ".join(turns).replace(IMAGE_TOKEN, " ").split())


def _turns(doc: dict[str, Any]) -> list[dict[str, str]]:
    message = doc.get("message")
    if not isinstance(message, list) or not message:
        raise Unreadable("no message turns")
    for turn in message:
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise Unreadable("a message turn without a string value")
        if turn.get("from") not in ("human", "gpt"):
            raise Unreadable(f"message role {turn.get('from')!r}: the loaders read only human and gpt turns")
    return [{"from": t["from"], "value": t["value"]} for t in message]


def route(doc: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    """(registry key, message as that loader must see it) for one row, or Unreadable with the reason."""
    n_in, n_out = len(doc.get("input_img") or []), len(doc.get("output_img") or [])
    turns = _turns(doc)
    roles = Counter(t["from"] for t in turns)
    if any(IMAGE_TOKEN in t["value"] for t in turns if t["from"] == "gpt"):
        raise Unreadable("<image> in a gpt turn: no loader places it, it would be tokenized as text")
    gpt_text = any(t["value"].strip() for t in turns if t["from"] == "gpt")
    if doc.get("main_task_type") == "counterfactual_generation" or (n_in and n_out):
        key = COUNTERFACTUAL if doc.get("main_task_type") == "counterfactual_generation" else EDIT
        if n_in != 1 or n_out != 1:
            raise Unreadable(f"{key} reads input_img[0] and output_img[0] only (row: {n_in} in, {n_out} out)")
        if roles["human"] != 1 or roles["gpt"] != 1:
            raise Unreadable(f"{key} keeps one human and one gpt turn (row: {dict(roles)})")
        clean = [{**t, "value": _without_placeholders(t["value"])} for t in turns]
        if not any(t["value"] for t in clean if t["from"] == "human"):
            raise Unreadable(f"{key} tokenizes the human instruction; the row has none besides <image>")
        return key, clean
    if n_out:
        clean = [{**t, "value": _without_placeholders(t["value"])} for t in turns]
        clean = [t for t in clean if t["value"]]  # T2IIterableDataset_Ver1 tokenizes every turn, empty ones too
        if not any(t["value"] for t in clean if t["from"] == "human"):
            raise Unreadable("text-to-image row without a prompt")
        return (T2I_JSONL if gpt_text or n_out > 1 else BAGEL_T2I), clean
    if not gpt_text:
        raise Unreadable("no gpt turn with text: the loader finds no loss-bearing element")
    if not n_in:
        return TEXT_ONLY, [{**t, "value": _without_placeholders(t["value"])} for t in turns]
    if not roles["human"]:
        raise Unreadable(f"{SFT_I2T} places images in a human turn; the row has none")
    counts = [t["value"].count(IMAGE_TOKEN) for t in turns if t["from"] == "human"]
    if sum(counts) == 0:  # place the images before the first human turn's text
        first = next(i for i, t in enumerate(turns) if t["from"] == "human")
        turns[first] = {**turns[first], "value": (IMAGE_TOKEN + "\n") * n_in + turns[first]["value"]}
    elif max(counts) != n_in or sum(counts) != n_in:
        raise Unreadable(f"{SFT_I2T} numbers <image> per human turn: {counts} placeholders for {n_in} input images "
                         "(all must be in one human turn)")
    return SFT_I2T, turns


def _image_size(data: bytes, ref: dict[str, Any]) -> tuple[int, int]:
    if isinstance(ref.get("width"), int) and isinstance(ref.get("height"), int):
        return ref["width"], ref["height"]
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:  # header only
        return image.size


class _T2IParquet:
    """Bagel t2i_pretrain files, rows dealt round-robin over `slots` open files (ranks x workers, so the
    loader, which hands out whole files, gives every rank and worker one); a slot's file is closed and a
    new one opened every `rows_per_file` rows, and flushed every `row_group` rows."""

    def __init__(self, folder: Path, slots: int, rows_per_file: int, row_group: int):
        self.folder, self.rows_per_file, self.row_group = folder, rows_per_file, row_group
        self.slots: list[dict[str, Any] | None] = [None] * max(1, slots)
        self.files = self.rows = 0

    @staticmethod
    def _schema():
        import pyarrow as pa

        return pa.schema([("image", pa.binary()), ("captions", pa.string())])

    def add(self, image: bytes, captions: str) -> None:
        import pyarrow.parquet as pq

        index = self.rows % len(self.slots)
        slot = self.slots[index]
        if slot is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"part-{self.files:05d}.parquet"
            tmp = self.folder / f".{name}.tmp"
            slot = self.slots[index] = {"name": name, "tmp": tmp, "rows": 0, "buffer": [],
                                        "writer": pq.ParquetWriter(tmp, self._schema())}
            self.files += 1
        slot["buffer"].append((image, captions))
        slot["rows"] += 1
        self.rows += 1
        if len(slot["buffer"]) >= self.row_group:
            self._flush(slot)
        if slot["rows"] >= self.rows_per_file:
            self._close(index)

    def _flush(self, slot: dict[str, Any]) -> None:
        import pyarrow as pa

        if slot["buffer"]:
            images, captions = zip(*slot["buffer"])
            slot["writer"].write_table(pa.table({"image": list(images), "captions": list(captions)},
                                                schema=self._schema()))
            slot["buffer"] = []

    def _close(self, index: int) -> None:
        slot = self.slots[index]
        if slot is None:
            return
        self._flush(slot)
        slot["writer"].close()
        os.replace(slot["tmp"], self.folder / slot["name"])
        self.slots[index] = None

    def close(self) -> None:
        for index in range(len(self.slots)):
            self._close(index)


Labels = dict[str, str]  # key -> task family of one shard's kept samples


def export_unimedvl(builds: Sequence[Path | str], out: Path | str, ranks: int = DEFAULT_RANKS,
                    workers: int = DEFAULT_WORKERS, rows_per_file: int = 10_000, row_group: int = 64,
                    folder_entries: int = FOLDER_ENTRIES) -> ExportReport:
    if ranks < 1 or workers < 1:
        raise ValueError(f"--ranks and --workers must be at least 1 (got {ranks}, {workers})")
    out = Path(out)
    _clear_earlier_export(out)
    jsonl_dir = out / "jsonl"
    report = ExportReport(out, ranks, workers)
    images = ImageFiles(out / "images", folder_entries, expected_images(builds))
    jsonl: dict[tuple[str, str], Any] = {}
    t2i = _T2IParquet(out / T2I_PARQUET_DIR, ranks * workers, rows_per_file, row_group)
    try:
        for shard, name, labels in shards_to_export(builds):
            for key, members in iter_shard(shard):
                where = f"{name}:{key}"
                label = None
                if labels is not None:
                    label = labels.pop(key, None)
                    if label is None:
                        report.skip(f"{where} (not a kept sample of the manifest)")
                        continue
                if "json" not in members:
                    report.skip(f"{where} (no json member)")
                    continue
                doc = json.loads(members.pop("json"))
                family = label or infer_family(doc)
                if family not in FAMILIES:
                    report.skip(f"{where} (task family {family!r})")
                    continue
                try:
                    registry, message = route(doc)
                    _check_images(doc, members)
                except Unreadable as reason:
                    report.skip(f"{where} ({reason})")
                    continue
                if registry == BAGEL_T2I:
                    caption = " ".join(t["value"] for t in message if t["from"] == "human")
                    t2i.add(members[doc["output_img"][0]["path"]],
                            json.dumps({"caption": " ".join(caption.split())}, ensure_ascii=True))
                    continue
                dataset = _safe(str(doc.get("dataset") or "unknown"))
                record = _export_images(doc, members, images)
                record["message"] = message
                handle = jsonl.get((registry, dataset))
                if handle is None:
                    path = jsonl_dir / registry / f"{dataset}.jsonl"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    handle = jsonl[(registry, dataset)] = open(path, "w", encoding="ascii")
                handle.write(json.dumps(record, ensure_ascii=True, sort_keys=True) + "\n")
                report.rows[(registry, dataset)] += 1
            for key in sorted(labels or ()):
                report.skip(f"{name}:{key} (in the manifest, not in its shard)")
    finally:
        for handle in jsonl.values():
            handle.close()
        t2i.close()
    report.images, report.image_refs = images.files, images.references
    report.t2i_rows, report.t2i_files = t2i.rows, t2i.files
    _write_yaml(out / "dataset_info.yaml", dataset_info(report))
    _write_text(out / "unimed_dataset_info.py", MERGE_MODULE)
    for number in CURRICULUM_STAGES:
        config = stage_config(report, number)
        path = out / "configs" / f"stage{number}.yaml"
        if config:
            _write_yaml(path, config)
            report.stages.append(number)
        else:
            path.unlink(missing_ok=True)
            report.warnings.append(f"no configs/stage{number}.yaml: the export has no data for any task family "
                                   f"stage {number} trains on")
    report.warnings.extend(size_warnings(report))
    settings = {"format": "unimedvl", "ranks": ranks, "workers": workers, "stages": report.stages,
                "rows": {f"{k}/{d}": n for (k, d), n in sorted(report.rows.items())},
                "t2i_parquet": {"rows": report.t2i_rows, "files": report.t2i_files},
                "images": {"files": report.images, "references": report.image_refs,
                           "folder_entries": folder_entries},
                "skipped_count": report.skipped_count, "skipped": report.skipped, "warnings": report.warnings}
    _write_text(out / SETTINGS_FILE, json.dumps(settings, indent=1, ensure_ascii=True) + "\n")
    for warning in report.warnings:
        log.warning("%s", warning)
    return report


def shards_to_export(builds: Sequence[Path | str]) -> Iterator[tuple[str, str, Labels | None]]:
    """(shard location, its name under shards/, its kept samples' families by key), build after build. With a
    manifest: the kept rows per shard counted, then the rows streamed in the manifest's order, and a shard given
    when its last row has passed (so the shards come in the order they complete); without one, every shard on
    disk, labels None (families read from the samples)."""
    for build in builds:
        try:
            glob = manifest_glob(build)
        except ManifestNotFound:
            for shard in shard_paths([build]):
                yield shard, relative_shard(build, shard), None
            continue
        fs, root = storage.filesystem(build)
        con = limit_memory(storage.duckdb_connect(fs), QUERY_MEMORY_LIMIT)
        kept = (f"FROM read_parquet('{glob.replace(chr(39), chr(39) * 2)}', union_by_name = true) "
                "WHERE status = 'kept' AND shard IS NOT NULL")
        try:
            expected = dict(con.execute(f"SELECT shard, count(*) {kept} GROUP BY shard").fetchall())
            filling: dict[str, Labels] = {}
            for batch in con.sql(f"SELECT shard, key, task_family {kept}").to_arrow_reader(10_000):
                columns = batch.to_pydict()
                for shard, key, family in zip(columns["shard"], columns["key"], columns["task_family"]):
                    labels = filling.setdefault(shard, {})
                    labels[key] = family
                    if len(labels) == expected[shard]:
                        path = storage.join(root, SHARDS_DIR, shard)
                        if not storage.exists(fs, path):
                            raise FileNotFoundError(f"shard {shard} named by the manifest of {build} is missing; "
                                                    "rebuild or restore it")
                        yield storage.location(fs, path), shard, filling.pop(shard)
        finally:
            con.close()


def expected_images(builds: Sequence[Path | str]) -> int:
    """How many image references the builds' kept samples hold (what sizes images/): from each manifest's
    image counts, or, for a build without them, from its shards' tar headers."""
    total = 0
    for build in builds:
        try:
            glob = manifest_glob(build)
        except ManifestNotFound:
            glob = None
        if glob is not None:
            con = storage.duckdb_connect(storage.filesystem(build)[0])
            source = f"read_parquet('{glob.replace(chr(39), chr(39) * 2)}', union_by_name = true)"
            columns = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
            if {"n_input_images", "n_output_images"} <= columns:
                total += con.execute(f"SELECT coalesce(sum(coalesce(n_input_images, 0) + coalesce(n_output_images, "
                                     f"0)), 0) FROM {source} WHERE status = 'kept'").fetchall()[0][0]
                con.close()
                continue
            con.close()
        total += sum(1 for shard in shard_paths([build]) for _, members in scan_tar(shard)
                     for suffix, _, _ in members if suffix != "json")
    return int(total)


class ImageFiles:
    """The export's images/: each distinct image (by the bytes' blake2b digest) written once, in nested folders.
    The digest picks a folder at each of `levels` levels out of `fanout` (half of `entries`), with as many
    levels as `expected` images need for about `fanout` files a leaf folder: no folder holds more than
    `fanout` subfolders, and a leaf more than `entries` files only with a vanishing probability (a binomial at
    twice its mean). A later row with the same bytes finds the file there and points at it."""

    def __init__(self, root: Path, entries: int = FOLDER_ENTRIES, expected: int = 0):
        if entries < 2:
            raise ValueError(f"folder_entries must be at least 2 (got {entries})")
        self.root, self.fanout = root, max(2, entries // 2)
        self.width = len(str(self.fanout - 1))
        self.levels = 0
        while expected > self.fanout ** (self.levels + 1):
            self.levels += 1
        self.files = self.references = 0
        self._folder: Path | None = None

    def relative(self, digest: str, extension: str) -> str:
        """`<f1>/.../<digest>.<ext>`: the folders are the digest's last base-`fanout` digits."""
        value, folders = int(digest, 16), []
        for _ in range(self.levels):
            value, digit = divmod(value, self.fanout)
            folders.append(f"{digit:0{self.width}d}")
        return "/".join([*folders, f"{digest}.{extension}"])

    def place(self, member: str, data: bytes) -> str:
        """The path (relative to images/) of the file holding these bytes, written unless already there."""
        self.references += 1
        relative = self.relative(hashlib.blake2b(data, digest_size=16).hexdigest(), member.rsplit(".", 1)[-1])
        target = self.root / relative
        if not target.exists():
            if target.parent != self._folder:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._folder = target.parent
            target.write_bytes(data)
            self.files += 1
        return relative


def _clear_earlier_export(out: Path) -> None:
    """An earlier export in OUT is replaced whole (stale files would be unregistered data); any other
    non-empty folder is refused."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / SETTINGS_FILE).is_file():
        raise ValueError(f"{out} is not empty and holds no earlier export; give a new or empty --out folder")
    for name in ("images", "jsonl", "parquet", "configs"):
        shutil.rmtree(out / name, ignore_errors=True)


def _check_images(doc: dict[str, Any], members: dict[str, bytes]) -> None:
    for role in ("input_img", "output_img"):
        for ref in doc.get(role) or []:
            if not isinstance(ref, dict) or ref.get("path") not in members:
                raise Unreadable(f"{role} names {ref!r}, which is not in the shard")
            width, height = _image_size(members[ref["path"]], ref)
            if max(width, height) >= MAX_SIDE or width * height > MAX_PIXELS:
                raise Unreadable(f"{role} image {width}x{height}: the loaders skip sides >= {MAX_SIDE} "
                                 f"or more than {MAX_PIXELS} pixels")


def _export_images(doc: dict[str, Any], members: dict[str, bytes], images: ImageFiles) -> dict[str, Any]:
    """The row with each image reference pointing at its file under images/."""
    record = dict(doc)
    for role in ("input_img", "output_img"):
        record[role] = [{**ref, "path": images.place(ref["path"], members[ref["path"]])} for ref in doc.get(role) or []]
    return record


def dataset_info(report: ExportReport) -> dict[str, Any]:
    """DATASET_INFO entries, paths relative to the export root; only the keys the loaders read."""
    info: dict[str, Any] = {}
    for (registry, dataset) in sorted(report.rows):
        info.setdefault(registry, {})[dataset] = {"data_dir": "images",
                                                  "jsonl_path": f"jsonl/{registry}/{dataset}.jsonl"}
    if report.t2i_files:
        info[BAGEL_T2I] = {T2I_PARQUET_NAME: {"data_dir": T2I_PARQUET_DIR}}
    return info


def loader_units(report: ExportReport) -> dict[str, dict[str, int]]:
    """registry key -> dataset -> what num_used_data counts for it (JSONL rows; parquet files)."""
    units: dict[str, dict[str, int]] = {}
    for (registry, dataset), count in sorted(report.rows.items()):
        units.setdefault(registry, {})[dataset] = count
    if report.t2i_files:
        units[BAGEL_T2I] = {T2I_PARQUET_NAME: report.t2i_files}
    return units


def group_args(registry: str, names: dict[str, int], weight: float) -> dict[str, Any]:
    group: dict[str, Any] = {"dataset_names": sorted(names), "is_mandatory": False,
                             "num_used_data": [names[n] for n in sorted(names)], "weight": weight}
    for key in TRANSFORM_KEYS[registry]:
        group[key] = dict(TRANSFORM_ARGS[key])
    return group


def stage_config(report: ExportReport, stage: int) -> dict[str, Any]:
    """A Bagel dataset config for one stage: one group per loader with data, at its family's weight (a family
    on two loaders shares the weight in proportion to their rows); {} when the stage has no data."""
    weights = CURRICULUM_STAGES[stage].weights
    units = loader_units(report)
    rows = {key: sum(n for (k, _), n in report.rows.items() if k == key) for key in JSONL_LOADERS}
    rows[BAGEL_T2I] = report.t2i_rows
    config: dict[str, Any] = {}
    for family in FAMILIES:
        present = [key for key in FAMILY_LOADERS[family] if units.get(key)]
        total = sum(rows[key] for key in present)
        if weights.get(family, 0) <= 0 or not total:
            continue
        for key in present:
            config[key] = group_args(key, units[key], round(float(weights[family]) * rows[key] / total, 6))
    missing = [f for f in FAMILIES if weights.get(f, 0) > 0 and not any(LOADER_FAMILY[k] == f for k in config)]
    if config and missing:
        log.warning("stage %d config: the export has no %s samples; Bagel renormalises over the rest", stage, missing)
    return config


def size_warnings(report: ExportReport) -> list[str]:
    """Groups with fewer rows (JSONL) or files (parquet) than ranks x workers: some rank or worker gets an
    empty share, and the released loaders loop on it forever without yielding."""
    need = report.ranks * report.workers
    warnings = []
    for registry, names in loader_units(report).items():
        have = sum(names.values())
        if have < need:
            unit = "parquet files" if registry == BAGEL_T2I else "rows"
            warnings.append(f"group {registry}: {have} {unit} for {report.ranks} ranks x {report.workers} workers "
                            f"= {need}: some rank gets no data and its loader loops forever without yielding; "
                            f"train on fewer ranks/workers, or add data to this group")
    return warnings


MERGE_MODULE = '''"""DATASET_INFO entries of this export, paths resolved against this folder (written by `unimed export`).

Append one line to UniMedVL's codes/data/dataset_info.py (after DATASET_INFO is defined):

    import runpy; runpy.run_path("/path/to/this/export/unimed_dataset_info.py")["merge_into"](DATASET_INFO)
"""

import os

import yaml

ROOT = os.path.dirname(os.path.abspath(__file__))


def entries(root=ROOT):
    """registry key -> dataset -> {data_dir, jsonl_path}, absolute under `root`."""
    with open(os.path.join(root, "dataset_info.yaml"), encoding="utf-8") as handle:
        info = yaml.safe_load(handle) or {}
    for names in info.values():
        for meta in names.values():
            for key in ("data_dir", "jsonl_path"):
                if key in meta and not os.path.isabs(meta[key]):
                    meta[key] = os.path.join(root, meta[key])
    return info


def merge_into(dataset_info, root=ROOT):
    """Add this export's entries to DATASET_INFO, per registry key (entries already there are kept)."""
    for registry, names in entries(root).items():
        dataset_info.setdefault(registry, {}).update(names)
    return dataset_info
'''


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    _write_text(path, yaml.safe_dump(data, sort_keys=False))
