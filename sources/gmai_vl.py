"""GMAI-VL-5.5M: 219 medical classification / segmentation / detection datasets turned into LLaVA-style
image-text conversations (Shanghai AI Lab, GMAI).

Card
- Citation: Li T, Su Y, Li W, Fu B, Chen Z, Huang Z, Wang G, Ma C, Chen Y, Hu M, et al., He J. "GMAI-VL &
  GMAI-VL-5.5M: A Large Vision-Language Model and A Comprehensive Multimodal Dataset Towards General Medical
  AI." arXiv:2411.14522 (AAAI 2026). Code: github.com/uni-medical/GMAI-VL.
- URL: https://huggingface.co/datasets/General-Medical-AI/GMAI-VL-5.5M
- Licence: `license: other` in the HF card header, no licence text found [U]; the OpenSource part is described
  as "with redistributable images in zips/", the NonOpenSource part as "annotations only, obtain images from
  original authors" (card `configs`). Access: whether the repo is gated was not established [U]; registered
  as `registration` to stay on the safe side. Redistribution: no (no licence text).
- Paper's T15 count: 288K entries, "enhanced T2I generation" (UniMed-5M spec 1.2). GMAI-VL-5.5M counts
  (uni-medical/GMAI-VL README): Caption 1.7M, Percept 1.3M, Instrunct 0.9M, Text-Single 1.0M, Text-Multi 0.7M;
  the OpenSource / NonOpenSource split of those counts is unknown [U].
- Overlaps: the images are converted public datasets (TotalSegmentator, AMOS, crc100k, PAD-UFES-20, ...),
  shared with OmniMedVQA, SA-Med2D, HAM10000/ISIC and, very probably, InternVL's medical SFT data (same lab)
  [I]; the near-duplicate stage compares them within a task family across sources.

Layout (`huggingface-cli download --repo-type dataset General-Medical-AI/GMAI-VL-5.5M --local-dir GMAI-VL-5.5M`,
or the Hub cache snapshot; the same tree)::

    GMAI-VL-5.5M/
      GMAI-VL-5.5M-OpenSource/
        annotations/GMAI-MM-Caption-1.7M.jsonl      T2I here (caption -> image)
                    GMAI-MM-Instrunct-0.9M.jsonl    I2T with option subsets (note the spelling "Instrunct")
                    GMAI-MM-Percept-1.3M.jsonl      I2T with option subsets (grounding text kept as written)
                    GMAI_Text_Single_1M.jsonl  GMAI_Text_Multi_0.7M.jsonl   text only: not read
        zips/images_chunk_001.zip ...               images, read member by member (never unpacked)
        download_and_prepare.py  README.md  README_zh-CN.md
      GMAI-VL-5.5M-NonOpenSource/
        annotations/{GMAI-MM-Caption,GMAI-MM-Instrunct,GMAI-MM-Percept}-*.jsonl   no images

Evidence: the `configs` of the card (mirror hf.1094712.xyz, README_zh-CN.md rev d68bd3c) name the annotation
paths and the splits `opensource` / `non_opensource` [S]; a summary of the card (index id 67108172983) gives the
tree with `zips/images_chunk_00N.zip` [S, secondary]; a third-party extraction script (index id 62228126613) states
the chunk count (14) and that the JSONL `image` is `images/<X>` while the zip member is `<X>` [S, secondary];
third-party tally scripts (ids 61931302930, 62236666070) split `image` on `/` and read part 4 as the source
dataset and parts 1-2 as the task path [S, secondary]; uni-medical/GMAI-VL `examples/example_data.json` gives
a record: image, conversations (human `<image>\\n...`, gpt), id (`2d#cls#histopathology#crc100k#images#NORM#x.tif`),
width, height, and a TIFF image [S]. Inferred [I]: `image = images/<dim>/<task>/<modality>/<source>/...`, a
list `image` for multi-image rows (one tally script handles it), the folder vocabulary of `<modality>`.

Records: one per JSONL line; ids `gmai_vl/unsplit/<part>-<subset>/<line:08d>` (the file's 0-based line number,
stable for a pinned revision; the release's own `id` repeats across subsets and is kept as `meta.gmai_id`).
- Caption rows: T2I (text_to_image), human = the gpt caption, output = the image; a multi-image caption is
  `multi_image_caption`, an empty one `caption_empty`.
- Instrunct / Percept rows (option `subsets: [caption, instruct, percept]`; default `[caption]`, since the
  caption file alone exceeds the paper's 288K): I2T (medical_vqa), the conversation as written with its `<image>`
  tokens moved to the start of the first human turn.
Quirks handled here: the zip member is the `image` path without its leading `images/` (also found with it, and in
an unpacked `GMAI-VL-5.5M-OpenSource/images/` folder if the user unzipped); TIFF images decode like any other;
NonOpenSource rows are `images_not_distributed` rejections naming the source dataset to obtain, unless the option
`non_opensource_images` (absolute, or relative to the dataset root) names a folder holding their `images/...`
paths; a line that is not JSON is `malformed_json`, a row without an image or conversations `malformed_row`.
Modality comes from the `<modality>` path part (x-ray is chest_xray only when the source or modality names the
chest).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from manifests.records import Image, Record, Rejection, turns_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.hub import ZipImages
from sources.io.image import ImageDecodeError, decode_file
from sources.io.jsonlines import is_parse_error, line_ranges, read_range
from sources.llava_med import conversation

PARTS = {"opensource": "GMAI-VL-5.5M-OpenSource", "non_opensource": "GMAI-VL-5.5M-NonOpenSource"}
SUBSETS = {  # subset -> (file glob under annotations/, task family, sub task)
    "caption": ("GMAI-MM-Caption*.jsonl", "t2i", "text_to_image"),
    "instruct": ("GMAI-MM-Instrunct*.jsonl", "i2t", "medical_vqa"),
    "percept": ("GMAI-MM-Percept*.jsonl", "i2t", "medical_vqa"),
}
IMAGE_PREFIX = "images/"
MODALITY_BY_LETTERS = {
    "ct": "ct", "computedtomography": "ct",
    "mr": "mri", "mri": "mri", "magneticresonanceimaging": "mri",
    "xray": "xray", "radiography": "xray", "cxr": "xray",
    "ultrasound": "ultrasound", "us": "ultrasound",
    "fundus": "fundus", "fundusphotography": "fundus", "cfp": "fundus",
    "oct": "oct", "endoscopy": "endoscopy", "colonoscopy": "endoscopy",
    "dermoscopy": "dermoscopy", "dermatology": "dermoscopy",
    "histopathology": "histopathology", "pathology": "histopathology", "wsi": "histopathology",
}
CHEST = re.compile(r"chest|cxr|thora|lung|pneumo|covid|tubercul", re.IGNORECASE)


def modality_from_words(words: list[str]) -> str:
    """The first path word naming a modality, matched on its letters, whole or token by token ("Chest-Xray" is
    chest, xray); x-ray is chest_xray only when a word names the chest. Unknown words give "other"."""
    for word in words:
        lowered = word.lower()
        for key in (re.sub(r"[^a-z]", "", lowered), *re.split(r"[^a-z]+", lowered)):
            found = MODALITY_BY_LETTERS.get(key)
            if found == "xray":
                return "chest_xray" if any(CHEST.search(w) for w in words) else "other"
            if found:
                return found
    return "other"


def image_paths(item: dict) -> list[str] | str:
    """The row's image paths (a string or a list in the release), or why they are unusable."""
    value = item.get("image")
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not paths:
        return "no image"
    cleaned = []
    for path in paths:
        if not isinstance(path, str) or not path.strip():
            return "an empty image path"
        path = path.strip().removeprefix("./")
        if path.startswith("/") or ".." in PurePosixPath(path).parts:
            return f"image path {path!r} is not relative to the release"
        cleaned.append(path)
    return cleaned


