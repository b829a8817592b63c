"""Export a build to the files UniMedVL's and Bagel's released loaders read (spec section 6.3).

    unimed export --format unimedvl build/stage1 --out export/stage1

Layout written under OUT::

    images/<dataset>/<key>.<member>          every image, bytes as stored in the shard (PNG stays lossless)
    jsonl/<family>/<dataset>.jsonl           UniMedVL records: input_img / output_img paths relative to images/,
                                             message with one <image> per input image
    parquet/t2i/part-00000.parquet           Bagel t2i_pretrain: `image` (encoded bytes), `captions` (JSON string)
    dataset_info.yaml                        DATASET_INFO entries: registry key -> name -> data_dir, jsonl_path, ...
    configs/stage{1,2,3}.yaml                Bagel dataset configs: groups with dataset_names, weight,
                                             num_used_data, is_mandatory, carrying that stage's weights

Registry keys follow UniMedVL's `data/dataset_info.py`: i2t -> SftJSONLIterableDataset_Ver1, text ->
SftJSONLIterableDataset_TextOnly, interleaved -> MedicalImageEditingIterableDataset_ver1, t2i ->
T2IIterableDataset_Ver1 (JSONL) and Bagel's t2i_pretrain (parquet). The stage configs use the parquet
group for T2I (listing both would count T2I twice). Weights are written as the paper gives them
(relative; Bagel normalises by cumsum / sum). Streamed: one sample's bytes in memory at a time, plus
one Parquet row group.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from pipeline.curriculum.schedule import FAMILIES, CURRICULUM_STAGES
from manifests.shards import relative_shard
from pipeline.curriculum.index import infer_family, ManifestLabels, shard_paths
from manifests.records import IMAGE_TOKEN

log = logging.getLogger(__name__)

REGISTRY_KEY = {"i2t": "SftJSONLIterableDataset_Ver1", "text": "SftJSONLIterableDataset_TextOnly",
                "interleaved": "MedicalImageEditingIterableDataset_ver1", "t2i": "T2IIterableDataset_Ver1"}
BAGEL_T2I = "t2i_pretrain"
T2I_PARQUET_NAME = "unimed_t2i"
# Image sides from the paper's stage table (VAE 512-1024, stride 16; ViT 378-980, stride 14).
VAE_ARGS = {"image_stride": 16, "max_image_size": 1024, "min_image_size": 512}
VIT_ARGS = {"image_stride": 14, "max_image_size": 980, "min_image_size": 378}


@dataclass
class ExportReport:
    out: Path
    samples: Counter = field(default_factory=Counter)  # (family, dataset) -> samples
    images: int = 0
    t2i_rows: int = 0
    t2i_files: int = 0
    skipped: list[str] = field(default_factory=list)


def iter_shard(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {suffix: bytes}) per sample, reading the tar sequentially: one sample in memory."""
    key, members = None, {}
    with tarfile.open(path, "r:") as tar:
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


def t2i_caption(doc: dict[str, Any]) -> str:
    """The T2I prompt: the human turns' text, placeholders removed."""
    turns = [t.get("value", "") for t in doc.get("message") or [] if t.get("from") == "human"]
    return " ".join(" ".join(turns).replace(IMAGE_TOKEN, " ").split())


class _T2IParquet:
    """Bagel t2i_pretrain shards: rolled every `rows_per_file`, flushed every `row_group` rows."""

    def __init__(self, folder: Path, rows_per_file: int, row_group: int):
        self.folder, self.rows_per_file, self.row_group = folder, rows_per_file, row_group
        self.writer, self.buffer, self.rows_in_file, self.files, self.rows = None, [], 0, 0, 0

    def add(self, image: bytes, captions: str) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.tmp = self.folder / f".part-{self.files:05d}.parquet.tmp"
            self.writer = pq.ParquetWriter(self.tmp, self._schema())
        self.buffer.append((image, captions))
        self.rows += 1
        self.rows_in_file += 1
        if len(self.buffer) >= self.row_group:
            self._flush()
        if self.rows_in_file >= self.rows_per_file:
            self._close_file()

    @staticmethod
    def _schema():
        import pyarrow as pa

        return pa.schema([("image", pa.binary()), ("captions", pa.string())])

    def _flush(self) -> None:
        import pyarrow as pa

        if self.buffer:
            images, captions = zip(*self.buffer)
            self.writer.write_table(pa.table({"image": list(images), "captions": list(captions)},
                                             schema=self._schema()))
            self.buffer = []

    def _close_file(self) -> None:
        if self.writer is None:
            return
        self._flush()
        self.writer.close()
        os.replace(self.tmp, self.folder / f"part-{self.files:05d}.parquet")
        self.writer, self.rows_in_file, self.files = None, 0, self.files + 1

    def close(self) -> None:
        self._close_file()


