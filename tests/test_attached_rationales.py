"""MedThink rationales attached to their own VQA-RAD / SLAKE items (option `rationales`), joined by qid, on the
sample trees in their real layout; with `medthink`'s option `attached` each rationale ends in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests.records import Record, Rejection
from sources.base import SourceError
from sources.medthink import Medthink
from sources.samples import medthink, slake as slake_sample, vqa_rad as vqa_rad_sample
from sources.slake import Slake
from sources.vqa_rad import VqaRad
from tests.source_checks import collect
from tests.test_contract import check_contract


@pytest.fixture
def root(tmp_path: Path) -> Path:
    vqa_rad_sample.write(tmp_path)
    slake_sample.write(tmp_path)
    medthink.write_attached(tmp_path)
    return tmp_path


def test_vqa_rad_items_carry_their_rationale(root):
    plain = collect(VqaRad(root / "VQA_RAD"))
    items = collect(VqaRad(root / "VQA_RAD", {"rationales": "Medthink"}))
    assert sorted(items) == sorted(plain)  # the same items: one row each, nothing added
    attached = {i: r.meta["rationale_from"] for i, r in items.items() if isinstance(r, Record)
                and "rationale_from" in r.meta}
    assert attached == {"vqa_rad/train/0": "medthink/train/rad-closed-0",
                        "vqa_rad/train/2": "medthink/train/rad-closed-2",
                        "vqa_rad/test/3": "medthink/test/rad-open-3"}
    record = items["vqa_rad/train/0"]
    rationale = "The aortic contour bulges focally beyond its expected calibre."
    assert record.message == [plain["vqa_rad/train/0"].message[0],
                              {"from": "gpt", "value": f"<think>\n{rationale}\n</think>\nYes"}]
    assert record.sub_task_type == "medical_vqa_cot" and plain["vqa_rad/train/0"].sub_task_type == "medical_vqa"
    assert record.input_images[0].encoded == plain["vqa_rad/train/0"].input_images[0].encoded
    assert items["vqa_rad/train/2"].message[1]["value"].endswith("</think>\n2")  # the item's own answer
    for record_id in set(items) - set(attached):  # no rationale: the item as it was
        assert items[record_id] == plain[record_id], record_id
    check_contract("vqa_rad", root / "VQA_RAD", list(items.values()))


def test_slake_items_carry_their_rationale(root):
    plain = collect(Slake(root / "Slake1.0"))
    items = collect(Slake(root / "Slake1.0", {"rationales": str(root / "Medthink")}))  # an absolute path too
    assert items["slake/train/3"].message[1]["value"] == (
        "<think>\nThe heart is of normal size while the lung field holds an opacity.\n</think>\nLung")
    assert items["slake/train/3"].meta["rationale_from"] == "medthink/train/slake-closed-3"
    assert items["slake/train/4"] == plain["slake/train/4"]  # empty solution: nothing to attach
    assert [i for i in items if items[i] != plain[i]] == ["slake/train/3"]
    check_contract("slake", root / "Slake1.0", list(items.values()))


def test_medthink_rows_of_attached_rationales_are_rejected_naming_the_item(root):
    separate = collect(Medthink(root / "Medthink"))
    assert not any(getattr(r, "reason", None) == "rationale_attached" for r in separate.values())
    items = collect(Medthink(root / "Medthink", {"attached": True}))
    assert {i: (r.reason, r.detail) for i, r in items.items()} == {
        "medthink/train/rad-closed-0": ("rationale_attached", "attached to vqa_rad/train/0"),
        "medthink/train/rad-closed-2": ("rationale_attached", "attached to vqa_rad/train/2"),
        "medthink/test/rad-open-3": ("rationale_attached", "attached to vqa_rad/test/3"),
        "medthink/train/slake-closed-3": ("rationale_attached", "attached to slake/train/3"),
        "medthink/train/slake-closed-4": ("rationale_empty", ""),
    }
    assert all(isinstance(r, Rejection) for r in items.values())


def test_a_missing_medthink_folder_is_one_clear_error(root):
    with pytest.raises(SourceError, match="option rationales: .*Nowhere is not a folder"):
        collect(VqaRad(root / "VQA_RAD", {"rationales": "Nowhere"}))