class GmaiVl(Source):
    card = DatasetCard(
        name="gmai_vl",
        title="GMAI-VL-5.5M (caption subset as T2I; Instrunct/Percept as I2T on request)",
        modalities=("ct", "mri", "chest_xray", "ultrasound", "fundus", "oct", "endoscopy", "dermoscopy",
                    "histopathology", "other"),
        tasks=("text_to_image", "medical_vqa"),
        licence="other (HF card header; no licence text found)",
        access="registration",
        url="https://huggingface.co/datasets/General-Medical-AI/GMAI-VL-5.5M",
        citation="Li et al., GMAI-VL & GMAI-VL-5.5M: A Large Vision-Language Model and A Comprehensive Multimodal "
                 "Dataset Towards General Medical AI, arXiv:2411.14522 (AAAI 2026)",
        root_names=("GMAI-VL-5.5M", "gmai_vl"),
        counts="paper T15: 288K (enhanced T2I generation); release: Caption 1.7M, Percept 1.3M, Instrunct 0.9M "
               "(+1.7M text-only, not read)",
        hub_repos=("General-Medical-AI/GMAI-VL-5.5M",),
    )
    items_per_unit = 512

    def _subsets(self) -> list[str]:
        chosen = list(self.options.get("subsets", ["caption"]))
        unknown = sorted(set(chosen) - set(SUBSETS))
        if unknown:
            raise SourceError(f"gmai_vl: option subsets takes {sorted(SUBSETS)}, not {unknown}")
        return chosen

    def _files(self) -> list[tuple[str, str, str]]:
        """(part, subset, annotation file relative to the root) of every file to read."""
        if not any((self.root / folder).is_dir() for folder in PARTS.values()):
            raise SourceError(f"{self.root}: no {PARTS['opensource']}/ or {PARTS['non_opensource']}/; point the "
                              "root at the GMAI-VL-5.5M download")
        found = []
        for part, folder in PARTS.items():
            for subset in self._subsets():
                for path in sorted((self.root / folder / "annotations").glob(SUBSETS[subset][0])):
                    found.append((part, subset, self.relative(path)))
        return found

    def expected_files(self) -> list[str]:
        return [f"{folder}/annotations/{SUBSETS[subset][0]}" for folder in PARTS.values() for subset in self._subsets()]

    def work_units(self) -> list[WorkUnit]:
        files = self._files()
        if not self.wants_split("unsplit"):
            return []
        size = int(self.options.get("items_per_unit", self.items_per_unit))
        units = []
        for part, subset, relative in files:
            for index, (offset, first_line, count) in enumerate(line_ranges(self.root / relative, size)):
                units.append(WorkUnit(self.name, f"gmai_vl/unsplit/{part}-{subset}/{index:05d}", "unsplit",
                                      ({"file": relative, "part": part, "subset": subset, "offset": offset,
                                        "first_line": first_line, "lines": count},)))
        return units

    def unit_inputs(self, unit: WorkUnit) -> list[str]:
        """The default inputs plus the folder of the NonOpenSource images the user obtained, if named."""
        folder = self._folder_option("non_opensource_images")
        return [*super().unit_inputs(unit), *(self.folder_inputs(folder) if folder is not None else [])]

    def _zips(self) -> list[Path]:
        zips = self.root / PARTS["opensource"] / "zips"
        return sorted(zips.glob("*.zip"), key=lambda p: (len(p.name), p.name)) if zips.is_dir() else []

    def _folder_option(self, key: str) -> Path | None:
        value = self.options.get(key)
        if not value:
            return None
        folder = Path(value) if Path(value).is_absolute() else self.root / value
        if not folder.is_dir():
            raise SourceError(f"gmai_vl: option {key} = {value} is not a folder")
        return folder

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        (item,) = unit.items
        if item["part"] == "opensource":
            unpacked = self.root / PARTS["opensource"]
            packed = None if (unpacked / "images").is_dir() else ZipImages(self._zips())
        else:
            unpacked = self._folder_option("non_opensource_images")
            if unpacked is None and (self.root / PARTS["non_opensource"] / "images").is_dir():
                unpacked = self.root / PARTS["non_opensource"]
            packed = None
        try:
            for line, row in read_range(self.root / item["file"], item["offset"], item["first_line"], item["lines"]):
                if row is not None:
                    yield self._record(row, line, item, unpacked, packed)
        finally:
            if packed is not None:
                packed.close()

    def _record(self, row, line: int, item: dict, unpacked: Path | None, packed: ZipImages | None
                ) -> Record | Rejection:
        part, subset, annotation = item["part"], item["subset"], item["file"]
        _, family, sub_task = SUBSETS[subset]
        record_id, split = f"gmai_vl/unsplit/{part}-{subset}/{line:08d}", "unsplit"
        facts = {"task_family": family, "sub_task_type": sub_task, "provenance": [annotation]}
        if is_parse_error(row):
            return self.reject(record_id, split, "malformed_json", f"line {line}: {row}", **facts)
        paths = image_paths(row) if isinstance(row, dict) else "not a JSON object"
        if isinstance(paths, str):
            return self.reject(record_id, split, "malformed_row", f"line {line}: {paths}", **facts)
        words = paths[0].removeprefix(IMAGE_PREFIX).split("/")
        found, source_dataset = modality_from_words(words[2:4]), words[3] if len(words) > 4 else None
        facts["modality"] = found
        meta = {"gmai_id": row.get("id"), "part": part, "subset": subset, "source_dataset": source_dataset,
                "task_path": "/".join(words[:2]) if len(words) > 4 else None, "image_paths": paths}
        if family == "t2i":
            caption = next((str(turn.get("value") or "").strip() for turn in row.get("conversations") or []
                            if isinstance(turn, dict) and turn.get("from") == "gpt"), "")
            if not caption:
                return self.reject(record_id, split, "caption_empty", f"line {line}: no gpt caption", **facts)
            if len(paths) > 1:
                return self.reject(record_id, split, "multi_image_caption", f"{len(paths)} images", **facts)
            message = [{"from": "human", "value": caption}]
        else:
            message = conversation(row.get("conversations"), images=len(paths))
            if isinstance(message, str):
                return self.reject(record_id, split, "conversation_malformed", f"line {line}: {message}", **facts)
        if part == "non_opensource" and unpacked is None:
            return self.reject(record_id, split, "images_not_distributed",
                               f"{PARTS[part]} ships annotations only: obtain the {source_dataset or 'source'} images "
                               f"from the original dataset's authors and put them under {PARTS[part]}/images/ (or "
                               "name the folder holding images/ in the option non_opensource_images)", **facts)
        images, located = [], []
        for path in paths:
            try:
                if packed is None:
                    images.append(decode_file(unpacked / path, source_path=path))
                    if part == "opensource":
                        located.append(f"{PARTS[part]}/{path}")
                    continue
                member = path.removeprefix(IMAGE_PREFIX)  # the zips drop the leading images/ of the JSONL path
                found_in = packed.locate(member) or packed.locate(path)
                if found_in is None:
                    raise ImageDecodeError("missing_file", f"{path}: not in {PARTS[part]}/zips/*.zip")
                images.append(packed.decode(found_in[1], source_path=path))
                located.append(self.relative(found_in[0]))
            except ImageDecodeError as err:
                return self.reject(record_id, split, err.reason, err.detail, **facts)
        provenance = [annotation, *dict.fromkeys(located)]
        return self._build(record_id, family, sub_task, found, message, images, provenance, meta)

    def _build(self, record_id: str, family: str, sub_task: str, found: str, message: list[dict],
               images: list[Image], provenance: list[str], meta: dict) -> Record:
        return Record(
            id=record_id, source=self.name, split="unsplit", modality=found, task_family=family,
            main_task_type="image_generation" if family == "t2i" else "image_understanding", sub_task_type=sub_task,
            message=message, input_images=images if family == "i2t" else [],
            output_images=images if family == "t2i" else [], provenance=provenance,
            source_text=turns_text(message), meta=meta,
        )
