"""BCI adapter: exact H&E -> IHC records and rejections from the sample tree, split selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.bci import INSTRUCTIONS, Bci
from sources.samples import bci as sample
from tests.source_checks import collect

DONE = "The requested image has been generated."
RECORDS = {
    # id -> (split, folder, name, instruction, (width, height), meta)
    "bci/train/00000_train_2+": ("train", "train", "00000_train_2+.png",
                                 "Synthesize a HER2 IHC image with 2+ expression level based on the given H&E image.",
                                 (176, 160), {"her2_level": "2+", "index": "00000", "name_split": "train"}),
    "bci/train/00001_train_0": ("train", "train", "00001_train_0.png",
                                "Generate the HER2 immunohistochemistry stain of this H&E tissue image, with a HER2 "
                                "score of 0.", (160, 176),
                                {"her2_level": "0", "index": "00001", "name_split": "train"}),
    "bci/test/00000_test_1+": ("test", "test", "00000_test_1+.png",
                               "Translate this H&E-stained breast tissue image into a HER2 IHC image showing 1+ "
                               "expression.", (160, 160), {"her2_level": "1+", "index": "00000", "name_split": "test"}),
    "bci/validate/00004_train_1+": ("validate", "val", "00004_train_1+.png",
                                    "Generate the HER2 immunohistochemistry stain of this H&E tissue image, with a "
                                    "HER2 score of 1+.", (160, 160),
                                    {"her2_level": "1+", "index": "00004", "name_split": "train"}),
}
REJECTED = {
    "bci/train/00002_train_3+": ("missing_file", "IHC/train/00002_train_3+.png"),
    "bci/train/00003_train": ("her2_level_unparsed", "00003_train.png"),
    "bci/test/00001_test_3+": ("pair_size_mismatch", "H&E 160x160 vs IHC 128x128"),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sample.write(tmp_path_factory.mktemp("sources"))


def test_every_pair_in_one_place(root):
    items = collect(Bci(root))
    assert set(items) == set(RECORDS) | set(REJECTED)  # the Zone.Identifier side file is not an item


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, record_id):
    split, folder, name, instruction, size, meta = RECORDS[record_id]
    record = collect(Bci(root))[record_id]
    assert isinstance(record, Record)
    assert (record.source, record.split, record.modality, record.task_family) == ("bci", split, "histopathology",
                                                                                   "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("virtual_staining", "he_to_ihc_her2")
    assert record.message == [{"from": "human", "value": f"<image>\n{instruction}"}, {"from": "gpt", "value": DONE}]
    assert record.provenance == [f"HE/{folder}/{name}", f"IHC/{folder}/{name}"]
    assert record.meta == meta
    for image, path in zip([*record.input_images, *record.output_images], record.provenance, strict=True):
        assert (image.width, image.height, image.channels, image.bit_depth, image.source_path) == (*size, 3, 8, path)
        assert np.array_equal(image.pixels, np.asarray(PILImage.open(root / path)))


@pytest.mark.parametrize("record_id", sorted(REJECTED))
def test_rejections_exact(root, record_id):
    rejection = collect(Bci(root))[record_id]
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.detail) == REJECTED[record_id]
    assert (rejection.modality, rejection.task_family) == ("histopathology", "interleaved")
    name = record_id.split("/")[-1] + ".png"
    folder = {"train": "train", "test": "test"}[rejection.split]
    assert rejection.provenance == [f"HE/{folder}/{name}", f"IHC/{folder}/{name}"]


def test_paper_phrasing_is_first():
    assert INSTRUCTIONS[0].format(level="3+") == (
        "Synthesize a HER2 IHC image with 3+ expression level based on the given H&E image.")


def test_split_selection_and_wrong_root(root, tmp_path):
    assert [u.id for u in Bci(root, splits=["test"]).work_units()] == ["bci/test/00000"]
    assert {i.split for u in Bci(root, splits=["train"]).work_units() for i in Bci(root).iter_records(u)} == {"train"}
    assert Bci.find_root(root.parent) == root
    with pytest.raises(SourceError):
        Bci(tmp_path).work_units()


def test_sample_is_small_and_deterministic(root, tmp_path):
    again = sample.write(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert sum((root / f).stat().st_size for f in files) < 400_000
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
