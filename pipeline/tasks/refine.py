"""MedGemma refinement of the rendered task texts (the paper's "MLLM refinement", P3 §3.1 step 2).

Run by the stage `task_refine` (pipeline/stages/task_refine.py) after `task_builders`: for every kept record that carries `meta["task_build"]`, MedGemma gets
the rendered instruction and response with a versioned prompt (templates/refine_v1.yaml) and answers
with a JSON object `{"instruction": ..., "response": ...}`. The same request goes through the
transformers backend (Gemma3, chat template, loaded once per actor) or an OpenAI-compatible
`/chat/completions` server (vLLM, TGI; bounded requests with a timeout and a few retries), the
plumbing filters/alignment/captioner.py uses for captions, but text only.

What changes and what does not:
- `record.message` gets the rewritten texts (the `<image>` placeholder stays first in the human turn);
- `meta["task_build"]["instruction"]` / `["response"]` keep the template output, untouched;
- `meta["task_build"]["refine"]` records backend, model, prompt version, sampling settings, seed, and
  `status`: "rewritten", or "template_kept" with `reason` when the output is unusable: a backend error,
  not JSON (`refine_malformed`), an empty text (`refine_empty`), an `<image>` token
  (`refine_image_token`), a slot value of `keep_fields` dropped (`refine_dropped_field`: the facts, e.g.
  the segmentation target, the HER2 level, the counterfactual explanation) or a text over `max_growth`
  times the template (`refine_too_long`). The record stays kept either way: its template text is valid.
"""

from __future__ import annotations

import json
import logging
import string
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from filters.alignment.captioner import post_chat
from manifests.records import IMAGE_TOKEN, Record
from pipeline.tasks.settings import RefineSettings
from pipeline.tasks.templates import TEMPLATES_DIR, TemplateError, seed_for

log = logging.getLogger(__name__)
PARTS = ("instruction", "response")


@lru_cache(maxsize=8)
def load_prompt(name: str) -> string.Template:
    path = TEMPLATES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise TemplateError(f"no refinement prompt {path.name} in {TEMPLATES_DIR}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if data.get("task") != "refine" or not isinstance(data.get("prompt"), str) or not data["prompt"].strip():
        raise TemplateError(f"{path.name}: needs `task: refine` and a non-empty `prompt`")
    return string.Template(data["prompt"].strip())


def kept_phrases(build: dict, settings: RefineSettings) -> list[str]:
    """The slot values of this record's `keep_fields` that its template texts contain."""
    fields = build.get("fields") or {}
    text = f"{build['instruction']}\n{build['response']}".lower()
    values = (str(fields[name]) for name in settings.keep_fields.get(build["builder"], []) if fields.get(name))
    return [value for value in values if value.lower() in text]


def render_prompt(build: dict, settings: RefineSettings) -> str:
    keep = kept_phrases(build, settings)
    return load_prompt(settings.prompt).safe_substitute(
        task=build["builder"].replace("_", " "), instruction=build["instruction"], response=build["response"],
        keep="; ".join(f'"{value}"' for value in keep) or "none")


def parse_rewrite(text: object, build: dict, settings: RefineSettings) -> tuple[dict[str, str] | None, str | None]:
    """The rewritten texts, or None and the reason they cannot be used."""
    if not isinstance(text, str) or not text.strip():
        return None, "refine_empty: no output"
    start, end = text.find("{"), text.rfind("}")  # models wrap JSON in prose or code fences
    try:
        data = json.loads(text[start : end + 1]) if 0 <= start < end else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return None, "refine_malformed: no JSON object with instruction and response"
    out = {}
    for part in PARTS:
        value = data.get(part)
        if not isinstance(value, str) or not " ".join(value.split()):
            return None, f"refine_empty: {part}"
        value = " ".join(value.split())
        if IMAGE_TOKEN in value:
            return None, f"refine_image_token: {part}"
        template = build[part]
        if len(value) > settings.max_growth * len(template) + 80:
            return None, f"refine_too_long: {part} {len(value)} chars vs template {len(template)}"
        for phrase in kept_phrases(build, settings):
            if phrase.lower() in template.lower() and phrase.lower() not in value.lower():
                return None, f"refine_dropped_field: {part} lost {phrase[:60]!r}"
        out[part] = value
    return out, None


class TransformersRefiner:
    """Gemma3 text generation (MedGemma 4b/27b-it multimodal checkpoints, or the text-only 27b)."""

    def __init__(self, path: Path, settings: RefineSettings):
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor, AutoTokenizer
        from transformers import Gemma3ForConditionalGeneration

        from filters.models import device_and_dtype, quiet_transformers

        quiet_transformers()
        self.settings = settings
        self.device, dtype = device_and_dtype(settings.dtype, settings.num_gpus)
        if getattr(AutoConfig.from_pretrained(path), "vision_config", None) is not None:
            self.chat = AutoProcessor.from_pretrained(path)
            tokenizer = self.chat.tokenizer
            model = Gemma3ForConditionalGeneration.from_pretrained(path, dtype=dtype)
        else:
            self.chat = tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        self.tokenizer = tokenizer
        self.model = model.to(self.device).eval()
        self._torch = torch

    def generate(self, prompts: list[str], seeds: list[int]) -> list[str]:
        from filters.models import generate_each

        s = self.settings
        sampling = {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p} if s.temperature > 0 else {
            "do_sample": False}

        def one(index: int) -> str:
            conversation = [[{"role": "user", "content": [{"type": "text", "text": prompts[index]}]}]]
            inputs = self.chat.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
                                                   return_dict=True, return_tensors="pt").to(self.device)
            output = self.model.generate(**inputs, max_new_tokens=s.max_new_tokens, **sampling)
            return self.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]

        return generate_each(self._torch, self.device, seeds, one)  # each record under its own seed


