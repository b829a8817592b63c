"""CAG (filters/cag): the reply rules on the paper's examples, and the three steps through their stages on a
fake OpenAI-compatible server on 127.0.0.1 with scripted replies, good and bad; the reply cache."""

from __future__ import annotations

import numpy as np
import pytest

from filters.cag import rules
from filters.cag.settings import CagSettings, parse_cag
from filters.settings import RecipeError
from manifests.records import IMAGE_TOKEN, Record
from pipeline.stage2.replay import cag_row
from pipeline.stages.cag_describe import CagDescribeStage
from pipeline.stages.cag_fuse import CagFuseStage
from pipeline.stages.cag_plan import CagPlanStage
from sources.io.image import image_from_array
from tests.cag_server import CAPTION, DESCRIPTION, FUSE, FUSED, PLAN, FakeChatServer

CXR = "chest_xray"


# ------------------------------------------------------------------------------------------- the rules
@pytest.mark.parametrize("reply, want", [
    (DESCRIPTION, None),
    ("- Modality: chest X-ray\n- Lungs: clear", "not_one_paragraph"),
    (DESCRIPTION.replace("with smooth margins.", "with smooth margins, likely a hamartoma."), "diagnosis_added"),
    ("Chest X-ray. Lungs clear.", "sentence_count"),
    ("I cannot describe medical images. " * 10, "meta_text"),
    ("", "empty"),
    (DESCRIPTION.replace("frontal chest X-ray of an adult thorax, a diagnostic radiograph", "photograph of a thorax"),
     "modality_mismatch"),
])
def test_describe_rules(reply, want):
    assert rules.check_describe(reply, CXR) == want


@pytest.mark.parametrize("reply, want", [
    (FUSE, None),
    (FUSE.replace("Please generate a realistic chest X-ray image showing a", "A"), "missing_prefix"),
    (FUSE.replace("in the left upper lobe", "in the right upper lobe"), "location_changed"),
    (FUSE.replace("in the left upper lobe there is", "in the left lung there is"), "location_dropped"),
    (FUSE.replace("smooth margins;", "smooth margins, likely a hamartoma;"), "diagnosis_added"),
    (FUSED, "line_count"),
    (FUSE.replace("; the right lung", ".\n\nThe right lung"), "line_count"),
    (FUSE.replace("caption: small left pleural effusion", "caption: pneumothorax"), "flag_not_in_prompt"),
    (FUSE.replace("Abnormalities added from the original caption:", "Flags:"), "missing_flag_line"),
    (FUSE.replace("a posteroanterior", "(adding details from the original caption) a posteroanterior"), "meta_text"),
])
def test_fuse_rules(reply, want):
    problem, out = rules.check_fuse(reply, CXR, CAPTION)
    assert problem == want
    if want is None:
        assert out == {"prompt": FUSED, "flagged": ["small left pleural effusion"]}


@pytest.mark.parametrize("reply, want", [
    (PLAN, None),
    (PLAN.split("</think>\n")[1], "missing_think"),
    (PLAN.replace("</think>", "</think></think>", 1), "think_tags"),
    (PLAN.replace("- a small left", "- the image shows a small left"), "observational_verb"),
    (PLAN.replace("- a midline trachea", "- a visible midline trachea"), "observational_verb"),
    (PLAN.replace("Here is the generated chest X-ray image that displays:", "Generated image:"), "missing_prefix"),
    (PLAN.replace("nodule in the left upper lobe", "nodule in the right upper lobe"), "location_changed"),
    ("\n".join(PLAN.splitlines()[:-2]), "plan_format"),
    (PLAN.replace("- a midline trachea and", "- the trachea is midline and"), "non_generative_verb"),
    (PLAN.replace("- a midline trachea", "- one element of the image per line: a midline trachea"), "template_echo"),
    (PLAN.replace("small pleural effusion.", "small pleural effusion, likely a hamartoma."), "diagnosis_added"),
])
def test_plan_rules(reply, want):
    assert rules.check_plan(reply, CXR, FUSED) == want


def test_observational_words_in_think_only_pass_when_the_switch_is_off():
    reply = PLAN.replace("normal bone density.", "normal bone density is seen.")
    assert rules.check_plan(reply, CXR, FUSED) == "observational_verb"
    assert rules.check_plan(reply, CXR, FUSED, ban_observational_in_think=False) is None


