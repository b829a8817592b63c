"""VL-Health (HealthGPT): medical image-text conversations, captions and VQA, gathered for HealthGPT's training.

Card
- Citation: Lin T, Zhang W, Li S, Yuan Y, Yu B, Li H, He W, Jiang H, Li M, Song X, Tang S, Xiao J, Lin H,
  Zhuang Y, Ooi BC. "HealthGPT: A Medical Large Vision-Language Model for Unifying Comprehension and
  Generation via Heterogeneous Knowledge Adaptation." arXiv:2502.09838 (ICML 2025). Code: github.com/DCDmllm/HealthGPT.
- URL: https://huggingface.co/datasets/lintw/VL-Health
- Licence: MIT (HF card metadata); the rows repeat other datasets (PubMedVision Apache-2.0, LLaVA-Med CC BY-NC,
  VQA-RAD, SLAKE, PathVQA, LLaVA-558k) whose own terms apply. Access: open. Redistribution: no (the MIT tag is
  the repackagers', over texts they did not write; the images are not shipped at all).
- Paper's T15 count: 638K entries, "clinical reasoning, image caption" (UniMed-5M spec 1.2). Release:
  765K comprehension + 783K generation samples (hyper.ai summary, secondary); the HF viewer indexes 554K rows
  of one file.
- Overlaps: the comprehension rows come from VQA-RAD, SLAKE, PathVQA, LLaVA-Med and PubMedVision (hyper.ai)
  and the Alignment file from LLaVA-558k and PubMedVision (Alignment/README.md). The same images are read by the
  `pubmedvision`, `llava_med`, `vqa_rad`, `slake` and `pathvqa` adapters: the near-duplicate stage compares them
  within a task family across sources, and the benchmark check compares them with VQA-RAD / SLAKE / PathVQA's
  evaluation splits (every record here carries its decoded image, so its pixel hash and pHash are computed).

Layout (`huggingface-cli download --repo-type dataset lintw/VL-Health --local-dir VL-Health`, or the Hub cache
snapshot; the same tree)::

    VL-Health/
      README.md
      Alignment/README.md
      Alignment/comprehension/train_data.json     JSON list; captions (image_captioning)
      Alignment/pre_aligned_weights/...          weights and trainer_state.json: not read
      <other *.json lists>                       instruct files (medical_vqa); names not seen [U]
      <*.parquet>                                read too, if present [U]: the HF header says "Formats: parquet"
                                                 and the viewer shows 554K rows, but no Parquet file was seen
      <any folder or file named *generation*>    generation tasks: not read (UniMed counts VL-Health as I2T)

Evidence: the HF commit page of `Alignment/comprehension/train_data.json` (commit 818a6ed "Upload 9 files") and the
blob page of `Alignment/pre_aligned_weights/HealthGPT-M3/trainer_state.json` [S]; the card (mirror
hf.global-rail.com, rev 629f37e) gives the row format, a JSON list of `{"image": <path>, "conversations":
[{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", ...}]}` [S]; Alignment/README.md (rev ff10ab8):
"the id field indicates whether the training data originates from LLaVA-558k or PubMedVision", multi-image
rows filtered out, users download LLaVA-558k and PubMedVision themselves [S]. LLaVA-558k's own rows are
`{"id": "004539375", "image": "00453/004539375.jpg", ...}` (several stored copies of blip_laion_cc_sbu_558k.json
quoted in public code) [S]. Not seen [U]: the exact `id` format of VL-Health, the instruct file names, whether any
image is hosted. Inferred [I]: `image` paths are the originating datasets' relative paths.

Records: one I2T record per row, id `vl_health/unsplit/<file>/<row id>` (`<file>` is the JSON path without
`.json`, slashes as dashes; a repeated or missing row id becomes `#<index>`); the conversation as written with its
`<image>` tokens moved to the start of the first human turn; sub task image_captioning under Alignment/, else
medical_vqa; `meta.origin` names the originating dataset where the id or image path shows it.
Quirks handled here: LLaVA-558k rows (general-domain LAION/CC/SBU photos) are `general_domain` rejections, found by
an id or image path naming LLaVA-558k, a bare 9-digit id or a `NNNNN/NNNNNNNNN.jpg` image (the option
`general_id_pattern`, a regular expression over the id, replaces the two digit rules); images are looked up under the
folders of the option `image_roots` (absolute, or relative to the dataset root), then the root, then sibling
`PubMedVision/` and `LLaVA-Pretrain/` folders; a missing image is `missing_file` saying where it was looked for and
that VL-Health ships none; an absolute image path (the card tells users to rewrite them so) is
`absolute_image_path`; a row with a `modality` field (PubMedVision's) gets PubMedVision's modality rule, else
"other"; a file that is not one JSON list is one `malformed_json` row. A Parquet file's rows are read the same
way (ids `.../<file>/r<row>`), with `image` a path or an embedded `datasets` Image cell ({bytes, path}) [I].
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from manifests.records import Record, Rejection, turns_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.hub import decode_image_cell, image_cell_bytes, iter_parquet_rows
from sources.io.files import lexical_inside
from sources.io.image import ImageDecodeError, decode_file
from sources.io.jsonfile import load_json_list
from sources.llava_med import conversation
from sources.pubmedvision import modality as pubmedvision_modality

SKIPPED_PARTS = re.compile(r"pre_aligned_weights|generation", re.IGNORECASE)
SIBLING_IMAGE_FOLDERS = ("PubMedVision", "LLaVA-Pretrain")
ORIGINS = (  # (origin, letters the id or image path holds), first match wins
    ("llava_558k", "llava558k"), ("llava_558k", "blipl"), ("llava_558k", "laionccsbu"),
    ("llava_med", "llavamed"), ("pubmedvision", "pubmedvision"), ("vqa_rad", "vqarad"), ("slake", "slake"),
    ("pathvqa", "pathvqa"),
)
LLAVA_558K_ID = re.compile(r"^\d{9}$")
LLAVA_558K_IMAGE = re.compile(r"(^|/)\d{5}/\d{9}\.(jpg|jpeg|png)$", re.IGNORECASE)


def _label(relative: str) -> str:
    """A file's part of the record ids: its path without the suffix, slashes as dashes."""
    return relative.rsplit(".", 1)[0].replace("/", "-")


