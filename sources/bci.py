"""BCI (Breast Cancer Immunohistochemical image generation): paired H&E and HER2 IHC tiles.

Card
- Citation: Liu S, Zhu C, Xu F, Jia X, Shi Z, Jin M. "BCI: Breast Cancer Immunohistochemical Image
  Generation through Pyramid Pix2pix." CVPR Workshops (CVMI) 2022. arXiv:2204.11425.
- URL: https://bupt-ai-cz.github.io/BCI/ (code: github.com/bupt-ai-cz/BCI).
- Licence: research use, as stated on the project page [uncertain: no formal licence text found].
  Access: open download via the project page / a request form [uncertain which applies today].
- Modality: histopathology, 1024x1024 RGB PNG tiles; each H&E tile has a registered IHC (HER2) tile
  of the consecutive section, with the HER2 expression level (0, 1+, 2+, 3+) in the file name.
- Counts: 4,873 pairs in the release (3,896 train / 977 test); the paper and project page state 4,870.
- Overlaps: none known; MIST (HER2/ER/PR/Ki67) is a different cohort with its own layout.

Layout::

    BCI_dataset/
      HE/{train,test}/00000_train_1+.png  00015_train_0.png ...
      IHC/{train,test}/00000_train_1+.png ...      identical name = the paired IHC tile

Name = `<5-digit index>_<split tag>_<HER2 level>.png`; level 0 is written without "+" (seen in
third-party loaders: "00015_train_0.png"). The split comes from the folder; the tag in the name is kept in
`meta.name_split` (some copies are re-split without renaming). Quirks handled: "+" in names (ids keep it;
shard keys are sanitised downstream); non-PNG side files (Windows `Zone.Identifier`, `.DS_Store`) are
ignored; an unofficial `val/` folder some copies add is read as the "validate" split; a tile present on
one side only is a `missing_file` rejection; a name without a parseable HER2 level is
`her2_level_unparsed`; H&E and IHC of different sizes are `pair_size_mismatch`.

One interleaved record per pair: H&E tile + instruction naming the HER2 level -> short answer + IHC tile
(UniMedVL's virtual staining task; the first phrasing is the paper's own).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import scan
from sources.io.image import ImageDecodeError, decode_file

SPLITS = {"train": "train", "val": "validate", "test": "test"}  # folder -> canonical split
NAME = re.compile(r"^(?P<index>\d+)_(?P<tag>[A-Za-z]+)_(?P<level>0|1\+|2\+|3\+)\.png$")
INSTRUCTIONS = (
    "Synthesize a HER2 IHC image with {level} expression level based on the given H&E image.",
    "Generate the HER2 immunohistochemistry stain of this H&E tissue image, with a HER2 score of {level}.",
    "Translate this H&E-stained breast tissue image into a HER2 IHC image showing {level} expression.",
)
RESPONSE = "The requested image has been generated."


def _png_names(folder) -> set[str]:
    try:
        return {e.name for e in scan(folder) if e.is_file() and e.name.lower().endswith(".png")}
    except OSError:
        return set()


class Bci(Source):
    card = DatasetCard(
        name="bci",
        title="BCI: Breast Cancer Immunohistochemical image generation (H&E -> HER2 IHC)",
        modalities=("histopathology",),
        tasks=("virtual_staining",),
        licence="research use (project page) [uncertain]",
        access="open",
        url="https://bupt-ai-cz.github.io/BCI/",
        citation="Liu et al., BCI: Breast Cancer Immunohistochemical Image Generation through Pyramid Pix2pix, "
        "CVPRW 2022",
        root_names=("BCI_dataset", "BCI"),
        counts="4,873 H&E/IHC pairs in the release: 3,896 train / 977 test (paper: 4,870)",
    )

    def work_units(self) -> list[WorkUnit]:
        if not (self.root / "HE").is_dir() and not (self.root / "IHC").is_dir():
            raise SourceError(f"{self.root}: no HE/ or IHC/ folder; point the root at BCI_dataset")
        units = []
        for folder, split in SPLITS.items():
            if not self.wants_split(split):
                continue
            names = _png_names(self.root / "HE" / folder) | _png_names(self.root / "IHC" / folder)
            items = [(folder, name) for name in sorted(names)]
            units.extend(self.chunked_units(split, items))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for folder, name in unit.items:
            yield self._record(unit.split, folder, name)

    def _record(self, split: str, folder: str, name: str) -> Record | Rejection:
        record_id = f"{self.name}/{split}/{name[:-4]}"
        paths = [f"HE/{folder}/{name}", f"IHC/{folder}/{name}"]
        match = NAME.match(name)
        if match is None:
            return self._reject(record_id, split, "her2_level_unparsed", name, paths)
        try:
            he, ihc = (decode_file(self.root / path, source_path=path) for path in paths)
        except ImageDecodeError as err:
            return self._reject(record_id, split, err.reason, err.detail, paths)
        if (he.width, he.height) != (ihc.width, ihc.height):
            return self._reject(record_id, split, "pair_size_mismatch",
                                f"H&E {he.width}x{he.height} vs IHC {ihc.width}x{ihc.height}", paths)
        level = match["level"]
        instruction = self.pick(record_id, INSTRUCTIONS).format(level=level)
        return Record(
            id=record_id,
            source=self.name,
            split=split,
            modality="histopathology",
            task_family="interleaved",
            main_task_type="virtual_staining",
            sub_task_type="he_to_ihc_her2",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{instruction}"},
                     {"from": "gpt", "value": RESPONSE}],
            input_images=[he],
            output_images=[ihc],
            provenance=paths,
            meta={"her2_level": level, "index": match["index"], "name_split": match["tag"]},
        )

    def _reject(self, record_id: str, split: str, reason: str, detail: str, paths: list[str]) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="histopathology", task_family="interleaved",
                           provenance=list(paths))
