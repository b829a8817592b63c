"""OCT2017 (Kermany et al. 2018): retinal optical coherence tomography B-scans in four classes.

Card
- Citation: Kermany DS, Goldbaum M, Cai W, et al. "Identifying Medical Diagnoses and Treatable Diseases by
  Image-Based Deep Learning." Cell 172(5):1122-1131 (2018). doi:10.1016/j.cell.2018.02.010
- URL: https://data.mendeley.com/datasets/rscbjbr9sj (v2/v3); Kaggle mirror `paultimothymooney/kermany2018`.
- Licence: CC BY 4.0. Access: open download.
- Redistribution: texts and images may be redistributed with attribution (CC BY 4.0 as stated on the
  Mendeley Data page, the authors' own host); `unimed release` carries both.
- Modality: spectral-domain retinal OCT (Heidelberg Spectralis), greyscale JPEG, widths ~512/768/1536,
  height ~496.
- Counts [M]: about 84,500 images: train 83,484; test 968 in the Kaggle copy (the paper states 1,000,
  250 per class); the Kaggle copy adds val/ with 8 per class. Classes CNV (choroidal neovascularization),
  DME (diabetic macular edema), DRUSEN, NORMAL.
- Overlaps: several images per patient (`<CLASS>-<patient>-<n>`) across classes and splits; Mendeley and
  Kaggle copies hold the same images (dedup by pixel hash). The same archive has `chest_xray/`
  (pediatric pneumonia), which this adapter does not read.

Layout::

    OCT2017/{train,test[,val]}/{CNV,DME,DRUSEN,NORMAL}/CNV-1016042-1.jpeg
    Kaggle kermany2018: "OCT2017 /..." (trailing space) and a second copy under "oct2017/OCT2017 /...",
    with a .DS_Store file next to the class folders (seen in public loaders' paths and listings)
    Mendeley zip: CellData/OCT/... or ZhangLabData/CellData/OCT/...

Each image gives an I2T caption and a T2I sample. Quirks handled here: the nested Mendeley folders and the
Kaggle folder names with a trailing space ("OCT2017 ", "oct2017/OCT2017 ") are found below the given root
(the first one found is read, so the Kaggle duplicate copy is not read twice); `val/` becomes
the `validate` split; hidden files (.DS_Store) are skipped; the patient id is read from the file name
(None when the name does not follow the pattern); an unknown class folder is `label_unknown`; a truncated
JPEG is `image_undecodable`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.captions import LabelTemplates, label_records

MODALITY = "oct"
SPLITS = {"train": "train", "test": "test", "val": "validate"}  # folder -> canonical split
NESTED = ("", "OCT2017 ", "OCT2017", "oct2017/OCT2017 ", "CellData/OCT", "ZhangLabData/CellData/OCT", "OCT")
EXTENSIONS = (".jpeg", ".jpg")
FILE_NAME = re.compile(r"([A-Z]+)-(\d+)-(\d+)")
TEMPLATES = LabelTemplates(
    labels={
        "CNV": "choroidal neovascularization",
        "DME": "diabetic macular edema",
        "DRUSEN": "drusen",
        "NORMAL": "a normal retina",
    },
    instructions=(
        "What does this retinal OCT image show?",
        "Which diagnosis does this optical coherence tomography scan of the retina show?",
        "Describe this retinal OCT B-scan.",
    ),
    captions=(
        "Retinal optical coherence tomography (OCT) image showing {label}.",
        "Retinal OCT B-scan with {label}.",
        "{Label} on retinal OCT.",
    ),
    prompts=(
        "Generate a retinal OCT B-scan showing {label}.",
        "A retinal optical coherence tomography image with {label}.",
        "Create a retinal OCT scan showing {label}.",
    ),
)


class Oct2017(Source):
    templates_version = 2  # prompt "Create a retinal OCT scan showing {label}." (v1: "of the retina showing a normal retina")
    card = DatasetCard(
        name="oct2017",
        title="OCT2017 (Kermany 2018 retinal OCT)",
        modalities=(MODALITY,),
        tasks=("classification_caption", "text_to_image"),
        licence="CC BY 4.0",
        access="open",
        url="https://data.mendeley.com/datasets/rscbjbr9sj",
        citation="Kermany et al., Identifying Medical Diagnoses and Treatable Diseases by Image-Based Deep Learning, "
                 "Cell 2018",
        root_names=("OCT2017", "OCT2017 ", "kermany2018", "ZhangLabData", "CellData"),
        counts="84,452 images (train 83,484 / test 968 in the Kaggle copy; paper: 1,000 test), 4 classes",
        redistribute_text=True,
        redistribute_images=True,
    )

    def _base(self) -> Path:
        """The folder holding train/ and test/: the root itself or one of the nestings the downloads use."""
        for nested in NESTED:
            base = self.root / nested if nested else self.root
            if any((base / folder).is_dir() for folder in SPLITS):
                return base
        raise SourceError(f"{self.root}: no train/ or test/ folder (also looked in {', '.join(NESTED[1:])}); "
                          "point the root at the OCT2017 download")

    def work_units(self) -> list[WorkUnit]:
        base = self._base()
        units = []
        for folder, split in SPLITS.items():
            if not (base / folder).is_dir() or not self.wants_split(split):
                continue
            items = [self.relative(path)
                     for label_dir in sorted(p for p in (base / folder).iterdir()
                                             if p.is_dir() and not p.name.startswith("."))
                     for path in sorted(label_dir.iterdir())
                     if path.suffix.lower() in EXTENSIONS and not path.name.startswith(".")]
            units.extend(self.chunked_units(split, items))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for image_path in unit.items:
            yield from self._records(image_path, unit.split)

    def _records(self, image_path: str, split: str) -> list[Record | Rejection]:
        path = Path(image_path)
        label = path.parent.name
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
        except ImageDecodeError as err:
            image = err
        name = FILE_NAME.fullmatch(path.stem)
        meta = {"patient": name.group(2) if name else None}
        return label_records(self, f"{self.name}/{split}/{label}/{path.stem}", split, MODALITY, image, label,
                             TEMPLATES, provenance=[image_path], meta=meta)
