"""MIMIC-CXR adapter over its sample tree: exact records, rejections, splits, listing fallback, no PHI."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from manifests.records import Record, Rejection
from sources import mimic_cxr
from sources.io.image import encode_png
from sources.mimic_cxr import INSTRUCTIONS, MimicCxr, report_sections
from sources.samples import mimic_cxr as sample

P10 = "files/p10/p10000032"
MONO1 = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"
LATERAL = "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962"
IMPRESSION_ONLY = "ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c"
TRUNCATED = "3d1c8e0b-5a2f4c71-9e6b0d42-c7a18f35-b2e94d60"
NO_SECTIONS = "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4"
NO_REPORT = "8f2e6a14-0c3d9b57-e41a7f86-2b5c0d93-a6f7e128"

FINDINGS_AND_IMPRESSION = (
    "FINDINGS: The lungs are clear without focal consolidation. No pleural effusion or pneumothorax is seen. "
    "The cardiac and mediastinal silhouettes are within normal limits. Dr. ___ was notified on ___ at 10:15.\n"
    "IMPRESSION: No acute cardiopulmonary process."
)
EXPECTED = {
    # id -> (kind, gpt text or rejection reason, provenance)
    MONO1: (Record, FINDINGS_AND_IMPRESSION, [f"{P10}/s50414267/{MONO1}.dcm", f"{P10}/s50414267.txt"]),
    LATERAL: (Record, FINDINGS_AND_IMPRESSION, [f"{P10}/s50414267/{LATERAL}.dcm", f"{P10}/s50414267.txt"]),
    TRUNCATED: (Rejection, "dicom_undecodable", [f"{P10}/s56699142/{TRUNCATED}.dcm", f"{P10}/s56699142.txt"]),
    IMPRESSION_ONLY: (
        Record,
        "IMPRESSION: Mild pulmonary vascular congestion. Small right pleural effusion is unchanged.",
        [f"{P10}/s56699142/{IMPRESSION_ONLY}.dcm", f"{P10}/s56699142.txt"],
    ),
    NO_SECTIONS: (
        Rejection,
        "report_missing_sections",
        [f"files/p10/p10000764/s57375967/{NO_SECTIONS}.dcm", "files/p10/p10000764/s57375967.txt"],
    ),
    NO_REPORT: (
        Rejection,
        "missing_report",
        [f"files/p11/p11000011/s52220000/{NO_REPORT}.dcm", "files/p11/p11000011/s52220000.txt"],
    ),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    sample.write(tmp_path)
    found = MimicCxr.find_root(tmp_path)
    assert found == tmp_path / "mimic-cxr/2.0.0"
    return found


def _run(source: MimicCxr) -> list[Record | Rejection]:
    return [item for unit in source.work_units() for item in source.iter_records(unit)]


def _write_split_file(root: Path, splits: dict[str, str]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["dicom_id", "study_id", "subject_id", "split"])
    for dicom_id, split in splits.items():
        writer.writerow([dicom_id, "50000000", "10000000", split])
    (root / "mimic-cxr-2.0.0-split.csv.gz").write_bytes(gzip.compress(text.getvalue().encode(), mtime=0))


def test_records_and_rejections_are_exact(root):
    source = MimicCxr(root)
    units = source.work_units()
    assert [(unit.id, unit.split, len(unit.items)) for unit in units] == [("mimic_cxr/unsplit/00000", "unsplit", 6)]
    outputs = _run(source)
    assert [item.id for item in outputs] == [f"mimic_cxr/unsplit/{dicom_id}" for dicom_id in EXPECTED]
    for item, (dicom_id, (kind, text, provenance)) in zip(outputs, EXPECTED.items()):
        assert isinstance(item, kind), item.id
        assert item.split == "unsplit" and item.source == "mimic_cxr" and item.modality == "chest_xray"
        assert item.provenance == provenance
        if kind is Rejection:
            assert item.reason == text and item.task_family == "i2t"
            continue
        assert (item.task_family, item.main_task_type, item.sub_task_type) == (
            "i2t", "image_understanding", "report_generation"
        )
        human, gpt = item.message
        assert human == {"from": "human", "value": "<image>\n" + MimicCxr.pick(item.id, INSTRUCTIONS)}
        assert human["value"].removeprefix("<image>\n") in INSTRUCTIONS
        assert gpt == {"from": "gpt", "value": text}
        assert item.meta["dicom_id"] == dicom_id and item.meta["subject_id"] == "10000032"
        assert len(item.input_images) == 1 and item.input_images[0].source_path == provenance[0]
    records = {item.id.rsplit("/", 1)[1]: item for item in outputs if isinstance(item, Record)}
    assert records[MONO1].meta["study_id"] == "50414267"
    assert records[MONO1].meta["sections"] == ["findings", "impression"]
    assert records[IMPRESSION_ONLY].meta["sections"] == ["impression"]
    assert {name: records[MONO1].meta[name] for name in ("ViewPosition", "PhotometricInterpretation", "BitsStored",
                                                           "WindowCenter", "WindowWidth", "Rows", "Columns")} == {
        "ViewPosition": "PA", "PhotometricInterpretation": "MONOCHROME1", "BitsStored": 12,
        "WindowCenter": 2048.0, "WindowWidth": 3500.0, "Rows": 320, "Columns": 256,
    }
    assert records[LATERAL].meta["ViewPosition"] == "LATERAL" and "WindowCenter" not in records[LATERAL].meta
    image = records[MONO1].input_images[0]
    assert (image.width, image.height, image.bit_depth, image.channels) == (256, 320, 12, 1)
    assert image.pixels.dtype == np.uint16 and image.photometric == "MONOCHROME1"


def test_monochrome1_is_inverted_and_monochrome2_is_not(root):
    records = {item.id.rsplit("/", 1)[1]: item for item in _run(MimicCxr(root)) if isinstance(item, Record)}
    for dicom_id, sign in ((MONO1, -1), (LATERAL, 1)):
        stored = pydicom.dcmread(root / f"{P10}/s50414267/{dicom_id}.dcm").pixel_array.astype(np.float64)
        decoded = records[dicom_id].input_images[0].pixels.astype(np.float64)
        assert sign * np.corrcoef(stored.ravel(), decoded.ravel())[0, 1] > 0.9, dicom_id


def test_no_header_phi_reaches_records_or_images(root):
    phi = list(sample.FAKE_PHI.values())
    phi += ["Müller", "Jörg", "Schäfer"]
    for dicom_id, *_ in sample.IMAGES:
        phi += [str(generate_uid(entropy_srcs=[dicom_id])), str(generate_uid(entropy_srcs=[dicom_id, "study"]))]
    for item in _run(MimicCxr(root)):
        fields = dataclasses.asdict(item)
        for image in fields.pop("input_images", []):
            png = encode_png(image.pop("pixels"))
            for value in phi:
                assert value.encode("utf-8") not in png
                assert value.encode("latin-1", "replace") not in png
            fields.setdefault("images", []).append(image)
        text = json.dumps(fields, ensure_ascii=False, default=str)
        for value in phi:
            assert value not in text, (item.id, value)
            assert value.encode("utf-8") not in text.encode("utf-8")


def test_listing_falls_back_to_walking_the_tree(root):
    with_list = _run(MimicCxr(root))
    (root / "cxr-record-list.csv.gz").unlink()
    # a mirror that keeps the files gzipped, as the project website shows them
    plain = root / f"{P10}/s50414267/{LATERAL}.dcm"
    plain.with_name(plain.name + ".gz").write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    plain.unlink()
    source = MimicCxr(root)
    walked = _run(source)
    assert [item.id for item in walked] == [item.id for item in with_list]
    assert source.work_units()[0].items[1] == f"{P10}/s50414267/{LATERAL}.dcm.gz"
    for before, after in zip(with_list, walked):
        assert type(before) is type(after)
        if isinstance(before, Record):
            assert before.input_images[0].pixel_hash == after.input_images[0].pixel_hash
            assert before.message == after.message


def test_record_list_dcm_path_finds_a_gzipped_file(root):
    plain = root / f"{P10}/s50414267/{MONO1}.dcm"
    plain.with_name(plain.name + ".gz").write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    plain.unlink()
    outputs = {item.id: item for item in _run(MimicCxr(root))}
    assert isinstance(outputs[f"mimic_cxr/unsplit/{MONO1}"], Record)
    (root / f"{P10}/s50414267/{MONO1}.dcm.gz").unlink()
    missing = {item.id: item for item in _run(MimicCxr(root))}[f"mimic_cxr/unsplit/{MONO1}"]
    assert isinstance(missing, Rejection) and missing.reason == "missing_file"


def test_split_file_assigns_splits_and_splits_filter(root):
    _write_split_file(root, {MONO1: "train", LATERAL: "validate", IMPRESSION_ONLY: "test", NO_SECTIONS: "train"})
    units = MimicCxr(root).work_units()
    assert [(unit.id, len(unit.items)) for unit in units] == [
        ("mimic_cxr/train/00000", 2), ("mimic_cxr/validate/00000", 1), ("mimic_cxr/test/00000", 1),
        ("mimic_cxr/unsplit/00000", 2),
    ]
    only_test = _run(MimicCxr(root, splits=["test"]))
    assert [item.id for item in only_test] == [f"mimic_cxr/test/{IMPRESSION_ONLY}"]


def test_each_report_is_parsed_once_per_unit(root, monkeypatch):
    calls = []

    def counting(text):
        calls.append(text)
        return report_sections(text)

    monkeypatch.setattr(mimic_cxr, "report_sections", counting)
    _run(MimicCxr(root))
    assert len(calls) == 3  # three reports on disk for six images; the missing one is never parsed


def test_units_follow_items_per_unit(root):
    units = MimicCxr(root, options={"items_per_unit": 2}).work_units()
    assert [unit.id for unit in units] == [f"mimic_cxr/unsplit/{i:05d}" for i in range(3)]
    assert [item for unit in units for item in unit.items] == list(MimicCxr(root).work_units()[0].items)


def _report(*paragraphs: str) -> str:
    return "\n" + sample.report_text(list(paragraphs))


def test_report_sections_follow_mit_lcp():
    assert report_sections(_report("FINDINGS:", "Clear  lungs.", "IMPRESSION:  Normal.")) == {
        "findings": "Clear lungs.", "impression": "Normal."
    }
    assert report_sections(_report("CONCLUSION: No change.")) == {"impression": "No change."}
    assert report_sections(_report("FINDINGS AND IMPRESSION: Stable.")) == {"impression": "Stable."}
    assert report_sections(_report("IMPRESSON: Typo header.")) == {"impression": "Typo header."}
    assert report_sections(_report("CHEST, TWO VIEWS: Heart normal.")) == {"findings": "Heart normal."}
    assert report_sections(_report("PA AND LATERAL VIEWS OF THE CHEST: Lungs clear.")) == {
        "findings": "Lungs clear."
    }
    # an empty duplicate FINDINGS is dropped; with two non-empty IMPRESSIONs the last counts
    assert report_sections(_report("FINDINGS:", "FINDINGS: Opacity.", "IMPRESSION: Old.", "IMPRESSION: New.")) == {
        "findings": "Opacity.", "impression": "New."
    }
    assert report_sections(_report("INDICATION: Cough.", "Lungs are clear.")) == {}
    # lower-case words before a colon are not headers
    assert report_sections(_report("IMPRESSION: Discussed with Dr. ___ at 10:15, time: noon.")) == {
        "impression": "Discussed with Dr. ___ at 10:15, time: noon."
    }


def test_sample_is_deterministic_and_small(tmp_path):
    first, second = sample.write(tmp_path / "a"), sample.write(tmp_path / "b")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
    assert sum((first / name).stat().st_size for name in files) < 1_000_000


def test_card_and_roots(tmp_path):
    card = MimicCxr.card
    assert (card.name, card.access, card.modalities, card.tasks) == (
        "mimic_cxr", "credentialed", ("chest_xray",), ("report_generation",)
    )
    assert card.licence == "PhysioNet Credentialed Health Data License 1.5.0"
    (tmp_path / "physionet.org/files/mimic-cxr/2.1.0").mkdir(parents=True)
    assert MimicCxr.find_root(tmp_path) == tmp_path / "physionet.org/files/mimic-cxr/2.1.0"
