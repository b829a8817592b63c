"""LLaVA-Med: biomedical figure-caption alignment data and GPT-4-generated multi-turn instructions.

Card
- Citation: Li C, Wong C, Zhang S, Usuyama N, Liu H, Yang J, Naumann T, Poon H, Gao J. "LLaVA-Med: Training
  a Large Language-and-Vision Assistant for Biomedicine in One Day." NeurIPS 2023 Datasets and Benchmarks.
- URL: https://github.com/microsoft/LLaVA-Med (`download_data.sh`; images fetched from PMC OA tarballs)
- Licence: CC BY-NC 4.0 for the data; research use only; images keep their PMC article licences.
  Access: open.
- Modality: PMC-15M figures. Instruct rows carry a `domain` dict (chest_xray, mri, ct_scan, histology,
  gross): exactly one true flag maps onto our vocabulary (gross -> other); alignment rows have none -> "other".
- Counts: alignment 467k pairs (file name says 500k); instruct 60k conversations (10k subset not read;
  the `_inline_mention` variant repeats the 60k and is not read).
- Overlaps: PMC OA figures, shared with PMC-OA, ROCO/ROCOv2, PMC-VQA and PubMedVision.

Layout (repo `data/` after download_data.sh and download_images.py)::

    llava_med/ (or the repo's data/ folder, or a folder holding data/)
      alignment/llava_med_alignment_500k.json
      instruct/llava_med_instruct_60k.json  llava_med_instruct_10k.json  ..._60k_inline_mention.json
      images/<pair_id>.jpg

Each item: id, image ("<pair_id>.jpg"), domain (instruct only), conversations [{from, value}, ...].
The conversation keeps all its turns; `<image>` tokens are removed wherever they stand and exactly one is
put at the start of the first human turn. Quirks handled here: the token may come before or after the
question (`...?\n<image>`); the alignment file's keys are assumed equal to instruct's minus `domain` [M];
images that failed to download are `missing_file` rejections; a conversation that does not alternate
human/gpt starting with human, ends on a human turn, or has an empty turn is `conversation_malformed`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from manifests.records import IMAGE_TOKEN, Record, Rejection, turns_text
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.image import ImageDecodeError, decode_file
from sources.io.jsonfile import load_json_list

FILES = {  # kind -> candidate files in order (the first present is read)
    "alignment": ("alignment/llava_med_alignment_500k.json",),
    "instruct": ("instruct/llava_med_instruct_60k.json", "instruct/llava_med_instruct_10k.json"),
}
SUB_TASKS = {"alignment": "image_captioning", "instruct": "medical_vqa"}
DOMAINS = {"chest_xray": "chest_xray", "mri": "mri", "ct_scan": "ct", "histology": "histopathology", "gross": "other"}


def conversation(turns, images: int) -> list[dict[str, str]] | str:
    """Turns with every `<image>` token removed and `images` tokens put before the first human turn's text;
    or a short reason why the turns are not a human/gpt dialogue."""
    if not isinstance(turns, list) or len(turns) < 2:
        return "fewer than two turns"
    message = []
    for index, turn in enumerate(turns):
        role = turn.get("from") if isinstance(turn, dict) else None
        if role != ("human" if index % 2 == 0 else "gpt"):
            return f"turn {index} is from {role!r}"
        text = "\n".join(line.strip() for line in str(turn.get("value") or "").replace(IMAGE_TOKEN, "").split("\n"))
        text = text.strip()
        if not text:
            return f"turn {index} is empty"
        message.append({"from": role, "value": text})
    if message[-1]["from"] != "gpt":
        return "ends on a human turn"
    message[0]["value"] = f"{IMAGE_TOKEN}\n" * images + message[0]["value"]
    return message


def domain_modality(domain) -> str:
    flags = [DOMAINS[key] for key, value in (domain or {}).items() if value is True and key in DOMAINS] \
        if isinstance(domain, dict) else []
    return flags[0] if len(flags) == 1 else "other"


class LlavaMed(Source):
    card = DatasetCard(
        name="llava_med",
        title="LLaVA-Med (alignment + instruct)",
        modalities=("chest_xray", "mri", "ct", "histopathology", "other"),
        tasks=("image_captioning", "medical_vqa"),
        licence="CC BY-NC 4.0 (research only)",
        access="open",
        url="https://github.com/microsoft/LLaVA-Med",
        citation="Li et al., LLaVA-Med: Training a Large Language-and-Vision Assistant for Biomedicine in One Day, "
                 "NeurIPS 2023",
        root_names=("llava_med", "LLaVA-Med", "llava-med"),
        counts="467k alignment pairs, 60k instruct conversations",
    )

    def _base(self) -> Path:
        """The folder holding alignment/ and instruct/: the root itself or its data/ folder."""
        for base in (self.root, self.root / "data"):
            if any((base / name).is_file() for names in FILES.values() for name in names):
                return base
        raise SourceError(f"{self.root}: no alignment/llava_med_alignment_500k.json or instruct/*.json; "
                          "point the root at LLaVA-Med's data folder")

    def work_units(self) -> list[WorkUnit]:
        base, units = self._base(), []
        if not self.wants_split("unsplit"):
            return units
        for kind, names in FILES.items():
            name = next((name for name in names if (base / name).is_file()), None)
            if name is None:
                continue
            relative = self.relative(base / name)
            try:
                items = load_json_list(base / name, "conversations")
            except (ValueError, UnicodeDecodeError) as err:
                units.append(WorkUnit(self.name, f"llava_med/unsplit/{relative}", "unsplit",
                                      ({"file": relative, "error": str(err)},)))
                continue
            images = self.relative(base / "images")
            units.extend(self.chunked_units("unsplit", [{"file": relative, "kind": kind, "index": i, "images": images}
                                                        for i in range(len(items))], label=kind))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        first = unit.items[0]
        if "error" in first:
            yield self.reject(f"llava_med/unsplit/{first['file']}", "unsplit", "malformed_json", first["error"],
                              provenance=[first["file"]])
            return
        items = load_json_list(self.root / first["file"], "conversations")
        for entry in unit.items:
            yield self._record(items[entry["index"]], entry)

    def _record(self, item, entry: dict) -> Record | Rejection:
        kind, qa_file, split = entry["kind"], entry["file"], "unsplit"
        name = str(item.get("image") or "").strip() if isinstance(item, dict) else ""
        if not isinstance(item, dict) or not name or ".." in PurePosixPath(name).parts or name.startswith("/"):
            return self.reject(f"llava_med/unsplit/{kind}/{qa_file}#{entry['index']}", split, "malformed_row",
                               "an item needs a relative `image`", provenance=[qa_file])
        item_id = str(item.get("id") or PurePosixPath(name).stem)
        record_id, modality = f"llava_med/unsplit/{kind}/{item_id}", domain_modality(item.get("domain"))
        image_path = f"{entry['images']}/{name}"
        provenance = [qa_file, image_path]
        message = conversation(item.get("conversations"), images=1)
        if isinstance(message, str):
            return self.reject(record_id, split, "conversation_malformed", message, modality=modality,
                               task_family="i2t", sub_task_type=SUB_TASKS[kind], provenance=provenance)
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
        except ImageDecodeError as err:
            return self.reject(record_id, split, err.reason, err.detail, modality=modality, task_family="i2t",
                               sub_task_type=SUB_TASKS[kind], provenance=provenance)
        return Record(
            id=record_id, source=self.name, split=split, modality=modality, task_family="i2t",
            main_task_type="image_understanding", sub_task_type=SUB_TASKS[kind], message=message,
            input_images=[image], provenance=provenance, source_text=turns_text(message),
            meta={"language": "en", "turns": len(message), "domain": item.get("domain")},
        )
