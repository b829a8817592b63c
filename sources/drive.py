"""DRIVE (Digital Retinal Images for Vessel Extraction): colour fundus photographs with vessel masks.

Card
- Citation: Staal J, Abràmoff MD, Niemeijer M, Viergever MA, van Ginneken B. "Ridge-based vessel
  segmentation in color images of the retina." IEEE TMI 23(4):501-509, 2004.
- URL: https://drive.grand-challenge.org (registration); the original 2004 release came from
  isi.uu.nl (Image Sciences Institute, Utrecht).
- Licence: research use under the challenge terms [uncertain: no formal licence text]. Access: registration.
- Modality: fundus (Canon CR5 non-mydriatic, 45 degree FOV), 565x584 RGB 8-bit TIFF; vessel
  annotations and FOV masks as GIF.
- Counts: 40 images: 20 training (21-40), 20 test (01-20). Test manual annotations are withheld by
  the grand-challenge download; the original release has `1st_manual` and `2nd_manual` for the test set.
- Overlaps: none known (STARE, CHASE_DB1 and HRF are different cohorts).

Layout::

    DRIVE/
      training/images/21_training.tif   training/1st_manual/21_manual1.gif   training/mask/21_training_mask.gif
      test/images/01_test.tif           test/mask/01_test_mask.gif
      test/1st_manual/01_manual1.gif    test/2nd_manual/01_manual2.gif         (original 2004 release only)

One interleaved prompt-segmentation record per image: fundus image + "Please help me segment the blood
vessels." -> short answer + the first observer's vessel mask as an 8-bit 0/255 image (GIFs are read
with PIL: OpenCV cannot read GIF; palette or L, any value > 127 is vessel). The FOV mask is not an
output: its path and the FOV's pixel fraction go to `meta`, with the second observer's mask path
when present. A test image without `1st_manual` (grand-challenge download) is `annotation_missing`;
an unreadable file is its decoder's reason; a mask whose size differs from the image is
`mask_size_mismatch`. Non-image side files (Thumbs.db, Zone.Identifier) are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources.base import DatasetCard, Source, SourceError, WorkUnit
from sources.io.files import scan
from sources.io.image import ImageDecodeError, decode_binary_mask, decode_file, image_from_array

SPLITS = {"training": "train", "test": "test"}  # folder -> canonical split
IMAGE_NAME = re.compile(r"^(?P<number>\d+)_(?:training|test)\.tiff?$", re.IGNORECASE)
INSTRUCTION = "Please help me segment the blood vessels."
RESPONSES = (
    "Here is the segmentation mask of the retinal blood vessels.",
    "The blood vessels have been segmented; the mask is shown below.",
    "Sure, this is the vessel segmentation of the fundus image.",
)


class Drive(Source):
    card = DatasetCard(
        name="drive",
        title="DRIVE: Digital Retinal Images for Vessel Extraction",
        modalities=("fundus",),
        tasks=("prompt_segmentation",),
        licence="research use under the challenge terms [uncertain]",
        access="registration",
        url="https://drive.grand-challenge.org",
        citation="Staal et al., Ridge-based vessel segmentation in color images of the retina, IEEE TMI 2004",
        root_names=("DRIVE",),
        counts="40 images (20 training, 20 test), 565x584",
    )

    def work_units(self) -> list[WorkUnit]:
        if not any((self.root / folder / "images").is_dir() for folder in SPLITS):
            raise SourceError(f"{self.root}: no training/images or test/images; point the root at DRIVE")
        units = []
        for folder, split in SPLITS.items():
            if not self.wants_split(split) or not (self.root / folder / "images").is_dir():
                continue
            names = sorted(e.name for e in scan(self.root / folder / "images")
                           if e.is_file() and IMAGE_NAME.match(e.name))
            units.extend(self.chunked_units(split, [(folder, name) for name in names]))
        return units

    def iter_records(self, unit: WorkUnit) -> Iterator[Record | Rejection]:
        for folder, name in unit.items:
            yield self._record(unit.split, folder, name)

    def _record(self, split: str, folder: str, name: str) -> Record | Rejection:
        number = IMAGE_NAME.match(name)["number"]
        record_id = f"{self.name}/{split}/{number}"
        image_path = f"{folder}/images/{name}"
        manual = f"{folder}/1st_manual/{number}_manual1.gif"
        fov = f"{folder}/mask/{number}_{folder}_mask.gif"
        second = f"{folder}/2nd_manual/{number}_manual2.gif"
        paths = [image_path, manual]
        if not (self.root / manual).is_file():
            return self._reject(record_id, split, "annotation_missing", f"no {manual}", [image_path])
        try:
            image = decode_file(self.root / image_path, source_path=image_path)
            vessels = decode_binary_mask(self.root / manual, manual)
        except ImageDecodeError as err:
            return self._reject(record_id, split, err.reason, err.detail, paths)
        if vessels.shape != (image.height, image.width):
            return self._reject(record_id, split, "mask_size_mismatch",
                                f"image {image.width}x{image.height} vs mask {vessels.shape[1]}x{vessels.shape[0]}",
                                paths)
        fov_fraction = None  # unknown when the FOV mask is absent or unreadable: it is metadata only
        if (self.root / fov).is_file():
            try:
                fov_fraction = round(float(np.count_nonzero(decode_binary_mask(self.root / fov, fov))) / vessels.size, 4)
            except ImageDecodeError:
                fov_fraction = None
        return Record(
            id=record_id,
            source=self.name,
            split=split,
            modality="fundus",
            task_family="interleaved",
            main_task_type="segmentation",
            sub_task_type="prompt_segmentation",
            message=[{"from": "human", "value": f"{IMAGE_TOKEN}\n{INSTRUCTION}"},
                     {"from": "gpt", "value": self.pick(record_id, RESPONSES)}],
            input_images=[image],
            output_images=[image_from_array(vessels, source_path=manual)],
            provenance=paths,
            meta={"target": "blood vessels", "annotator": "1st_manual",
                  "fov_mask": fov if fov_fraction is not None else None, "fov_fraction": fov_fraction,
                  "vessel_fraction": round(float(np.count_nonzero(vessels)) / vessels.size, 4),
                  "second_manual": second if (self.root / second).is_file() else None},
        )

    def _reject(self, record_id: str, split: str, reason: str, detail: str, paths: list[str]) -> Rejection:
        return self.reject(record_id, split, reason, detail, modality="fundus", task_family="interleaved",
                           provenance=list(paths))
