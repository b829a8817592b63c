"""`group_questions: per_image` (issue 26): the questions of one image as one multi-turn sample, over every VQA
adapter, on its sample tree with each question asked three times of its image; and a CLI build whose shards
store each image once per group, exported to the released loader's multi-turn shape."""

from __future__ import annotations

import csv
import json
import logging
import math
import pickle
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import yaml

from manifests.records import IMAGE_TOKEN, Record, Rejection
from sources import SOURCES
from sources.base import SourceError, grouping_sources
from sources.samples import HUB_SAMPLE_WRITERS, SAMPLE_WRITERS
from sources.shapes.vqa import (GROUPED_SPLITS, QuestionGrouping, cut_by_image, group_by_image,
                                     parse_grouping)
from tests.test_contract import check_contract

GROUPING = grouping_sources()
PER_IMAGE = {"group_questions": "per_image"}
COPIES = 2  # each question is asked this many more times of its image


def test_the_vqa_sources_take_the_option():
    assert GROUPING == ["medical_diff_vqa", "medthink", "omnimedvqa", "pathvqa", "pmc_vqa", "slake", "vqa_rad"]


# The sample trees, with every question asked twice more of the same image (new ids, new wording) --------------

def _variant(text, copy: int):
    return f"{text} (variant {copy})" if isinstance(text, str) and text.strip() else text


def _json_list(path: Path, id_key: str | None) -> None:
    rows = json.loads(path.read_text(encoding="utf-8"))
    extra = []
    for copy in range(1, COPIES + 1):
        for row in rows:
            if isinstance(row, dict):
                row = {**row, "question": _variant(row.get("question"), copy)}
                if id_key and row.get(id_key) not in (None, ""):
                    row[id_key] = row[id_key] + 1000 * copy if isinstance(row[id_key], int) else f"{row[id_key]}v{copy}"
            extra.append(row)
    path.write_text(json.dumps(rows + extra, ensure_ascii=False), encoding="utf-8")


def _json_object(path: Path) -> None:
    rows = json.loads(path.read_text(encoding="utf-8"))
    extra = {f"{key}0{copy}": {**row, "question": _variant(row.get("question"), copy)}
             for copy in range(1, COPIES + 1) for key, row in rows.items()}
    path.write_text(json.dumps({**rows, **extra}, ensure_ascii=False), encoding="utf-8")


def _csv(path: Path) -> None:
    with open(path, encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    column = next(i for i, name in enumerate(header) if name.strip().lower() == "question")
    extra = [[_variant(value, copy) if i == column else value for i, value in enumerate(row)]
             for copy in range(1, COPIES + 1) for row in rows]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows, *extra])


def _pickle(path: Path) -> None:
    rows = pickle.loads(path.read_bytes())
    extra = [{**row, "question": _variant(row.get("question"), copy)} if isinstance(row, dict) else row
             for copy in range(1, COPIES + 1) for row in rows]
    path.write_bytes(pickle.dumps(rows + extra, protocol=4))


def more_questions(name: str, root: Path) -> None:
    """Every question of `name`'s sample tree at `root` asked COPIES more times, in the dataset's own files."""
    if name == "slake":
        for path in root.glob("*.json"):
            _json_list(path, "qid")
    elif name == "vqa_rad":
        _json_list(root / "VQA_RAD Dataset Public.json", "qid")
    elif name == "pathvqa":
        for path in root.glob("qas/*/*_qa.pkl"):
            _pickle(path)
    elif name == "pmc_vqa":
        for path in root.glob("*.csv"):
            _csv(path)
    elif name == "omnimedvqa":
        for path in root.glob("QA_information/*/*.json"):
            _json_list(path, "question_id")
    elif name == "medical_diff_vqa":
        _csv(root / "mimic_pair_questions.csv")
    elif name == "medthink":
        for path in root.glob("Medthink_Dataset/R-*/*/*.json"):
            _json_object(path)
    else:
        raise AssertionError(f"no way to add questions to {name}'s sample tree")


def read(name: str, root: Path, options: dict) -> list[Record | Rejection]:
    adapter = SOURCES[name](root, options)
    units = adapter.work_units()
    assert len({unit.id for unit in units}) == len(units)
    items = [item for unit in units for item in adapter.iter_records(unit)]
    assert len({item.id for item in items}) == len(items), f"{name}: duplicate ids"
    return items


