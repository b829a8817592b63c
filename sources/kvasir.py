"""Kvasir v2: gastrointestinal endoscopy images in eight classes (landmarks, findings, procedures).

Card
- Citation: Pogorelov K, Randel KR, Griwodz C, et al. "KVASIR: A Multi-Class Image Dataset for Computer
  Aided Gastrointestinal Disease Detection." MMSys 2017. doi:10.1145/3083187.3083212
- URL: https://datasets.simula.no/kvasir/
- Licence: free for research and education with the citation above; commercial use needs permission
  [M]. Access: open download.
- Modality: GI endoscopy (colonoscopy and gastroscopy), RGB JPEG, 720x576 up to 1920x1072.
- Counts: v2 8,000 images, 1,000 per class (v1 "kvasir-dataset": 4,000, 500 per class, same folders).
- Overlaps: the 1,000 Kvasir-SEG polyp images come from the `polyps` class (13 replaced), and HyperKvasir
  includes Kvasir; deduplicate by pixel hash. Some images carry a green ScopeGuide position thumbnail in
  the lower-left corner (left in the pixels).

Layout::

    kvasir-dataset-v2/{dyed-lifted-polyps,dyed-resection-margins,esophagitis,normal-cecum,
                       normal-pylorus,normal-z-line,polyps,ulcerative-colitis}/<uuid>.jpg

No official split: every image is `unsplit`. Each image gives an I2T caption and a T2I sample. Quirks
handled here: hidden files (.DS_Store) are skipped; the v1 folder name is accepted; a folder outside the
eight classes is `label_unknown`. The `kvasir-dataset-v2-features` download (precomputed features) is not
read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from manifests.records import Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.image import ImageDecodeError, decode_file
from sources.shapes.captions import LabelTemplates, label_records

MODALITY = "endoscopy"
EXTENSIONS = (".jpg", ".jpeg")
# Shared with sources/kvasir_seg.py, which captions every image as a polyp.
TEMPLATES = LabelTemplates(
    labels={
        "dyed-lifted-polyps": "a dyed lifted polyp",
        "dyed-resection-margins": "dyed resection margins",
        "esophagitis": "esophagitis",
        "normal-cecum": "a normal cecum",
        "normal-pylorus": "a normal pylorus",
        "normal-z-line": "a normal Z-line",
        "polyps": "a polyp",
        "ulcerative-colitis": "ulcerative colitis",
    },
    instructions=(
        "What does this endoscopic image show?",
        "Describe this gastrointestinal endoscopy image.",
        "What finding or landmark is shown in this endoscopy image?",
    ),
    captions=(
        "Endoscopic image showing {label}.",
        "Gastrointestinal endoscopy image of {label}.",
        "{Label}, seen on endoscopy.",
    ),
    prompts=(
        "Generate an endoscopic image of {label}.",
        "A gastrointestinal endoscopy image showing {label}.",
        "Create an endoscopy image of {label}.",
    ),
)


def image_files(folder: Path) -> list[Path]:
    """The JPEGs of a folder in name order, hidden files skipped."""
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and path.suffix.lower() in EXTENSIONS and not path.name.startswith("."))


class Kvasir(Source):
    card = DatasetCard(
        name="kvasir",
        title="Kvasir v2 (GI endoscopy, 8 classes)",
        modalities=(MODALITY,),
        tasks=("classification_caption", "text_to_image"),
        licence="research and education use with citation (simula.no terms)",
        access="open",
        url="https://datasets.simula.no/kvasir/",
        citation="Pogorelov et al., KVASIR: A Multi-Class Image Dataset for Computer Aided GI Disease Detection, "
                 "MMSys 2017",
        root_names=("kvasir-dataset-v2", "kvasir-dataset"),
        counts="8,000 images, 1,000 per class",
    )

    def work_units(self) -> list[WorkUnit]:
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if self.root.is_dir() else []
        if not folders:
            raise SourceError(f"{self.root}: no class folders; point the root at kvasir-dataset-v2/")
        if not self.wants_split("unsplit"):
            return []
        items = [self.relative(path) for folder in folders for path in image_files(folder)]
        return self.chunked_units("unsplit", items)

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for image_path in unit.items:
            path = Path(image_path)
            try:
                image = decode_file(self.root / image_path, source_path=image_path)
            except ImageDecodeError as err:
                image = err
            yield from label_records(self, f"{self.name}/{unit.split}/{path.parent.name}/{path.stem}", unit.split,
                                     MODALITY, image, path.parent.name, TEMPLATES, provenance=[image_path])
