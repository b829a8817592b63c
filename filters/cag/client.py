"""One chat request per CAG step and image, through either backend; a failure is a string, never a raise.

`OpenAIChat` posts to an OpenAI-compatible `/chat/completions` (vLLM, TGI) with the captioner's bounded
request (`filters.alignment.captioner.post_chat`); `TransformersChat` runs Gemma3 (MedGemma) through its
processor's chat template, loaded once per actor. A request is (image or None, prompt text); the reply
is the text, or a `Failure` naming the backend error.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from filters.alignment.captioner import image_data_url, post_chat
from filters.cag.settings import CagSettings
from filters.models import device_and_dtype, generate_each, quiet_transformers, resolve_model


class Failure(str):
    """A backend error in place of a reply (not cached: a rebuild asks again)."""


class OpenAIChat:
    def __init__(self, settings: CagSettings):
        self.settings = settings
        self.url = str(settings.endpoint).rstrip("/") + "/chat/completions"

    def body(self, step: str, image, text: str, seed: int) -> dict:
        s = self.settings
        content = ([{"type": "image_url", "image_url": {"url": image_data_url(image)}}] if image is not None else [])
        content.append({"type": "text", "text": text})
        return {"model": s.model, "n": 1, "temperature": s.temperature, "top_p": s.top_p,
                "max_tokens": s.max_new_tokens[step], "seed": seed,
                "messages": [{"role": "user", "content": content}]}

    def _one(self, step: str, image, text: str, seed: int) -> str:
        out = post_chat(self.url, self.body(step, image, text, seed), self.settings.request_timeout_s,
                        self.settings.max_retries)
        if isinstance(out, str):
            return Failure(out)
        if not out or not isinstance(out[0], str):
            return Failure("malformed response: no text in the first choice")
        return out[0]

    def generate(self, step: str, requests: list[tuple[object, str]], seeds: list[int]) -> list[str]:
        workers = max(1, min(self.settings.max_concurrent_requests, len(requests)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda request, seed: self._one(step, request[0], request[1], seed), requests, seeds))


class TransformersChat:
    def __init__(self, path: Path, settings: CagSettings):
        import torch
        from transformers import AutoProcessor, Gemma3ForConditionalGeneration

        quiet_transformers()
        self.settings = settings
        self.device, dtype = device_and_dtype(settings.resources.dtype, settings.resources.num_gpus)
        self.processor = AutoProcessor.from_pretrained(path)
        self.processor.tokenizer.padding_side = "left"
        self.model = Gemma3ForConditionalGeneration.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self._torch = torch

    def generate(self, step: str, requests: list[tuple[object, str]], seeds: list[int]) -> list[str]:
        s = self.settings
        sampling = ({"do_sample": True, "temperature": s.temperature, "top_p": s.top_p} if s.temperature > 0
                    else {"do_sample": False})

        def one(index: int) -> str:
            image, text = requests[index]
            conversation = [[{"role": "user", "content": ([{"type": "image", "image": image}] if image is not None else [])
                              + [{"type": "text", "text": text}]}]]
            inputs = self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
                                                        return_dict=True, return_tensors="pt").to(self.device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            output = self.model.generate(**inputs, max_new_tokens=s.max_new_tokens[step], **sampling)
            return self.processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]

        return generate_each(self._torch, self.device, seeds, one)


def load_chat(settings: CagSettings) -> OpenAIChat | TransformersChat:
    if settings.backend == "openai":
        return OpenAIChat(settings)
    return TransformersChat(resolve_model(settings.model, settings.models_dir), settings)


def model_facts(settings: CagSettings) -> dict:
    """Model, backend and whether the weights are the tiny demo ones (for stats.json)."""
    from filters.models import is_demo

    if settings.backend == "openai":
        return {"model": settings.model, "backend": "openai", "endpoint": settings.endpoint, "demo": False}
    path = resolve_model(settings.model, settings.models_dir)
    return {"model": settings.model, "backend": "transformers", "path": str(path), "demo": is_demo(path)}