def fingerprint(items) -> list:
    return sorted((item.id, item.reason if isinstance(item, Rejection) else
                   (item.content_hash(), json.dumps(item.meta, sort_keys=True, default=str))) for item in items)


@pytest.fixture(scope="module", params=GROUPING)
def tree(request, tmp_path_factory):
    name = request.param
    base = tmp_path_factory.mktemp(name)
    SAMPLE_WRITERS[name](base)
    root = SOURCES[name].find_root(base)
    more_questions(name, root)
    return name, root, read(name, root, {})


def _signature(record: Record) -> tuple:
    return (record.sub_task_type, record.modality, len(record.input_images), record.meta.get("language"))


def check_groups(name: str, root: Path, per_question: list, grouped: list, max_turns: int) -> Counter:
    """Every training question in exactly one place, each group the merge of its questions; returns the number
    of samples per (image stem, signature)."""
    adapter = SOURCES[name](root, PER_IMAGE)
    training = [item for item in per_question if item.split in GROUPED_SPLITS]
    # evaluation splits untouched
    assert fingerprint([i for i in grouped if i.split not in GROUPED_SPLITS]) == \
        fingerprint([i for i in per_question if i.split not in GROUPED_SPLITS])
    # rejected questions stay rejected rows with their own reason
    assert {i.id: i.reason for i in grouped if isinstance(i, Rejection) and i.split in GROUPED_SPLITS} == \
        {i.id: i.reason for i in training if isinstance(i, Rejection)}
    questions = {i.id: i for i in training if isinstance(i, Record)}
    groups = [i for i in grouped if isinstance(i, Record) and i.split in GROUPED_SPLITS]
    placed = Counter(entry["id"] for group in groups for entry in group.meta["questions"])
    assert placed == Counter(questions.keys()), "each kept question is a turn of exactly one sample"
    samples: Counter = Counter()
    for group in groups:
        members = [questions[entry["id"]] for entry in group.meta["questions"]]
        stem = adapter.question_group(members[0])
        assert group.id.rsplit("/", 1)[0] == stem and group.id.startswith(f"{name}/{group.split}/image/")
        assert {adapter.question_group(m) for m in members} == {stem} and len({_signature(m) for m in members}) == 1
        assert 1 <= len(members) <= max_turns and group.meta["grouped_by"] == "image"
        expected = [dict(turn) for turn in members[0].message]
        for member in members[1:]:
            expected += [{"from": t["from"], "value": adapter.follow_up_question(t["value"]) if t["from"] == "human"
                          else t["value"]} for t in member.message]
        assert group.message == expected
        assert sum(turn["value"].count(IMAGE_TOKEN) for turn in group.message) == len(group.input_images)
        assert IMAGE_TOKEN in group.message[0]["value"]  # the image(s) placed once, in the first human turn
        assert [im.pixel_hash for im in group.input_images] == [im.pixel_hash for im in members[0].input_images]
        assert group.source_text == "\n".join(m.source_text for m in members)
        for key, value in group.meta.items():  # a key at the top is one every question shares
            if key not in ("questions", "grouped_by"):
                assert all(m.meta.get(key) == value for m in members), key
        samples[(stem, _signature(members[0]))] += 1
    per_image = Counter((adapter.question_group(q), _signature(q)) for q in questions.values())
    for key, count in per_image.items():
        assert samples[key] == math.ceil(count / max_turns), key
    return per_image


def test_each_images_questions_become_one_sample(tree):
    name, root, per_question = tree
    grouped = read(name, root, PER_IMAGE)
    per_image = check_groups(name, root, per_question, grouped, max_turns=8)
    assert max(per_image.values()) >= COPIES + 1, "the tree asks several questions of one image"
    check_contract(name, root, grouped)
    assert fingerprint(read(name, root, PER_IMAGE)) == fingerprint(grouped)  # deterministic


def test_max_turns_splits_an_image_into_several_samples(tree):
    name, root, per_question = tree
    grouped = read(name, root, {**PER_IMAGE, "max_turns": 2})
    per_image = check_groups(name, root, per_question, grouped, max_turns=2)
    assert any(count > 2 for count in per_image.values())  # so some image gave two samples, each with its image
    assert any(item.id.endswith("/1") for item in grouped)


def test_a_unit_holds_every_question_of_its_images(tree):
    name, root, _ = tree
    small = read(name, root, {**PER_IMAGE, "items_per_unit": 2})  # units cut between images, never inside one
    assert fingerprint(small) == fingerprint(read(name, root, PER_IMAGE))