def test_settings_are_checked():
    with pytest.raises(RecipeError, match="endpoint"):
        parse_cag({"enabled": True, "backend": "openai"})
    with pytest.raises(RecipeError, match="unknown key"):
        parse_cag({"temprature": 0.1})
    assert parse_cag({"prompts": {"fuse": "cag_fuse_v2"}}).prompts == {
        "describe": "medgemma_qc_v1", "fuse": "cag_fuse_v2", "plan": "cag_plan_v1"}


def test_prompts_are_versioned_files_and_step_one_is_the_qc_prompt():
    from filters.alignment.captioner import load_prompt

    settings = CagSettings()
    assert settings.prompts["describe"] == "medgemma_qc_v1"
    fuse = load_prompt("cag_fuse_v1").format(modality="CT", description="D", caption="C")
    assert 'beginning with the exact words "Please generate a realistic CT image showing"' in fuse
    plan = load_prompt("cag_plan_v1").format(modality="CT", description="P")
    assert plan.startswith("You are a medical image generator for CT.") and "Here is the generated CT image" in plan


# ------------------------------------------------------------------------------- the steps on a server
SIZES = {"3 cm": "good", "4 cm": "fuse_no_prefix", "5 cm": "fuse_side_flipped", "6 cm": "plan_no_think",
         "7 cm": "plan_observational", "8 cm": "fuse_http_500"}


def script(step: str, text: str):
    if step == "describe":
        return DESCRIPTION
    size = next(size for size in SIZES if size in text)
    case = SIZES[size]
    if step == "fuse":
        if case == "fuse_http_500":
            return 500
        reply = FUSE.replace("3 cm", size)
        if case == "fuse_no_prefix":
            return reply.replace("Please generate a realistic chest X-ray image showing a", "A")
        if case == "fuse_side_flipped":
            return reply.replace("in the left upper lobe", "in the right upper lobe")
        return reply
    reply = PLAN.replace("3 cm", size)
    if case == "plan_no_think":
        return reply.split("</think>\n")[1]
    if case == "plan_observational":
        return reply.replace("- a small left", "- the image shows a small left")
    return reply


def t2i_records() -> list[Record]:
    out = []
    for index, size in enumerate(SIZES):
        pixels = np.random.default_rng(index).integers(0, 255, size=(160, 160), dtype=np.uint8)
        record = Record(id=f"rocov2/train/img{index}/t2i", source="rocov2", split="train", modality=CXR,
                        task_family="t2i", main_task_type="image_generation", sub_task_type="text_to_image",
                        message=[{"from": "human", "value": CAPTION.replace("3 cm", size)},
                                 {"from": "gpt", "value": IMAGE_TOKEN}],
                        output_images=[image_from_array(pixels, source_path=f"img{index}.png")], status="kept")
        out.extend([cag_row(record, "t2i"), cag_row(record, "plan")])
    return out


@pytest.fixture
def server():
    fake = FakeChatServer(script)
    yield fake
    fake.close()


def run_all(records, settings, cache_dir):
    for stage_cls in (CagDescribeStage, CagFuseStage, CagPlanStage):
        stage = stage_cls(settings, str(cache_dir))
        assert stage.pool_size() is None and stage.num_gpus == 0.0  # an HTTP client: plain tasks
        stage.process_batch(records)
    return {record.id: record for record in records}


