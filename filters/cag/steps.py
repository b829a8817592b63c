"""The three CAG steps over records: request, cache by content, validate, record or reject.

A record takes part when `meta["cag"]` names its role: `t2i` (plain CAG T2I: the fused prompt replaces
the human turn, the image follows) or `plan` (T2I with planning: the fused prompt, then the step-3
reply as a gpt turn with loss, then the image). Both roles share steps 1 and 2 (the cache answers the
second one). Replies are cached raw under `<cache>/<step>/<kk>/<key>.json` (a folder or an object-store
prefix), keyed by the step's
generation settings, the prompt text and the inputs, so a rebuild never regenerates and a change of the
rules (filters/cag/rules.py) re-decides from the cache. Backend failures are not cached.
A reply that breaks a rule rejects the row with `cag_<step>_<rule>` and the reply's start in `detail`;
nothing falls back to the original caption.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from filters.alignment.captioner import load_prompt
from filters.alignment.pairs import to_pil
from filters.cag import rules
from filters.cag.client import Failure
from filters.cag.settings import CagSettings
from filters.models import item_seed
from manifests import storage
from manifests.records import IMAGE_TOKEN, Record

ROLES = ("t2i", "plan")


class ReplyCache:
    """One small JSON file per reply under a folder or an object-store prefix (manifests/storage.py),
    published whole (tmp + rename locally, one PUT on a store), so it is safe across workers.

    A batch's replies are read with one call (`get_many`): a local loop of reads, or the filesystem's
    concurrent GETs on a store; a missing reply is simply absent, never a listing."""

    def __init__(self, root: Path | str | None):
        self.location = str(root) if root else None
        self.fs, self.root = storage.filesystem(self.location) if self.location else (None, None)

    def _path(self, step: str, key: str) -> str:
        return storage.join(self.root, step, key[:2], f"{key}.json")

    def get(self, step: str, key: str) -> str | None:
        return self.get_many(step, [key]).get(key)

    def get_many(self, step: str, keys: list[str]) -> dict[str, str]:
        """The cached replies among `keys` (absent keys are left out)."""
        if self.root is None or not keys:
            return {}
        paths = {self._path(step, key): key for key in keys}
        found = storage.read_many(self.fs, list(paths))
        return {paths[path]: json.loads(data.decode("utf-8"))["reply"] for path, data in found.items()}

    def put(self, step: str, key: str, reply: str, version: str) -> None:
        if self.root is None:
            return
        storage.write_text(self.fs, self._path(step, key), json.dumps({"reply": reply, "prompt_version": version}))


def image_of(record: Record):
    images = record.output_images or record.input_images
    return images[0] if images else None


def original_caption(record: Record) -> str:
    human = next((turn["value"] for turn in record.message if turn["from"] == "human"), "")
    return " ".join(human.replace(IMAGE_TOKEN, " ").split())


def wants(record: Record, step: str) -> bool:
    cag = record.meta.get("cag")
    if not cag or record.status != "kept" or cag.get("role") not in ROLES:
        return False
    if step == "describe":
        return "description" not in cag
    if step == "fuse":
        return "description" in cag and "prompt" not in cag
    return cag["role"] == "plan" and "prompt" in cag and "plan" not in cag


def request_text(step: str, record: Record, settings: CagSettings) -> str:
    cag, phrase = record.meta["cag"], rules.modality_phrase(record.modality)
    template = load_prompt(settings.prompts[step])
    if step == "describe":
        return template
    if step == "fuse":
        return template.format(modality=phrase, description=cag["description"], caption=cag["caption"])
    return template.format(modality=phrase, description=cag["prompt"])


def reply_key(step: str, record: Record, text: str, settings: CagSettings) -> str:
    image = image_of(record) if step in ("describe", "plan") else None
    payload = {"step": step, "gen": settings.generation_digest(step), "text": text,
               "image": image.pixel_hash if image is not None else None}
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=16).hexdigest()


def _reject(record: Record, step: str, reason: str, reply: str = "") -> None:
    record.status, record.reason = "rejected", f"cag_{step}_{reason}"
    record.detail = " ".join(reply.split())[:300] or None


def _apply(record: Record, step: str, reply: str, settings: CagSettings) -> None:
    cag, modality = record.meta["cag"], record.modality
    if step == "describe":
        problem = rules.check_describe(reply, modality)
        if problem:
            return _reject(record, step, problem, reply)
        cag["description"] = " ".join(reply.split())
    elif step == "fuse":
        problem, out = rules.check_fuse(reply, modality, cag["caption"], max_chars=settings.fuse_max_chars)
        if problem:
            return _reject(record, step, problem, reply)
        cag["prompt"], cag["flagged"] = out["prompt"], out["flagged"]
        if cag["role"] == "t2i":  # plain CAG T2I: the fused prompt -> the image
            record.message = [{"from": "human", "value": out["prompt"]}, *[
                turn for turn in record.message if turn["from"] != "human"]]
    else:
        problem = rules.check_plan(reply, modality, cag["prompt"], settings.ban_observational_in_think)
        if problem:
            return _reject(record, step, problem, reply)
        cag["plan"] = reply.strip()
        # T2I with planning: prompt (no loss) -> plan text (loss) -> image; the gpt turn precedes the image
        record.message = [{"from": "human", "value": cag["prompt"]}, {"from": "gpt", "value": reply.strip()}]
    return None


def run_step(chat, step: str, records: list[Record], settings: CagSettings, cache: ReplyCache) -> dict[str, int]:
    """Run one step over the records that want it; returns counts (cached, generated, failed)."""
    counts = {"cached": 0, "generated": 0, "failed": 0}
    todo: list[tuple[Record, str, str]] = []
    for record in records:
        if not wants(record, step):
            continue
        cag = record.meta["cag"]
        cag.setdefault("prompts", {})[step] = settings.prompts[step]
        cag["model"] = settings.model
        if rules.modality_phrase(record.modality) is None:
            _reject(record, step, "modality_unknown")
            continue
        if step in ("describe", "plan") and image_of(record) is None:
            _reject(record, step, "no_image")
            continue
        text = request_text(step, record, settings)
        todo.append((record, text, reply_key(step, record, text, settings)))
    found = cache.get_many(step, sorted({key for _, _, key in todo}))
    replies = {key: found.get(key) for _, _, key in todo}
    counts["cached"] = sum(reply is not None for reply in replies.values())
    missing = {key: (record, text) for record, text, key in todo if replies[key] is None}
    if missing:
        keys = sorted(missing)
        requests = [((to_pil(image_of(missing[k][0])) if step != "fuse" else None), missing[k][1]) for k in keys]
        seeds = [item_seed(settings.seed, step, key) for key in keys]
        for key, reply in zip(keys, chat.generate(step, requests, seeds)):
            if isinstance(reply, Failure):
                counts["failed"] += 1
                replies[key] = reply
                continue
            counts["generated"] += 1
            cache.put(step, key, str(reply), settings.prompts[step])
            replies[key] = str(reply)
    for record, _, key in todo:
        reply = replies[key]
        if isinstance(reply, Failure):
            _reject(record, step, "backend_error", str(reply))
        else:
            _apply(record, step, reply, settings)
    return counts