def test_default_and_per_question_give_todays_output(tree):
    name, root, per_question = tree
    assert fingerprint(read(name, root, {"group_questions": "per_question"})) == fingerprint(per_question)
    assert not any(isinstance(i, Record) and "grouped_by" in i.meta for i in per_question)


def test_attached_rationales_and_plain_answers_are_separate_samples(tmp_path):
    from sources.samples import medthink, slake as slake_sample, vqa_rad as vqa_rad_sample

    vqa_rad_sample.write(tmp_path)
    slake_sample.write(tmp_path)
    medthink.write_attached(tmp_path)
    for name, folder in (("vqa_rad", "VQA_RAD"), ("slake", "Slake1.0")):
        with_rationales = {"rationales": "Medthink"}
        plain = read(name, tmp_path / folder, with_rationales)
        grouped = read(name, tmp_path / folder, {**with_rationales, **PER_IMAGE})
        check_groups(name, tmp_path / folder, plain, grouped, max_turns=8)  # one sub-task per group
        assert any(isinstance(i, Record) and i.sub_task_type == "medical_vqa_cot" and "/image/" in i.id
                   for i in grouped), name


def test_max_chars_keeps_a_group_within_the_text_rule():
    records = [_record(f"q{i}", "x" * 300) for i in range(5)]  # ~310 characters of dataset text each
    out = list(group_by_image(records, lambda r: "s/train/image/a", QuestionGrouping(max_turns=8, max_chars=1024)))
    assert [len(r.meta["questions"]) for r in out] == [3, 2]
    assert all(len(" ".join(r.source_text.split())) <= 1024 for r in out)
    assert [r.id for r in out] == ["s/train/image/a/0", "s/train/image/a/1"]


def test_rejections_pass_through_and_stems_numbering_survives_a_return():
    a1, a2, b1, a3 = _record("a1", "one"), _record("a2", "two"), _record("b1", "three"), _record("a3", "four")
    gone = Rejection(id="r", source="s", split="train", reason="qa_empty")
    stem = {"a1": "a", "a2": "a", "a3": "a", "b1": "b"}
    out = list(group_by_image([a1, gone, a2, b1, a3], lambda r: stem[r.id], QuestionGrouping()))
    assert [item.id for item in out] == ["r", "a/0", "b/0", "a/1"]  # a stem coming back never repeats an id
    assert [entry["id"] for entry in out[1].meta["questions"]] == ["a1", "a2"]


def test_cut_by_image_never_splits_an_image():
    items = [("b", 0), ("a", 1), ("b", 2), ("c", 3), ("a", 4), ("a", 5)]
    chunks = cut_by_image(items, lambda item: item[0], size=2)
    assert chunks == [[("a", 1), ("a", 4), ("a", 5)], [("b", 0), ("b", 2)], [("c", 3)]]


@pytest.mark.parametrize("options, message", [
    ({"group_questions": "yes"}, "per_image or per_question"),
    ({"max_turns": 4}, "add that option"),
    ({"group_questions": "per_image", "max_turns": 0}, "positive whole number"),
    ({"group_questions": "per_image", "max_chars": "many"}, "positive whole number"),
])
def test_bad_options_are_one_line_errors(options, message, tmp_path):
    from filters.settings import RecipeError
    from pipeline.config import parse_recipe

    with pytest.raises(ValueError, match=message):
        parse_grouping(options)
    with pytest.raises(RecipeError, match=message):
        parse_recipe({"name": "x", "sources": [{"name": "slake", "options": options}]})
    root = SAMPLE_WRITERS["slake"](tmp_path)
    with pytest.raises(SourceError, match=message):
        SOURCES["slake"](root, options).work_units()


def test_a_source_without_shared_images_refuses_the_option():
    from filters.settings import RecipeError
    from pipeline.config import parse_recipe

    with pytest.raises(RecipeError, match="rocov2 has no questions on shared images"):
        parse_recipe({"name": "x", "sources": [{"name": "rocov2", "options": PER_IMAGE}]})
    assert parse_recipe({"name": "x", "sources": [{"name": "pmc_vqa", "options": {**PER_IMAGE, "max_turns": 4}}]})


