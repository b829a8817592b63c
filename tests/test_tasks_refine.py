"""MedGemma refinement of task texts: the parser's rules, the OpenAI-compatible backend against a tiny
local server this test starts (127.0.0.1, bounded, stops by itself), and the transformers backend with
the demo Gemma3 weights (random: its output is unusable, so the template text must stay)."""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.config import RecipeError, parse_recipe
from manifests.records import Record
from pipeline.stages.task_refine import TaskRefineStage
from pipeline.tasks.refine import parse_rewrite, render_prompt
from pipeline.tasks.settings import RefineSettings, TaskSettings
from pipeline.stages.task_builders import TaskBuildersStage
from pipeline.tasks.templates import seed_for
from sources import get_source
from sources.samples import write_sample_tree

BUILD = {"builder": "segmentation", "instruction": "Segment the tumor core in this image.",
         "response": "Here is the segmentation mask of the tumor core.",
         "fields": {"target": "tumor core", "target_title": "Tumor core"}}


@pytest.fixture(scope="module")
def task_records(tmp_path_factory) -> list[Record]:
    """Built segmentation records of the BraTS sample (10) and the BCI staining records."""
    tree = write_sample_tree(tmp_path_factory.mktemp("sources"), ["brats", "bci"])
    stage = TaskBuildersStage(TaskSettings(enabled=True))
    out = []
    for name, options in (("brats", {"pairs": [], "segmentation": ["wt", "tc", "et"]}), ("bci", {})):
        source = get_source(name)(tree[name], options)
        for unit in source.work_units():
            for item in source.iter_records(unit):
                if isinstance(item, Record):
                    item.status = "kept"
                    stage.process(item)
                    if item.status == "kept":
                        out.append(item)
    return sorted(out, key=lambda r: r.id)


def test_parser_rules():
    settings = RefineSettings()
    good = '```json\n{"instruction": "Please delineate the tumor core.", "response": "The tumor core mask."}\n```'
    assert parse_rewrite(good, BUILD, settings) == (
        {"instruction": "Please delineate the tumor core.", "response": "The tumor core mask."}, None)
    cases = {
        "": "refine_empty", "I cannot help with that.": "refine_malformed",
        '{"instruction": "Segment the tumor core."}': "refine_empty",
        '{"instruction": "Segment the lesion.", "response": "The tumor core mask."}': "refine_dropped_field",
        '{"instruction": "<image> Segment the tumor core.", "response": "Done."}': "refine_image_token",
        json.dumps({"instruction": "Segment the tumor core. " * 20, "response": "ok"}): "refine_too_long",
    }
    for text, reason in cases.items():
        rewrite, why = parse_rewrite(text, BUILD, settings)
        assert rewrite is None and why.startswith(reason), (text, why)
    prompt = render_prompt(BUILD, settings)
    assert BUILD["instruction"] in prompt and '"tumor core"' in prompt and "$" not in prompt


def test_recipe_accepts_refine_and_checks_it():
    recipe = parse_recipe({"name": "x", "tasks": {"enabled": True, "refine": {
        "enabled": True, "backend": "openai", "endpoint": "http://127.0.0.1:1/v1"}}})
    assert recipe.tasks.refine.enabled
    off = parse_recipe({"name": "x", "tasks": {"enabled": True}})
    assert off.processing_digest() != recipe.processing_digest()  # rewritten texts are new staged output
    for bad in ({"backend": "vllm"}, {"enabled": True, "backend": "openai"}, {"keep_fields": {"nope": []}}):
        with pytest.raises(RecipeError):
            parse_recipe({"name": "x", "tasks": {"refine": bad}})


class _Server:
    """A chat-completions server answering by the request's seed; serves at most `limit` requests."""

    def __init__(self, answers: dict[int, object], limit: int, deadline_s: float = 30.0):
        self.answers, self.requests, self.stopped = answers, [], threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((self.path, body))
                answer = owner.answers.get(body["seed"], "no answer")
                if answer == 500:
                    self.send_response(500)
                    self.end_headers()
                    return
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 0.2
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        stop_at = time.monotonic() + deadline_s

        def serve():
            while len(self.requests) < limit and time.monotonic() < stop_at and not self.stopped.is_set():
                self.server.handle_request()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self):
        self.stopped.set()
        self.thread.join(timeout=5)
        self.server.server_close()