def export_unimedvl(builds: Sequence[Path | str], out: Path | str, rows_per_file: int = 10_000,
                    row_group: int = 256) -> ExportReport:
    out = Path(out).resolve()
    images_dir, jsonl_dir = out / "images", out / "jsonl"
    report = ExportReport(out)
    jsonl: dict[tuple[str, str], Any] = {}
    t2i = _T2IParquet(out / "parquet" / "t2i", rows_per_file, row_group)
    try:
        for build in builds:
            manifest = ManifestLabels(Path(build))  # queried per shard: memory does not grow with the build
            for shard in shard_paths([build]):
                name = relative_shard(build, shard)
                labels = manifest.for_shard(name)
                for key, members in iter_shard(shard):
                    if "json" not in members:
                        report.skipped.append(f"{name}:{key} (no json member)")
                        continue
                    doc = json.loads(members.pop("json"))
                    family = labels.get(key, (infer_family(doc),))[0]
                    if family not in FAMILIES:
                        report.skipped.append(f"{name}:{key} (task family {family!r})")
                        continue
                    dataset = _safe(str(doc.get("dataset") or "unknown"))
                    record = _export_images(doc, members, images_dir, dataset, key, report)
                    handle = jsonl.get((family, dataset))
                    if handle is None:
                        path = jsonl_dir / family / f"{dataset}.jsonl"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        handle = jsonl[(family, dataset)] = open(path, "w", encoding="utf-8")
                    handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                    report.samples[(family, dataset)] += 1
                    if family == "t2i" and doc.get("output_img"):
                        image = members[doc["output_img"][0]["path"]]
                        t2i.add(image, json.dumps({"caption": t2i_caption(doc)}, ensure_ascii=False))
    finally:
        for handle in jsonl.values():
            handle.close()
        t2i.close()
    report.t2i_rows, report.t2i_files = t2i.rows, t2i.files
    _write_yaml(out / "dataset_info.yaml", dataset_info(report))
    for number in CURRICULUM_STAGES:
        _write_yaml(out / "configs" / f"stage{number}.yaml", stage_config(report, number))
    return report


def _export_images(doc: dict[str, Any], members: dict[str, bytes], images_dir: Path, dataset: str, key: str,
                   report: ExportReport) -> dict[str, Any]:
    record = dict(doc)
    for role in ("input_img", "output_img"):
        refs = []
        for ref in doc.get(role) or []:
            relative = f"{dataset}/{key}.{ref['path']}"
            target = images_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(members[ref["path"]])
            report.images += 1
            refs.append({**ref, "path": relative})
        record[role] = refs
    return record


def dataset_info(report: ExportReport) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for (family, dataset), count in sorted(report.samples.items()):
        info.setdefault(REGISTRY_KEY[family], {})[dataset] = {
            "data_dir": str(report.out / "images"),
            "jsonl_path": str(report.out / "jsonl" / family / f"{dataset}.jsonl"),
            "num_total_samples": count}
    if report.t2i_rows:
        info[BAGEL_T2I] = {T2I_PARQUET_NAME: {"data_dir": str(report.out / "parquet" / "t2i"),
                                              "num_files": report.t2i_files, "num_total_samples": report.t2i_rows}}
    return info


def stage_config(report: ExportReport, stage: int) -> dict[str, Any]:
    """A Bagel dataset config for one stage: one group per task family present, at the stage's weight."""
    weights = CURRICULUM_STAGES[stage].weights
    config: dict[str, Any] = {}
    for family in FAMILIES:
        if weights.get(family, 0) <= 0:
            continue
        if family == "t2i":
            if not report.t2i_rows:
                continue
            config[BAGEL_T2I] = {"dataset_names": [T2I_PARQUET_NAME], "image_transform_args": dict(VAE_ARGS),
                                 "is_mandatory": True,  # with visual_gen every pack needs VAE latents
                                 "num_used_data": [report.t2i_rows], "weight": float(weights[family])}
            continue
        names = sorted(d for (f, d) in report.samples if f == family)
        if not names:
            continue
        group = {"dataset_names": names, "is_mandatory": False,
                 "num_used_data": [report.samples[(family, d)] for d in names], "weight": float(weights[family])}
        if family != "text":
            group["vit_image_transform_args"] = dict(VIT_ARGS)
        if family == "interleaved":
            group["image_transform_args"] = dict(VAE_ARGS)
        config[REGISTRY_KEY[family]] = group
    missing = [f for f in FAMILIES if weights.get(f, 0) > 0 and not any(
        key == (BAGEL_T2I if f == "t2i" else REGISTRY_KEY[f]) for key in config)]
    if missing:
        log.warning("stage %d config: the export has no %s samples; Bagel renormalises over the rest", stage, missing)
    return config


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