@pytest.mark.parametrize("name", ["vqa_rad", "pathvqa"])
def test_hub_copies_without_image_names_report_and_ignore_the_option(name, tmp_path, caplog):
    HUB_SAMPLE_WRITERS[name](tmp_path)
    root = SOURCES[name].find_root(tmp_path)
    with caplog.at_level(logging.WARNING):
        grouped = read(name, root, PER_IMAGE)
    assert "option group_questions ignored" in caplog.text
    assert fingerprint(grouped) == fingerprint(read(name, root, {}))


def _record(record_id: str, text: str) -> Record:
    return Record(id=record_id, source="s", split="train", modality="other", task_family="i2t",
                  main_task_type="image_understanding", sub_task_type="medical_vqa",
                  message=[{"from": "human", "value": f"{IMAGE_TOKEN}\nQuestion {text}?"},
                           {"from": "gpt", "value": "Yes."}], source_text=f"Question {text}?\nYes.")


# A CLI build: each image stored once per group; exported as a multi-turn conversation --------------------------

def test_cli_build_stores_each_image_once_per_group_and_exports_conversations(ray_session, tmp_path):
    from manifests.query import open_build
    from manifests.shards import list_shards
    from pipeline.bench.vqa_grouping import recipe, write_pmc_vqa_shaped, write_slake_shaped
    from pipeline.cli import main
    from pipeline.curriculum.export import SFT_I2T, export_unimedvl

    sources = tmp_path / "sources"
    slake, _ = write_slake_shaped(sources, questions=30, per_image=10)  # 3 images, 5 English + 5 Chinese each
    rows = json.loads((slake / "train.json").read_text(encoding="utf-8"))
    rows.append({**rows[0], "qid": 999, "img_name": "xmlab99/source.jpg"})  # an image that is not there
    (slake / "train.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    _, figures = write_pmc_vqa_shaped(sources, questions=24)
    data = recipe("vqa", "slake", PER_IMAGE)
    data["sources"].append({"name": "pmc_vqa", "splits": ["train"], "options": {**PER_IMAGE, "max_turns": 2}})
    (tmp_path / "vqa.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["build", "--recipe", str(tmp_path / "vqa.yaml"), "--sources-root", str(sources),
                 "--out", str(tmp_path / "builds"), "--quiet"]) == 0
    build_dir = tmp_path / "builds" / "vqa"

    images, samples = Counter(), Counter()
    for path in list_shards(build_dir):
        with tarfile.open(path) as tar:
            for member in tar:
                dataset = "slake" if "slake" in member.name else "pmc_vqa"
                images[dataset] += member.name.endswith((".jpg", ".png"))
                samples[dataset] += member.name.endswith(".json")
    assert samples["slake"] == images["slake"] == 3 * 2  # one sample per image and language, its image once
    con = open_build(build_dir)
    rows = con.execute("SELECT source, status, meta FROM records").fetchall()
    turns = Counter(source for source, status, meta in rows if status == "kept"
                    for _ in json.loads(meta)["questions"])
    rejected = Counter(source for source, status, _ in rows if status != "kept")
    assert turns["slake"] + rejected["slake"] == 31 and turns["pmc_vqa"] + rejected["pmc_vqa"] == 24
    assert con.execute("SELECT id, reason FROM rejected").fetchall() == [("slake/train/999", "missing_file")]
    pmc_rows = [json.loads(meta)["questions"] for source, status, meta in rows if source == "pmc_vqa"]
    assert figures <= samples["pmc_vqa"] == images["pmc_vqa"] < 24 and max(map(len, pmc_rows)) == 2

    export = export_unimedvl([build_dir], tmp_path / "export", ranks=1, workers=1)
    assert not export.skipped, export.skipped
    lines = [json.loads(line) for path in sorted((tmp_path / "export" / "jsonl" / SFT_I2T).glob("*.jsonl"))
             for line in path.read_text(encoding="ascii").splitlines()]
    assert len(lines) == samples["slake"] + samples["pmc_vqa"]
    for row in lines:
        assert len(row["input_img"]) == 1 and (tmp_path / "export" / "images" / row["input_img"][0]["path"]).is_file()
        humans = [turn["value"] for turn in row["message"] if turn["from"] == "human"]
        assert humans[0].startswith(IMAGE_TOKEN) and not any(IMAGE_TOKEN in value for value in humans[1:])
        assert [turn["from"] for turn in row["message"]] == ["human", "gpt"] * len(humans)
    assert max(len(row["message"]) for row in lines) == 10  # a SLAKE image's 5 questions of one language
