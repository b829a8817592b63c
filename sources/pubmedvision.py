"""PubMedVision: PubMed figure VQA re-written by GPT-4V (HuatuoGPT-Vision), with the original captions.

Card
- Citation: Chen J, Gui C, Ouyang R, Gao A, Chen S, Chen GH, Wang X, Zhang R, Cai Z, Ji K, Yu G, Wan X,
  Wang B. "HuatuoGPT-Vision, Towards Injecting Medical Visual Knowledge into Multimodal LLMs at Scale."
  arXiv:2406.19280 (2024).
- URL: https://huggingface.co/datasets/FreedomIntelligence/PubMedVision
- Licence: Apache-2.0 (HF card); images from PMC OA articles keep their licences. Access: open.
- Redistribution: the texts are Apache-2.0 (the authors' HF card); the images are PMC OA figures under
  their articles' own licences, so `unimed release` carries the texts but not the images.
- Modality: each item's `modality` field ("Computed Tomography", "Magnetic Resonance Imaging",
  "Digital Photography", "Microscopy Images", ...), matched on its letters; x-ray is chest_xray only when
  `body_part` names the chest (documented keyword rule `CHEST_PART`); microscopy and photography are "other".
- Counts: 647,031 items in each of the Alignment and InstructionTuning files (same images); 1.3M QA.
- Overlaps: PMC OA figures, shared with PMC-OA, ROCO/ROCOv2, PMC-VQA and LLaVA-Med.

Layout (HF download, image zips unpacked with `unzip -j` into images/)::

    PubMedVision/
      PubMedVision_Alignment_VQA.json          I2T (`.../alignment/<id>`), sub task image_captioning
      PubMedVision_InstructionTuning_VQA.json  I2T (`.../instruction/<id>`), sub task medical_vqa
      PubMedVision_Original_Caption.json       T2I (`.../t2i/<id>`) [L: keys assumed id, image, caption]
      images_0.zip .. images_19.zip -> images/<file>.jpg

Each VQA item: id, image (a list of root-relative paths; may hold several), conversations (human turn
without any `<image>` token), modality, body_part.

The paper uses PubMedVision for T2I: the T2I samples come from the original caption file, whose layout
is not verified here (the caption key is looked up as `caption`, `original_caption` or `text`); without
that file only I2T samples are produced. A caption spanning several images is `multi_image_caption` (a
T2I sample generates one image). One `<image>` per image is put at the start of the first human turn.
Quirks handled here: `image` may be a string instead of a list; stray `<image>` tokens in the text are
moved; a malformed conversation is `conversation_malformed`; a missing image is `missing_file`.

Hub copy (docs/sources/hub/pubmedvision.md): `FreedomIntelligence/PubMedVision` holds the two VQA JSON files and
`images_0.zip` ... `images_19.zip` (the README unpacks them with `unzip -j` into `images/`); the Original_Caption
file is not on the Hub, so a Hub copy gives no t2i records. In a Hub cache snapshot or `--local-dir` copy without
an `images/` folder, each `images/<name>` is read from the member with that basename in any of the zips
(their inner folders are not documented). Same ids, texts and image bytes as the unpacked download.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from manifests.records import IMAGE_TOKEN, Image, Record, Rejection, turns_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.hub import ZipImages
from sources.io.image import ImageDecodeError, decode_file
from sources.io.jsonfile import load_json_list

FILES = {  # kind -> (file, task family, sub task)
    "alignment": ("PubMedVision_Alignment_VQA.json", "i2t", "image_captioning"),
    "instruction": ("PubMedVision_InstructionTuning_VQA.json", "i2t", "medical_vqa"),
    "t2i": ("PubMedVision_Original_Caption.json", "t2i", "text_to_image"),
}
CAPTION_KEYS = ("caption", "original_caption", "text")
MODALITY_BY_LETTERS = {
    "computedtomography": "ct", "ct": "ct",
    "magneticresonanceimaging": "mri", "mri": "mri",
    "ultrasound": "ultrasound", "ultrasonography": "ultrasound",
    "xray": "xray", "radiography": "xray", "digitalradiography": "xray",
    "dermoscopy": "dermoscopy",
    "fundusphotography": "fundus",
    "opticalcoherencetomography": "oct",
    "endoscopy": "endoscopy",
}
CHEST_PART = re.compile(r"chest|thora|lung", re.IGNORECASE)


def modality(item: dict) -> str:
    found = MODALITY_BY_LETTERS.get(re.sub(r"[^a-z]", "", str(item.get("modality") or "").lower()), "other")
    if found == "xray":
        return "chest_xray" if CHEST_PART.search(str(item.get("body_part") or "")) else "other"
    return found


def conversation(turns, images: int) -> list[dict[str, str]] | str:
    """Turns without `<image>` tokens, `images` tokens at the start of the first human turn; or why not."""
    if not isinstance(turns, list) or len(turns) < 2:
        return "fewer than two turns"
    message = []
    for index, turn in enumerate(turns):
        role = turn.get("from") if isinstance(turn, dict) else None
        if role != ("human" if index % 2 == 0 else "gpt"):
            return f"turn {index} is from {role!r}"
        text = str(turn.get("value") or "").replace(IMAGE_TOKEN, "").strip()
        if not text:
            return f"turn {index} is empty"
        message.append({"from": role, "value": text})
    if message[-1]["from"] != "gpt":
        return "ends on a human turn"
    message[0]["value"] = f"{IMAGE_TOKEN}\n" * images + message[0]["value"]
    return message


class PubMedVision(Source):
    card = DatasetCard(
        name="pubmedvision",
        title="PubMedVision (HuatuoGPT-Vision)",
        modalities=("ct", "mri", "ultrasound", "chest_xray", "dermoscopy", "fundus", "oct", "endoscopy", "other"),
        tasks=("image_captioning", "medical_vqa", "text_to_image"),
        licence="Apache-2.0 (HF card)",
        access="open",
        url="https://huggingface.co/datasets/FreedomIntelligence/PubMedVision",
        citation="Chen et al., HuatuoGPT-Vision, Towards Injecting Medical Visual Knowledge into Multimodal LLMs "
                 "at Scale, arXiv:2406.19280",
        root_names=("PubMedVision",),
        counts="647,031 items x 2 VQA files (1.3M QA) + original captions",
        hub_repos=("FreedomIntelligence/PubMedVision",),
        redistribute_text=True,
    )

    def _packed(self) -> ZipImages | None:
        """The Hub's image zips when no `images/` folder is unpacked (the cache keeps them packed)."""
        zips = sorted(self.root.glob("images_*.zip"), key=lambda p: (len(p.name), p.name))
        return ZipImages(zips) if zips and not (self.root / "images").is_dir() else None

    def work_units(self) -> list[WorkUnit]:
        present = {kind: spec for kind, spec in FILES.items() if (self.root / spec[0]).is_file()}
        if not present:
            raise SourceError(f"{self.root}: no PubMedVision_*_VQA.json; point the root at the PubMedVision folder")
        units = []
        if not self.wants_split("unsplit"):
            return units
        for kind, (name, *_) in present.items():
            try:
                items = load_json_list(self.root / name, "items")
            except (ValueError, UnicodeDecodeError) as err:
                units.append(WorkUnit(self.name, f"pubmedvision/unsplit/{name}", "unsplit",
                                      ({"file": name, "error": str(err)},)))
                continue
            units.extend(self.chunked_units("unsplit", [{"kind": kind, "index": i} for i in range(len(items))],
                                            label=kind))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        first = unit.items[0]
        if "error" in first:
            yield self.reject(f"pubmedvision/unsplit/{first['file']}", "unsplit", "malformed_json", first["error"],
                              provenance=[first["file"]])
            return
        name = FILES[first["kind"]][0]
        items = load_json_list(self.root / name, "items")
        packed = self._packed()
        try:
            for entry in unit.items:
                yield self._record(items[entry["index"]], entry, packed)
        finally:
            if packed is not None:
                packed.close()

    def _record(self, item, entry: dict, packed: ZipImages | None = None) -> Record | Rejection:
        kind, split = entry["kind"], "unsplit"
        name, family, sub_task = FILES[kind]
        paths = item.get("image") if isinstance(item, dict) else None
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list) or not paths or not item.get("id") or not all(
                isinstance(p, str) and p.strip() and not p.startswith("/") and ".." not in PurePosixPath(p).parts
                for p in paths):
            return self.reject(f"pubmedvision/unsplit/{kind}/{name}#{entry['index']}", split, "malformed_row",
                               "an item needs an id and relative image paths", provenance=[name])
        paths = [p.strip().removeprefix("./") for p in paths]
        record_id, found, provenance = f"pubmedvision/unsplit/{kind}/{item['id']}", modality(item), [name, *paths]
        facts = {"modality": found, "task_family": family, "sub_task_type": sub_task, "provenance": provenance}
        if family == "t2i":
            caption = " ".join(str(next((item[k] for k in CAPTION_KEYS if item.get(k)), "")).split())
            if not caption:
                return self.reject(record_id, split, "caption_empty", "''", **facts)
            if len(paths) > 1:
                return self.reject(record_id, split, "multi_image_caption", f"{len(paths)} images", **facts)
            message = [{"from": "human", "value": caption}]
        else:
            message = conversation(item.get("conversations"), images=len(paths))
            if isinstance(message, str):
                return self.reject(record_id, split, "conversation_malformed", message, **facts)
        images: list[Image] = []
        if packed is not None:  # provenance names the zips that exist, not the unpacked paths
            located = [packed.locate(PurePosixPath(p).name) for p in paths]
            provenance[1:] = list(dict.fromkeys(found_in[0].name for found_in in located if found_in))
        for path in paths:
            try:
                images.append(decode_file(self.root / path, source_path=path) if packed is None else
                              packed.decode(PurePosixPath(path).name, source_path=path))
            except ImageDecodeError as err:
                return self.reject(record_id, split, err.reason, err.detail, **facts)
        return Record(
            id=record_id, source=self.name, split=split, modality=found, task_family=family,
            main_task_type="image_generation" if family == "t2i" else "image_understanding",
            sub_task_type=sub_task, message=message,
            input_images=images if family == "i2t" else [], output_images=images if family == "t2i" else [],
            provenance=provenance, source_text=turns_text(message),
            meta={"modality": item.get("modality"), "body_part": item.get("body_part")},
        )
