"""Step 1 of F_align: MedGemma writes K candidate captions per image from a versioned prompt.

Two backends send the same request: `transformers` (Gemma3 image-text-to-text, loaded once per
actor) and `openai` (an OpenAI-compatible chat-completions server, as vLLM or TGI serve it; bounded
requests with a timeout and a few retries). The captions are used only for scoring: the kept sample
keeps its original text. Empty, too short or failed outputs are not candidates; a pair with none
left gets a null score and a reason (`align_reason`), never an exception.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from filters.alignment.pairs import CAPTIONS, KEY, processor_side, scored_image, to_pil
from filters.settings import AlignmentSettings, CaptionerSettings
from filters.models import device_and_dtype, generate_each, item_seed, quiet_transformers, resolve_model
from manifests.records import Record

log = logging.getLogger(__name__)
PROMPTS = Path(__file__).parents[1] / "prompts"


def load_prompt(name: str) -> str:
    path = PROMPTS / f"{name}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in PROMPTS.glob("*.txt"))
        raise FileNotFoundError(f"no caption prompt {name!r} in {PROMPTS}; available: {available}")
    return path.read_text(encoding="utf-8").strip()


def clean_caption(text: object, min_chars: int) -> tuple[str | None, str | None]:
    """A usable candidate, or None and what is wrong with the output."""
    if not isinstance(text, str):
        return None, "not_text"
    caption = " ".join(text.split())
    if not caption:
        return None, "empty"
    if len(caption) < min_chars:
        return None, "too_short"
    return caption, None


def image_data_url(image) -> str:
    """A PIL image as the `data:` URL an OpenAI-compatible server takes in an `image_url` part."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def post_chat(url: str, body: dict, timeout_s: float, max_retries: int) -> list[str] | str:
    """One bounded `/chat/completions` request: the choices' texts, or a one-line error string.

    Server errors, 429 and connection failures are retried `max_retries` times with a short backoff;
    another 4xx is not (it would be refused again); a malformed payload is reported, not retried.
    """
    data = json.dumps(body).encode("utf-8")
    last = ""
    for attempt in range(max_retries + 1):
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                payload = json.loads(response.read().decode("utf-8"))
            return [choice["message"]["content"] for choice in payload["choices"]]
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}"
            if err.code < 500 and err.code != 429:
                break  # a request the server refuses will be refused again
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            last = f"{type(err).__name__}: {err}"
        except (ValueError, KeyError, TypeError, IndexError) as err:
            return f"malformed response: {type(err).__name__}: {err}"[:300]
        time.sleep(min(2.0, 0.1 * 2**attempt))
    return f"backend error: {last}"[:300]


class TransformersCaptioner:
    """Gemma3 image-text-to-text (MedGemma) through transformers' own processor and chat template."""

    def __init__(self, path: Path, settings: CaptionerSettings):
        import torch
        from transformers import AutoProcessor, Gemma3ForConditionalGeneration

        quiet_transformers()
        self.settings = settings
        self.device, dtype = device_and_dtype(settings.resources.dtype, settings.resources.num_gpus)
        self.processor = AutoProcessor.from_pretrained(path)
        self.processor.tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        self.model = Gemma3ForConditionalGeneration.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self.prompt = load_prompt(settings.prompt)
        self.input_side = processor_side(self.processor.image_processor)  # 896 for Gemma 3
        self._torch = torch

    def generate(self, images: list, seeds: list[int]) -> list[list[str] | str]:
        k = self.settings.k

        def one(index: int) -> list[str]:
            conversation = [[{"role": "user", "content": [{"type": "image", "image": images[index]},
                                                          {"type": "text", "text": self.prompt}]}]]
            inputs = self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
                                                        return_dict=True, return_tensors="pt").to(self.device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            output = self.model.generate(**inputs, do_sample=True, temperature=self.settings.temperature,
                                         top_p=self.settings.top_p, max_new_tokens=self.settings.max_new_tokens,
                                         num_return_sequences=k)
            return self.processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

        return generate_each(self._torch, self.device, seeds, one)


class OpenAICaptioner:
    """The same request sent to an OpenAI-compatible `/chat/completions` endpoint, `n` = K."""

    def __init__(self, settings: CaptionerSettings):
        self.settings = settings
        self.url = settings.endpoint.rstrip("/") + "/chat/completions"
        self.input_side = None  # the server's model resizes as it likes: send the full image
        self.prompt = load_prompt(settings.prompt)

    def request_body(self, image, seed: int) -> dict:
        data_url = image_data_url(image)
        s = self.settings
        return {"model": s.model, "n": s.k, "temperature": s.temperature, "top_p": s.top_p,
                "max_tokens": s.max_new_tokens, "seed": seed,
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}},
                                                          {"type": "text", "text": self.prompt}]}]}

    def _one(self, image, seed: int) -> list[str] | str:
        return post_chat(self.url, self.request_body(image, seed), self.settings.request_timeout_s,
                         self.settings.max_retries)

    def generate(self, images: list, seeds: list[int]) -> list[list[str] | str]:
        workers = max(1, min(self.settings.max_concurrent_requests, len(images)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._one, images, seeds))


def load_captioner(settings: AlignmentSettings) -> OpenAICaptioner | TransformersCaptioner:
    c = settings.captioner
    if c.backend == "openai":
        return OpenAICaptioner(c)
    return TransformersCaptioner(resolve_model(c.model, settings.models_dir), c)


def caption_pairs(captioner: OpenAICaptioner | TransformersCaptioner, todo: list[Record],
                  settings: AlignmentSettings) -> None:
    """K captions per pair still to be scored, into the transient `_align_captions`."""
    side = getattr(captioner, "input_side", None)  # None: a captioner that does not say gets the full image
    images = [to_pil(scored_image(r), side) for r in todo]
    outputs = captioner.generate(images, [item_seed(settings.captioner.seed, r.scores[KEY]) for r in todo])
    for record, output in zip(todo, outputs):
        if isinstance(output, str):  # the backend failed for this image
            record.scores.update({CAPTIONS: [], "align_reason": f"caption_{output}"})
            continue
        captions, problems = [], []
        for text in output:
            caption, problem = clean_caption(text, settings.captioner.min_caption_chars)
            if caption is None:
                problems.append(problem)
            else:
                captions.append(caption)
        record.scores[CAPTIONS] = captions
        if not captions:
            record.scores["align_reason"] = (f"caption_malformed: {len(problems)}/{len(output)} outputs "
                                             f"unusable ({', '.join(sorted(set(problems))) or 'none returned'})")
