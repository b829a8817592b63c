"""QaTa-COV19 adapter: `mask_` prefixed masks, spaced set folders, repeated stems across splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from manifests.records import Record
from sources.base import SourceError
from sources.qata_cov19 import QataCov19
from sources.samples import qata_cov19 as sample
from tests.source_checks import collect

ASK = "<image>\nPlease help me segment the COVID-19 infected regions."
C = "Sure, this is the COVID-19 infection segmentation of the chest X-ray."
RECORDS = {  # id -> (set folder, name, response, foreground fraction)
    "qata_cov19/train/covid_1": ("Train Set", "covid_1.png", C, 0.0598),
    "qata_cov19/train/covid_2": ("Train Set", "covid_2.png", C, 0.0),
    "qata_cov19/test/covid_1": ("Test Set", "covid_1.png",
                                "The infected lung regions have been segmented; the mask is shown below.", 0.0596),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sample.write(tmp_path_factory.mktemp("sources"))


def test_every_image_once(root):
    assert sorted(collect(QataCov19(root))) == ["qata_cov19/test/covid_1", "qata_cov19/train/covid_1",
                                                "qata_cov19/train/covid_2", "qata_cov19/train/covid_3"]


@pytest.mark.parametrize("record_id", sorted(RECORDS))
def test_records_exact(root, record_id):
    folder, name, response, fraction = RECORDS[record_id]
    record = collect(QataCov19(root))[record_id]
    assert isinstance(record, Record)
    assert (record.split, record.modality, record.task_family) == (record_id.split("/")[1], "chest_xray",
                                                                    "interleaved")
    assert (record.main_task_type, record.sub_task_type) == ("segmentation", "prompt_segmentation")
    assert record.message == [{"from": "human", "value": ASK}, {"from": "gpt", "value": response}]
    image_path = f"QaTa-COV19-v2/{folder}/Images/{name}"
    mask_path = f"QaTa-COV19-v2/{folder}/Ground-truths/mask_{name}"
    assert record.provenance == [image_path, mask_path]
    assert record.meta == {"target": "COVID-19 infected regions", "foreground_fraction": fraction}
    (image,), (mask,) = record.input_images, record.output_images
    assert (image.width, image.height, image.channels, image.bit_depth) == (224, 224, 1, 8)
    assert np.array_equal(image.pixels, np.asarray(PILImage.open(root / image_path)))
    assert (mask.width, mask.height, mask.source_path) == (224, 224, mask_path)
    assert np.array_equal(mask.pixels, np.asarray(PILImage.open(root / mask_path)))


def test_missing_mask(root):
    missing = collect(QataCov19(root))["qata_cov19/train/covid_3"]
    assert (missing.reason, missing.provenance) == ("annotation_missing",
                                                    ["QaTa-COV19-v2/Train Set/Images/covid_3.png"])
    assert missing.detail == "no QaTa-COV19-v2/Train Set/Ground-truths/mask_covid_3.png"


def test_root_may_be_the_version_folder(root):
    records = collect(QataCov19(root / "QaTa-COV19-v2"))
    assert records["qata_cov19/test/covid_1"].provenance[0] == "Test Set/Images/covid_1.png"


def test_split_selection_and_wrong_root(root, tmp_path):
    assert [u.id for u in QataCov19(root, splits=["test"]).work_units()] == ["qata_cov19/test/00000"]
    assert QataCov19.find_root(root.parent) == root
    with pytest.raises(SourceError):
        QataCov19(tmp_path).work_units()


def test_sample_is_small_and_deterministic(root, tmp_path):
    again = sample.write(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert sum((root / f).stat().st_size for f in files) < 1_000_000
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