def test_three_steps_on_a_scripted_server(server, tmp_path):
    settings = CagSettings(enabled=True, backend="openai", endpoint=server.endpoint, model="fake-medgemma",
                           max_retries=1, request_timeout_s=10)
    out = run_all(t2i_records(), settings, tmp_path / "cache")
    outcome = {rid: (r.status, r.reason) for rid, r in out.items()}
    assert outcome == {
        "rocov2/train/img0/t2i/cag": ("kept", None), "rocov2/train/img0/t2i/plan": ("kept", None),
        "rocov2/train/img1/t2i/cag": ("rejected", "cag_fuse_missing_prefix"),
        "rocov2/train/img1/t2i/plan": ("rejected", "cag_fuse_missing_prefix"),
        "rocov2/train/img2/t2i/cag": ("rejected", "cag_fuse_location_changed"),
        "rocov2/train/img2/t2i/plan": ("rejected", "cag_fuse_location_changed"),
        "rocov2/train/img3/t2i/cag": ("kept", None),
        "rocov2/train/img3/t2i/plan": ("rejected", "cag_plan_missing_think"),
        "rocov2/train/img4/t2i/cag": ("kept", None),
        "rocov2/train/img4/t2i/plan": ("rejected", "cag_plan_observational_verb"),
        "rocov2/train/img5/t2i/cag": ("rejected", "cag_fuse_backend_error"),
        "rocov2/train/img5/t2i/plan": ("rejected", "cag_fuse_backend_error"),
    }
    # plain CAG T2I: the fused prompt replaces the caption; planning: prompt, plan (gpt turn), then the image
    good, plan = out["rocov2/train/img0/t2i/cag"], out["rocov2/train/img0/t2i/plan"]
    assert good.message == [{"from": "human", "value": FUSED}, {"from": "gpt", "value": IMAGE_TOKEN}]
    assert plan.message == [{"from": "human", "value": FUSED}, {"from": "gpt", "value": PLAN}]
    assert plan.sub_task_type == "text_to_image_planning" and plan.output_images == good.output_images
    assert good.meta["cag"]["prompts"] == {"describe": "medgemma_qc_v1", "fuse": "cag_fuse_v1"}
    assert plan.meta["cag"]["prompts"] == {"describe": "medgemma_qc_v1", "fuse": "cag_fuse_v1", "plan": "cag_plan_v1"}
    assert good.meta["cag"]["flagged"] == ["small left pleural effusion"]
    assert good.meta["cag"]["model"] == "fake-medgemma"
    assert out["rocov2/train/img1/t2i/cag"].detail.startswith("A posteroanterior frontal radiograph")
    assert "HTTP 500" in out["rocov2/train/img5/t2i/cag"].detail
    # what was sent: the image with steps 1 and 3, text only for step 2; each reply asked once per image
    # (the two roles share steps 1 and 2); the 500 was retried once (max_retries=1), then given up
    first = {r["step"]: r["body"] for r in reversed(server.requests)}
    assert first["describe"]["messages"][0]["content"][0]["type"] == "image_url"
    assert all(part["type"] == "text" for part in first["fuse"]["messages"][0]["content"])
    assert first["plan"]["messages"][0]["content"][0]["type"] == "image_url"
    assert first["fuse"]["temperature"] == 0.0 and first["fuse"]["max_tokens"] == 512
    fuse_texts = [r["text"] for r in server.requests if r["step"] == "fuse"]
    assert any(DESCRIPTION in text and CAPTION in text for text in fuse_texts)
    assert (server.count("describe"), server.count("fuse"), server.count("plan")) == (6, 5 + 2, 3)


def test_a_rebuild_never_regenerates(server, tmp_path):
    settings = CagSettings(enabled=True, backend="openai", endpoint=server.endpoint, model="fake-medgemma",
                           max_retries=0, request_timeout_s=10)
    first = run_all(t2i_records(), settings, tmp_path / "cache")
    before = len(server.requests)
    again = run_all(t2i_records(), settings, tmp_path / "cache")
    # only the backend failure is asked again: failures are not cached
    assert [r["step"] for r in server.requests[before:]] == ["fuse"]
    assert {k: (r.status, r.reason, r.message) for k, r in again.items()} == {
        k: (r.status, r.reason, r.message) for k, r in first.items()}
    other = CagSettings(**{**settings.__dict__, "prompts": {**settings.prompts, "plan": "cag_plan_v1"},
                           "max_new_tokens": {**settings.max_new_tokens, "plan": 700}})
    run_all(t2i_records(), other, tmp_path / "cache")  # a changed plan setting regenerates only the plans
    assert sorted({r["step"] for r in server.requests[before + 1:]}) == ["fuse", "plan"]


def test_bad_descriptions_and_unknown_modality_are_rejected(tmp_path):
    fake = FakeChatServer(lambda step, text: "Chest X-ray. Lungs clear." if step == "describe" else 404)
    try:
        settings = CagSettings(enabled=True, backend="openai", endpoint=fake.endpoint, max_retries=3)
        records = t2i_records()[:2]
        records[1].modality = "other"
        out = run_all(records, settings, tmp_path / "cache")
        assert [(r.status, r.reason) for r in out.values()] == [
            ("rejected", "cag_describe_sentence_count"), ("rejected", "cag_describe_modality_unknown")]
        assert fake.count() == 1  # no request for the unknown modality, none after a rejection
    finally:
        fake.close()
