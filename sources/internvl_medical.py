"""InternVL medical SFT data: the 500K-row medical sample OpenGVLab released with Mini-InternVL's domain adaptation.

Card
- Citation: Gao Z, Chen Z, Cui E, et al. "Mini-InternVL: A Flexible-Transfer Pocket Multimodal Model with 5%
  Parameters and 90% Performance." arXiv:2410.16261 (2024); UniMedVL cites it as "InternVL (Chen et al.
  2024c)" (unresolved: InternVL 1.5, arXiv:2404.16821, is Chen et al. 2024).
- URL: https://huggingface.co/datasets/OpenGVLab/InternVL-Domain-Adaptation-Data (docs: InternVL "Domain
  Adaptation", Medical Images).
- Licence: apache-2.0 (the HF repo's metadata; its README is a 31-byte stub with no other text). The rows are
  converted from third-party medical datasets whose own terms apply and are not listed [U]. Access: open.
  Redistribution: no (the source datasets are not named).
- Paper's T15 count: 188K entries, "disease classification, clinical reasoning" (a subset of the 500K, how
  chosen is not stated). Release: `medical_sft_sample500k.jsonl` (412 MB, LFS), images in a split archive
  `images/medical_images.tar.gz_part_aa` .. `_ae` (42.9 GB x 4 + 42.1 GB).
- Overlaps: same lab as GMAI-VL-5.5M (Shanghai AI Lab; Junjun He on both author lists): shared source images are
  likely [I]; the near-duplicate stage compares them within a task family across sources.

Layout (HF download with the images unpacked as the InternVL docs direct; the Hub cache snapshot is the same
tree before unpacking)::

    InternVL-Domain-Adaptation-Data/
      train_data/medical_sft_sample500k.jsonl       the only file read here
      images/medical_images.tar.gz_part_aa .. _ae   cat images/medical_images.tar.gz_part_* | tar -xz -C images/
      images/medical_images/...                     after unpacking
      train_meta/internvl_1_2_finetune_medical.json InternVL meta list: general-domain InternVL-1.2 SFT entries
                                                    (ShareGPT4V, LLaVA-zh, DVQA, ChartQA, ...) plus the medical one:
                                                    NOT read, so no general-domain row enters
      train_data/drivelm_train.jsonl, geochat_instruct.jsonl, ...   other domains: not read

Evidence: HF tree pages (main, 0e440a3, e8ff456) list `train_data/medical_sft_sample500k.jsonl`, the five tar
parts and `train_meta/internvl_1_2_finetune_medical.json` [S]; the InternVL docs (index id 42637816474) give
the unpacked tree `images/medical_images` [S]; the meta blob shows the general entries with `root`,
`annotation`, `repeat_time`, `length` [S]. Not seen [U]: a line of the JSONL, the medical meta entry (its
`root`), the tar's top folder. Inferred [I]: InternVL's chat format (LLaVA-like: `id`, `image` a path or a
list, optional `width`/`height`, `conversations` human/gpt with `<image>`), image paths relative to
`images/medical_images/` or to `images/`.

Records: one I2T (medical_vqa) record per JSONL line, id `internvl_medical/unsplit/<line:07d>` (0-based line
number; the row's own `id` is `meta.internvl_id`), the conversation as written with its `<image>` tokens moved
to the start of the first human turn, one per image. Modality: a modality word in the image path (GMAI-VL's
rule), else "other".
Quirks handled here: each image is looked up under `images/medical_images/`, then `images/`, then the root (the
meta `root` is unknown), or under the option `images_root` (absolute, or relative to the dataset root), as written
and without a leading `medical_images/` (the archive's top folder); while
only the tar parts are there every row is `images_not_unpacked` with the command that unpacks them; a missing
image is `missing_file`; a line that is not JSON is `malformed_json`; no image / no conversation is
`malformed_row`; a conversation that does not alternate human/gpt is `conversation_malformed`; InternVL's
multi-image labels (`Image-1: <image>`) go with their tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from manifests.records import IMAGE_TOKEN, Record, Rejection, turns_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.gmai_vl import image_paths, modality_from_words
from sources.io.files import lexical_inside
from sources.io.image import ImageDecodeError, decode_file
from sources.io.jsonlines import is_parse_error, line_ranges, read_range
from sources.llava_med import conversation

ANNOTATION = "train_data/medical_sft_sample500k.jsonl"
TOP_FOLDER = "medical_images"
IMAGE_FOLDERS = (f"images/{TOP_FOLDER}", "images", ".")
ARCHIVE_GLOB = "images/medical_images.tar.gz_part_*"
UNPACK = "cat images/medical_images.tar.gz_part_* | tar -xz -C images/"


NUMBERED_IMAGE = re.compile(r"Image-\d+:\s*<image>")


def numbered_images(turns):
    """InternVL's multi-image prompt labels each token (`Image-1: <image>`); the label goes with its token."""
    if not isinstance(turns, list):
        return turns
    return [{**turn, "value": NUMBERED_IMAGE.sub(IMAGE_TOKEN, turn["value"])}
            if isinstance(turn, dict) and isinstance(turn.get("value"), str) else turn for turn in turns]


