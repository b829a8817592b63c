"""ICG-CXR: longitudinal chest X-ray quadruples for interpretable counterfactual generation (ProgEmu).

Card
- Citation: Ma C, Ji Y, Ye J, Zhang L, Chen Y, Li T, Li M, He J, Shan H. "Towards Interpretable
  Counterfactual Generation via Multimodal Autoregression." MICCAI 2025; arXiv:2503.23149.
- URL: https://github.com/Masaaki-75/progemu (dataset description and preprocessing scripts),
  https://progemu.github.io
- Licence: inherits the source datasets' terms: MIMIC-CXR (PhysioNet credentialed licence) and CheXpert
  Plus (Stanford research-use agreement); the CheXpert Plus branch is rebuilt by the user with the
  repository's scripts. Access: credentialed.
- Modality: chest X-ray (PA), prior and follow-up images registered to each other, 512x512 PNG.
- Counts: 11,439 quadruples from 7,388 patients (README); UniMedVL lists ~10K.
- Overlaps: images are MIMIC-CXR and CheXpert Plus studies: never put the same patient in different
  splits across mimic_cxr / chexpert_plus / medical_diff_vqa builds.

Layout (README of the repository)::

    icg-cxr-v1/
      chexpertplus/pa/1/train/p00023/i01s0001-i04s0002/
          i01s0001-i04s0002.json  i01s0001-i04s0002-ref-reg.png  i01s0001-i04s0002-flu-reg.png
      mimic_cxr/pa/1/p10/p10000032/i01s50414267-i02s53189527/{<pair>.json, <pair>-ref-reg.png, <pair>-flu-reg.png}

A pair name is `i<UU>s<prior study>-i<VV>s<follow-up study>` (UU/VV: order of the study in the
patient's series). The JSON holds `progression-description` (the prompt: the condition of the
progression) and `changes-of-findings` (the interpretation text), as ProgEmu's training loader reads
them; other metadata (interval, subject, study and DICOM ids) is present under names not verified here.

Each pair gives one interleaved sample: prior image + an instruction carrying the progression prompt ->
the follow-up (counterfactual) image as output and the interpretation as response text. ProgEmu's
loader orders the output as image first, then text; `meta.output_order` records that.
Splits: a path segment named train/valid/validate/val/test gives the split (the CheXpert Plus branch
has `train/`); the MIMIC branch has none and is `unsplit` [M].
Quirks handled here: JSON without either text key -> `malformed_row` (or `malformed_json`); empty
prompt -> `instruction_empty`; empty interpretation -> `response_empty`; a missing image ->
`missing_file`; prior and follow-up of different sizes -> `pair_size_mismatch`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.image import ImageDecodeError, decode_file

PAIR_NAME = re.compile(r"^i(?P<prior_order>\d+)s(?P<prior_study>\d+)-i(?P<next_order>\d+)s(?P<next_study>\d+)$")
SPLIT_FOLDERS = {"train": "train", "valid": "validate", "validate": "validate", "val": "validate", "test": "test"}
PROMPT_KEY, RESPONSE_KEY = "progression-description", "changes-of-findings"
INSTRUCTIONS = (
    "Given this chest X-ray and the following disease progression, generate the follow-up chest X-ray and "
    "describe the radiological changes. Progression: {condition}",
    "Predict how this chest X-ray will look after the following change, then explain the visible differences. "
    "Condition: {condition}",
    "Generate a counterfactual follow-up of this chest X-ray for this progression and describe what changed: "
    "{condition}",
)


def _split_of(parts: tuple[str, ...]) -> str:
    for part in parts:
        if part.lower() in SPLIT_FOLDERS:
            return SPLIT_FOLDERS[part.lower()]
    return "unsplit"


class IcgCxr(Source):
    card = DatasetCard(
        name="icg_cxr",
        title="ICG-CXR (ProgEmu interpretable counterfactual CXR pairs)",
        modalities=("chest_xray",),
        tasks=("disease_progression",),
        licence="MIMIC-CXR PhysioNet credentialed licence / CheXpert Plus research-use agreement",
        access="credentialed",
        url="https://github.com/Masaaki-75/progemu",
        citation="Ma et al., Towards Interpretable Counterfactual Generation via Multimodal Autoregression, MICCAI 2025",
        root_names=("icg-cxr-v1", "icg_cxr", "ICG-CXR"),
        counts="11,439 quadruples, 7,388 patients",
    )
    items_per_unit = 256

    def work_units(self) -> list[WorkUnit]:
        pairs = sorted(path for path in self.root.rglob("*.json") if path.stem == path.parent.name)
        if not pairs:
            raise SourceError(f"{self.root}: no <pair>/<pair>.json folders; point the root at icg-cxr-v1/")
        by_split: dict[str, list[str]] = {}
        for path in pairs:
            relative = self.relative(path)
            by_split.setdefault(_split_of(Path(relative).parts[:-2]), []).append(relative)
        units = []
        for split in sorted(by_split):
            if self.wants_split(split):
                units.extend(self.chunked_units(split, by_split[split]))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for relative in unit.items:
            yield self._record(relative, unit.split)

    def _record(self, relative: str, split: str) -> Record | Rejection:
        folder = Path(relative).parent
        name, parts = folder.name, folder.parts
        # branch/patient/pair is unique: the pair name carries both study ids
        record_id = f"icg_cxr/{split}/{parts[0]}/{folder.parent.name}/{name}"
        paths = [relative, (folder / f"{name}-ref-reg.png").as_posix(), (folder / f"{name}-flu-reg.png").as_posix()]
        try:
            info = json.loads((self.root / relative).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            return self._reject(record_id, split, "malformed_json", str(err), paths)
        if not isinstance(info, dict) or PROMPT_KEY not in info or RESPONSE_KEY not in info:
            return self._reject(record_id, split, "malformed_row", f"needs keys {PROMPT_KEY!r} and {RESPONSE_KEY!r}",
                                paths)
        condition = " ".join(str(info[PROMPT_KEY] or "").split())
        response = " ".join(str(info[RESPONSE_KEY] or "").split())
        if not condition:
            return self._reject(record_id, split, "instruction_empty", "", paths)
        if not response:
            return self._reject(record_id, split, "response_empty", "", paths)
        try:
            prior, follow_up = (decode_file(self.root / path, source_path=path) for path in paths[1:])
        except ImageDecodeError as err:
            return self._reject(record_id, split, err.reason, err.detail, paths)
        if (prior.width, prior.height) != (follow_up.width, follow_up.height):
            return self._reject(record_id, split, "pair_size_mismatch",
                                f"prior {prior.width}x{prior.height} vs follow-up {follow_up.width}x{follow_up.height}",
                                paths)
        match = PAIR_NAME.match(name)
        return Record(
            id=record_id,
            source=self.name,
            split=split,
            modality="chest_xray",
            task_family="interleaved",
            main_task_type="counterfactual_generation",
            sub_task_type="disease_progression",
            message=[{"from": "human",
                      "value": f"{IMAGE_TOKEN}\n{self.pick(record_id, INSTRUCTIONS).format(condition=condition)}"},
                     {"from": "gpt", "value": response}],
            input_images=[prior],
            output_images=[follow_up],
            provenance=paths,
            meta={"branch": parts[0] if len(parts) > 2 else None, "patient": parts[-2] if len(parts) > 1 else None,
                  "prior_study": match["prior_study"] if match else None,
                  "follow_up_study": match["next_study"] if match else None,
                  "prior_order": int(match["prior_order"]) if match else None,
                  "follow_up_order": int(match["next_order"]) if match else None,
                  "output_order": "image_then_text", "condition": condition, "explanation": response},
        )

    def _reject(self, record_id: str, split: str, reason: str, detail: str, paths: list[str]) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="chest_xray", task_family="interleaved",
                           provenance=list(paths))