def test_openai_backend_rewrites_or_keeps_the_template(task_records):
    records = copy.deepcopy(task_records)
    settings = RefineSettings(enabled=True, backend="openai", model="medgemma-test", max_retries=1,
                              request_timeout_s=5, endpoint="set below")
    seeds = {r.id: seed_for(settings.seed, r.id, "refine") for r in records}
    plan, answers = {}, {}
    for i, record in enumerate(records):
        build = record.meta["task_build"]
        kept = build["fields"].get("target") or build["fields"].get("level")
        good = {"instruction": f"Could you produce an image for: {kept}?", "response": f"Result for {kept}."}
        kind = ("good", "fenced", "malformed", "dropped", "error")[i % 5]
        plan[record.id] = kind
        answers[seeds[record.id]] = {"good": json.dumps(good), "fenced": f"Sure:\n```json\n{json.dumps(good)}\n```",
                                     "malformed": "Sure, here is a rewrite!", "error": 500,
                                     "dropped": json.dumps({"instruction": "Segment it.", "response": "Done."})}[kind]
    errors = sum(kind == "error" for kind in plan.values())
    server = _Server(answers, limit=len(records) + errors)  # an HTTP 500 is retried once
    settings.endpoint = server.url
    try:
        TaskRefineStage(settings).process_batch(records)
    finally:
        server.close()
    assert len(server.requests) == len(records) + errors
    assert all(path == "/v1/chat/completions" and body["model"] == "medgemma-test" for path, body in server.requests)
    before = {r.id: r for r in task_records}
    for record in records:
        build, kind = record.meta["task_build"], plan[record.id]
        assert build["instruction"] == before[record.id].meta["task_build"]["instruction"]  # template kept in meta
        assert build["response"] == before[record.id].meta["task_build"]["response"]
        refine = build["refine"]
        assert refine["seed"] == seeds[record.id] and refine["prompt"] == "refine_v1"
        if kind in ("good", "fenced"):
            kept = build["fields"].get("target") or build["fields"].get("level")
            assert refine["status"] == "rewritten" and refine["reason"] is None
            assert record.message[0]["value"] == f"<image>\nCould you produce an image for: {kept}?"
            assert record.message[1]["value"] == f"Result for {kept}."
        else:
            assert refine["status"] == "template_kept"
            assert refine["reason"].startswith({"malformed": "refine_malformed", "dropped": "refine_dropped_field",
                                                "error": "refine_backend_error"}[kind])
            assert record.message == before[record.id].message
        assert record.status == "kept"


def test_transformers_backend_with_the_demo_gemma3(task_records, tmp_path: Path):
    from filters.demo_models import build_medgemma

    model = build_medgemma(tmp_path / "medgemma-27b-it")
    settings = RefineSettings(enabled=True, backend="transformers", model=str(model), max_new_tokens=6,
                              num_gpus=0.0, batch_size=4)
    stage = TaskRefineStage(settings)
    stage.setup()
    records = copy.deepcopy(task_records[:3])
    stage.process_batch(records)
    again = copy.deepcopy(task_records[:3])
    stage.process_batch(again)
    for record, twin, original in zip(records, again, task_records[:3]):
        refine = record.meta["task_build"]["refine"]
        # random weights never write the JSON object: the template text stays, with the reason
        assert refine["status"] == "template_kept" and refine["reason"].split(":")[0] in (
            "refine_malformed", "refine_empty")
        assert record.message == original.message and record.meta["task_build"]["refine"] == twin.meta[
            "task_build"]["refine"]
    rejected = copy.deepcopy(task_records[0])
    rejected.status = "rejected"
    stage.process_batch([rejected])
    assert "refine" not in rejected.meta["task_build"]  # only kept records are rewritten