class InternvlMedical(Source):
    card = DatasetCard(
        name="internvl_medical",
        title="InternVL domain-adaptation medical SFT sample (500K)",
        modalities=("ct", "mri", "chest_xray", "ultrasound", "fundus", "oct", "endoscopy", "dermoscopy",
                    "histopathology", "other"),
        tasks=("medical_vqa",),
        licence="apache-2.0 (HF metadata; source datasets' own terms apply)",
        access="open",
        url="https://huggingface.co/datasets/OpenGVLab/InternVL-Domain-Adaptation-Data",
        citation="Gao et al., Mini-InternVL: A Flexible-Transfer Pocket Multimodal Model with 5% Parameters and 90% "
                 "Performance, arXiv:2410.16261 (2024)",
        root_names=("InternVL-Domain-Adaptation-Data", "internvl_medical"),
        counts="paper T15: 188K (disease classification, clinical reasoning); release: 500K rows",
        hub_repos=("OpenGVLab/InternVL-Domain-Adaptation-Data",),
    )
    items_per_unit = 512

    def expected_files(self) -> list[str]:
        return [ANNOTATION]

    def work_units(self) -> list[WorkUnit]:
        path = self.root / ANNOTATION
        if not path.is_file():
            raise SourceError(f"{self.root}: no {ANNOTATION}; point the root at the InternVL-Domain-Adaptation-Data "
                              "download (only the medical file is read)")
        if not self.wants_split("unsplit"):
            return []
        size = int(self.options.get("items_per_unit", self.items_per_unit))
        return [WorkUnit(self.name, f"internvl_medical/unsplit/{index:05d}", "unsplit",
                         ({"file": ANNOTATION, "offset": offset, "first_line": first, "lines": count},))
                for index, (offset, first, count) in enumerate(line_ranges(path, size))]

    def unit_inputs(self, unit: WorkUnit) -> list[str]:
        """The default inputs plus an images_root outside the dataset folder."""
        outside = [f for f in self._image_folders() or [] if self._inside(f) is None]
        return [*super().unit_inputs(unit), *(path for folder in outside for path in self.folder_inputs(folder))]

    def _image_folders(self) -> list[Path] | None:
        """Where images are looked up, in order; None while only the split archive is there."""
        value = self.options.get("images_root")
        if value:
            folder = Path(value) if Path(value).is_absolute() else self.root / value
            if not folder.is_dir():
                raise SourceError(f"internvl_medical: option images_root = {value} is not a folder")
            return [folder]
        if not (self.root / "images" / "medical_images").is_dir() and next(self.root.glob(ARCHIVE_GLOB), None):
            return None
        return [self.root / folder for folder in IMAGE_FOLDERS]

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        (item,) = unit.items
        folders = self._image_folders()
        for line, row in read_range(self.root / item["file"], item["offset"], item["first_line"], item["lines"]):
            if row is not None:
                yield self._record(row, line, folders)

    def _record(self, row, line: int, folders: list[Path] | None) -> Record | Rejection:
        record_id, split = f"internvl_medical/unsplit/{line:07d}", "unsplit"
        facts = {"task_family": "i2t", "provenance": [ANNOTATION]}
        if is_parse_error(row):
            return self.reject(record_id, split, "malformed_json", f"line {line}: {row}", **facts)
        paths = image_paths(row) if isinstance(row, dict) else "not a JSON object"
        if isinstance(paths, str):
            return self.reject(record_id, split, "malformed_row", f"line {line}: {paths}", **facts)
        facts["modality"] = found = modality_from_words(paths[0].split("/")[:-1])
        message = conversation(numbered_images(row.get("conversations")), images=len(paths))
        if isinstance(message, str):
            return self.reject(record_id, split, "conversation_malformed", f"line {line}: {message}", **facts)
        if folders is None:
            return self.reject(record_id, split, "images_not_unpacked",
                               f"the images are still in the split archive: run `{UNPACK}` in the dataset folder",
                               **facts)
        images, located = [], []
        for path in paths:
            # a path may or may not start with the archive's top folder: try it as written, then without
            candidates = [path, path.removeprefix(f"{TOP_FOLDER}/")] if path.startswith(f"{TOP_FOLDER}/") else [path]
            found_at = next(((f, c) for f in folders for c in candidates if (f / c).is_file()), None)
            try:
                if found_at is None:
                    raise ImageDecodeError("missing_file", f"{path}: not under {self._where(folders)}")
                images.append(decode_file(found_at[0] / found_at[1], source_path=path))
            except ImageDecodeError as err:
                return self.reject(record_id, split, err.reason, err.detail, **facts)
            inside = self._inside(found_at[0])
            if inside is not None:
                located.append(PurePosixPath(inside, found_at[1]).as_posix())
        return Record(
            id=record_id, source=self.name, split=split, modality=found, task_family="i2t",
            main_task_type="image_understanding", sub_task_type="medical_vqa", message=message,
            input_images=images, provenance=[ANNOTATION, *located], source_text=turns_text(message),
            meta={"internvl_id": row.get("id"), "image_paths": paths, "turns": len(message)},
        )

    def _inside(self, folder: Path) -> str | None:
        return lexical_inside(folder, self.root)

    def _where(self, folders: list[Path]) -> str:
        return ", ".join(f"{inside}/" if (inside := self._inside(f)) is not None else "images_root" for f in folders)