def origin(row: dict, general_id: re.Pattern | None = None) -> str:
    """The dataset a row comes from, as far as its id or image path shows; "unknown" otherwise."""
    row_id, image = str(row.get("id") or ""), row.get("image")
    image = image[0] if isinstance(image, list) and image else image
    image = str((image.get("path") if isinstance(image, dict) else image) or "")
    if general_id is not None:
        return "llava_558k" if general_id.search(row_id) else _named_origin(row_id, image)
    if LLAVA_558K_ID.match(row_id) or LLAVA_558K_IMAGE.search(image):
        return "llava_558k"
    return _named_origin(row_id, image)


def _named_origin(row_id: str, image: str) -> str:
    letters = re.sub(r"[^a-z0-9]", "", f"{row_id} {image}".lower())
    return next((name for name, mark in ORIGINS if mark in letters), "unknown")


class VlHealth(Source):
    card = DatasetCard(
        name="vl_health",
        title="VL-Health (HealthGPT) comprehension conversations",
        modalities=("ct", "mri", "ultrasound", "chest_xray", "dermoscopy", "fundus", "oct", "endoscopy", "other"),
        tasks=("image_captioning", "medical_vqa"),
        licence="MIT (HF card); originating datasets' terms apply",
        access="open",
        url="https://huggingface.co/datasets/lintw/VL-Health",
        citation="Lin et al., HealthGPT: A Medical Large Vision-Language Model for Unifying Comprehension and "
                 "Generation via Heterogeneous Knowledge Adaptation, arXiv:2502.09838 (ICML 2025)",
        root_names=("VL-Health", "vl_health"),
        counts="paper T15: 638K (clinical reasoning, image caption); release: 765K comprehension + 783K generation",
        hub_repos=("lintw/VL-Health",),
    )

    def _general_id(self) -> re.Pattern | None:
        pattern = self.options.get("general_id_pattern")
        try:
            return re.compile(pattern) if pattern else None
        except re.error as err:
            raise SourceError(f"vl_health: option general_id_pattern {pattern!r} is not a regular expression ({err})"
                              ) from err

    def _files(self) -> list[str]:
        files = []
        for path in sorted([*self.root.rglob("*.json"), *self.root.rglob("*.parquet")]):
            relative = self.relative(path)
            if any(part.startswith(".") or SKIPPED_PARTS.search(part) for part in relative.split("/")):
                continue
            files.append(relative)
        if not files:
            raise SourceError(f"{self.root}: no annotation JSON (Alignment/comprehension/train_data.json); point the "
                              "root at the VL-Health download")
        return files

    def expected_files(self) -> list[str]:
        return ["Alignment/comprehension/train_data.json"]

    def work_units(self) -> list[WorkUnit]:
        files = self._files()
        if not self.wants_split("unsplit"):
            return []
        units = []
        for relative in files:
            label = _label(relative)
            if relative.endswith(".parquet"):
                units.extend(WorkUnit(u.source, f"{u.id}/{label}", u.split, u.items)
                             for u in self.parquet_units("unsplit", [relative]))
                continue
            try:
                rows = load_json_list(self.root / relative, "conversations")
            except (ValueError, UnicodeDecodeError) as err:
                units.append(WorkUnit(self.name, f"vl_health/unsplit/{label}", "unsplit",
                                      ({"file": relative, "error": str(err)},)))
                continue
            seen: set[str] = set()
            items = []
            for index, row in enumerate(rows):
                row_id = str(row.get("id") or "").strip() if isinstance(row, dict) else ""
                key = row_id if row_id and row_id not in seen else f"#{index}"
                seen.add(row_id)
                items.append({"file": relative, "index": index, "key": key})
            units.extend(self.chunked_units("unsplit", items, label=label))
        return units

    def unit_inputs(self, unit: WorkUnit) -> list[str]:
        """The default inputs plus the image folders outside the dataset folder (their files decide the records)."""
        outside = [f for f in self._image_folders() if self._inside(f) is None]
        return [*super().unit_inputs(unit), *(path for folder in outside for path in self.folder_inputs(folder))]

    def _image_folders(self) -> list[Path]:
        roots = self.options.get("image_roots") or []
        if isinstance(roots, str):
            roots = [roots]
        folders = []
        for value in roots:
            folder = Path(value) if Path(value).is_absolute() else self.root / value
            if not folder.is_dir():
                raise SourceError(f"vl_health: option image_roots names {value}, which is not a folder")
            folders.append(folder)
        folders.append(self.root)
        folders.extend(self.root.parent / name for name in SIBLING_IMAGE_FOLDERS
                       if (self.root.parent / name).is_dir())
        return folders

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        first = unit.items[0]
        if "error" in first:
            yield self.reject(f"vl_health/unsplit/{_label(first['file'])}", "unsplit", "malformed_json",
                              first["error"], task_family="i2t", provenance=[first["file"]])
            return
        folders, general_id = self._image_folders(), self._general_id()
        if "row_groups" in first:  # Parquet: one row per row, keyed by its row number (ids may repeat)
            for row, values in iter_parquet_rows(self.root / first["file"], first["row_groups"], first["first_row"]):
                entry = {"file": first["file"], "index": row, "key": f"r{row:07d}"}
                yield self._record(values, entry, folders, general_id)
            return
        rows = load_json_list(self.root / first["file"], "conversations")
        for entry in unit.items:
            yield self._record(rows[entry["index"]], entry, folders, general_id)

    def _record(self, row, entry: dict, folders: list[Path], general_id: re.Pattern | None) -> Record | Rejection:
        annotation, split = entry["file"], "unsplit"
        record_id = f"vl_health/unsplit/{_label(annotation)}/{entry['key']}"
        sub_task = "image_captioning" if annotation.lower().startswith("alignment/") else "medical_vqa"
        facts = {"task_family": "i2t", "sub_task_type": sub_task, "provenance": [annotation]}
        if not isinstance(row, dict):
            return self.reject(record_id, split, "malformed_row", f"row {entry['index']} is not an object", **facts)
        found_origin = origin(row, general_id)
        facts["modality"] = found = pubmedvision_modality(row) if row.get("modality") else "other"
        if found_origin == "llava_558k":
            return self.reject(record_id, split, "general_domain", f"LLaVA-558k row (id {row.get('id')!r}): "
                               "general-domain LAION/CC/SBU photo-caption pair, not medical", **facts)
        value = row.get("image")
        paths = [value] if isinstance(value, (str, dict)) else value
        if not isinstance(paths, list) or not paths or not all(
                (isinstance(p, str) and p.strip()) or image_cell_bytes(p) is not None for p in paths):
            return self.reject(record_id, split, "malformed_row", "a row needs an image path", **facts)
        if all(isinstance(p, dict) for p in paths):  # images embedded in a Parquet file (`datasets` Image cells)
            return self._embedded(row, paths, record_id, annotation, sub_task, found, found_origin, facts)
        if not all(isinstance(p, str) for p in paths):
            return self.reject(record_id, split, "malformed_row", "a row mixes image paths and embedded images",
                               **facts)
        paths = [p.strip().removeprefix("./") for p in paths]
        if any(p.startswith("/") for p in paths):
            return self.reject(record_id, split, "absolute_image_path", "keep the release's relative image paths "
                               "and name the image folders in the option image_roots", **facts)
        if any(".." in PurePosixPath(p).parts for p in paths):
            return self.reject(record_id, split, "malformed_row", f"image path {paths} leaves its folder", **facts)
        message = conversation(row.get("conversations"), images=len(paths))
        if isinstance(message, str):
            return self.reject(record_id, split, "conversation_malformed", message, **facts)
        images, located = [], []
        for path in paths:
            folder = next((f for f in folders if (f / path).is_file()), None)
            try:
                if folder is None:
                    raise ImageDecodeError("missing_file", f"{path}: not under {self._where(folders)}; VL-Health ships "
                                           f"no images: get them from the originating dataset ({found_origin}) and "
                                           "name its folder in the option image_roots")
                images.append(decode_file(folder / path, source_path=path))
            except ImageDecodeError as err:
                return self.reject(record_id, split, err.reason, err.detail, **facts)
            inside = self._inside(folder)
            if inside is not None:
                located.append(PurePosixPath(inside, path).as_posix())
        return Record(
            id=record_id, source=self.name, split=split, modality=found, task_family="i2t",
            main_task_type="image_understanding", sub_task_type=sub_task, message=message, input_images=images,
            provenance=[annotation, *located], source_text=turns_text(message),
            meta={"vl_health_id": row.get("id"), "origin": found_origin, "image_paths": paths,
                  "modality": row.get("modality"), "turns": len(message)},
        )

    def _embedded(self, row: dict, cells: list[dict], record_id: str, annotation: str, sub_task: str, found: str,
                  found_origin: str, facts: dict) -> Record | Rejection:
        message = conversation(row.get("conversations"), images=len(cells))
        if isinstance(message, str):
            return self.reject(record_id, "unsplit", "conversation_malformed", message, **facts)
        names = [str(cell.get("path") or f"{record_id}#{index}") for index, cell in enumerate(cells)]
        try:
            images = [decode_image_cell(cell, source_path=name) for cell, name in zip(cells, names)]
        except ImageDecodeError as err:
            return self.reject(record_id, "unsplit", err.reason, err.detail, **facts)
        return Record(
            id=record_id, source=self.name, split="unsplit", modality=found, task_family="i2t",
            main_task_type="image_understanding", sub_task_type=sub_task, message=message, input_images=images,
            provenance=[annotation], source_text=turns_text(message),
            meta={"vl_health_id": row.get("id"), "origin": found_origin, "image_paths": names,
                  "modality": row.get("modality"), "turns": len(message)},
        )

    def _inside(self, folder: Path) -> str | None:
        return lexical_inside(folder, self.root)

    def _where(self, folders: list[Path]) -> str:
        return ", ".join(f"{inside}/" if (inside := self._inside(f)) is not None else f.name + "/" for f in folders)
