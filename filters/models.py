"""Where model weights come from, offline first, and which device and dtype a stage runs them in.

A model is named by a hub id (`google/medsiglip-448`) or a local directory. Resolution never reaches
the network: a directory is used as it is; a hub id is looked up under the recipe's `models_dir`
(by the id's last path part, then the full id), then in the local Hugging Face cache. When neither
has it, `ModelNotAvailable` says how to provide the weights.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class ModelNotAvailable(FileNotFoundError):
    """The weights of a model are not on this machine; the message says how to provide them."""


def resolve_model(name: str, models_dir: str | None = None) -> Path:
    """A local directory holding the model `name` (a hub id or a directory), without any download."""
    if not name:
        raise ModelNotAvailable("no model named: set the model's `model:` key in the recipe's alignment section")
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        return as_path
    if models_dir:
        for candidate in (Path(models_dir) / name.rsplit("/", 1)[-1], Path(models_dir) / name):
            if candidate.is_dir():
                return candidate
    if "/" in name and not as_path.is_absolute():
        cached = _hub_cache(name)
        if cached is not None:
            return cached
    raise ModelNotAvailable(
        f"model {name!r} is not available offline. Provide it one of these ways: "
        f"(1) on a machine with internet, `huggingface-cli download {name}` (accept its licence on the hub "
        f"first for gated models such as MedGemma and MedSigLIP) and copy the HF cache here (HF_HOME); "
        f"(2) point the recipe's `model:` at a local directory holding the weights; "
        f"(3) put the directory under `alignment.models_dir` as {name.rsplit('/', 1)[-1]}/; "
        f"for a demo with tiny random weights, run `unimed demo-models --out DIR`")


def _hub_cache(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError, OSError):
        return None


def is_demo(path: Path) -> bool:
    """Tiny random weights written by `unimed demo-models` carry a marker file."""
    return (Path(path) / "DEMO_WEIGHTS").is_file()


def device_and_dtype(dtype: str, num_gpus: float):
    """`auto`: bf16 on a GPU, fp32 on CPU. A GPU is used only when the stage asked for one and has one."""
    import torch

    device = "cuda" if num_gpus > 0 and torch.cuda.is_available() else "cpu"
    names = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if dtype == "auto":
        return device, (torch.bfloat16 if device == "cuda" else torch.float32)
    if dtype not in names:
        raise ValueError(f"dtype must be one of auto, {', '.join(names)}; got {dtype!r}")
    return device, names[dtype]


def quiet_transformers() -> None:
    """No download/progress chatter from transformers inside workers; offline stays offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def item_seed(seed: int, *key: str) -> int:
    """The sampling seed of one item: the recipe's seed and the item's own content key, never its batch.

    Ray Data composes batches differently from run to run; a seed per batch made sampled outputs (and so
    the scores and the kept set) depend on it. Per item, the same item always gets the same outputs.
    """
    import hashlib

    digest = hashlib.blake2b("|".join([str(seed), *key]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF


def generate_each(torch, device: str, seeds: list[int], generate_one) -> list:
    """`generate_one(i)` for each item, each under its own seed (the caller's RNG state restored after).

    One item per `generate` call: a batch's padding and shared RNG stream would make an item's sampled
    output depend on its batch neighbours. On a GPU this trades throughput for reproducibility; the
    OpenAI-compatible backends (vLLM) take a seed per request and batch on the server instead.
    """
    devices = [torch.cuda.current_device()] if device == "cuda" else []
    outputs = []
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        for index, seed in enumerate(seeds):
            torch.manual_seed(seed)
            outputs.append(generate_one(index))
    return outputs