class OpenAIRefiner:
    """The same request to an OpenAI-compatible `/chat/completions` endpoint, one per record."""

    def __init__(self, settings: RefineSettings):
        self.settings = settings
        self.url = str(settings.endpoint).rstrip("/") + "/chat/completions"

    def request_body(self, prompt: str, seed: int) -> dict[str, Any]:
        s = self.settings
        return {"model": s.model, "n": 1, "temperature": s.temperature, "top_p": s.top_p,
                "max_tokens": s.max_new_tokens, "seed": seed, "messages": [{"role": "user", "content": prompt}]}

    def _one(self, prompt: str, seed: int) -> str | Exception:
        out = post_chat(self.url, self.request_body(prompt, seed), self.settings.request_timeout_s,
                        self.settings.max_retries)
        if isinstance(out, list):
            return out[0] if out else RuntimeError("refine_malformed: response IndexError: no choices")
        if out.startswith("malformed response: "):
            return RuntimeError("refine_malformed: response " + out.removeprefix("malformed response: "))
        return RuntimeError("refine_backend_error: " + out.removeprefix("backend error: "))

    def generate(self, prompts: list[str], seeds: list[int]) -> list[str | Exception]:
        workers = max(1, min(self.settings.max_concurrent_requests, len(prompts)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda pair: self._one(*pair), zip(prompts, seeds)))


def load_refiner(settings: RefineSettings) -> TransformersRefiner | OpenAIRefiner:
    if settings.backend == "openai":
        return OpenAIRefiner(settings)
    from filters.models import resolve_model

    return TransformersRefiner(resolve_model(settings.model, settings.models_dir), settings)


def wants_refine(record: Record) -> bool:
    return record.status == "kept" and "task_build" in record.meta and len(record.message) >= 2


def refine_records(refiner: TransformersRefiner | OpenAIRefiner, todo: list[Record], settings: RefineSettings) -> None:
    """Rewrite each record's two turns; the template output and what happened stay in `meta["task_build"]`."""
    s = settings
    seeds = [seed_for(s.seed, record.id, "refine") for record in todo]
    outputs = refiner.generate([render_prompt(r.meta["task_build"], s) for r in todo], seeds)
    for record, output, seed in zip(todo, outputs, seeds):
        build = record.meta["task_build"]
        info = {"backend": s.backend, "model": s.model, "prompt": s.prompt, "temperature": s.temperature,
                "top_p": s.top_p, "seed": seed}
        if isinstance(output, Exception):
            rewrite, reason = None, str(output)
        else:
            rewrite, reason = parse_rewrite(output, build, s)
        if rewrite is None:
            build["refine"] = {**info, "status": "template_kept", "reason": reason}
            continue
        record.message[0] = {**record.message[0], "value": f"{IMAGE_TOKEN}\n{rewrite['instruction']}"}
        record.message[1] = {**record.message[1], "value": rewrite["response"]}
        build["refine"] = {**info, "status": "rewritten", "reason": None}
