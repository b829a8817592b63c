"""Decoding a sample for a model: `<image>` turns split into text and image pieces, images to tensors, batches padded."""


from __future__ import annotations

import io
from typing import Any, Callable, Protocol

import numpy as np

from manifests.records import IMAGE_TOKEN
from pipeline.curriculum.schedule import FAMILIES


class Tokenizer(Protocol):
    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int
    image_id: int

    def encode(self, text: str) -> list[int]: ...


class ByteTokenizer:
    """UTF-8 bytes plus a few special ids: needs no download, good enough for the reference model."""

    pad_id, bos_id, eos_id, image_id, human_id, gpt_id = 256, 257, 258, 259, 260, 261
    vocab_size = 262

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


class ImageTransform:
    """Encoded bytes -> float tensor [3, size, size] in [-1, 1] (mean and std 0.5, as Bagel normalises).

    16-bit images are scaled by their own dtype range, not clipped; greyscale is repeated to 3 channels.
    """

    def __init__(self, size: int = 64):
        self.size = size

    def __call__(self, data: bytes):
        import torch
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float32) / 65535.0
                image = Image.fromarray((array * 255).clip(0, 255).astype(np.uint8))
            image = image.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(array.transpose(2, 0, 1).copy())


class SampleDecoder:
    """A sample's JSON and image bytes -> token ids, loss labels and image tensors.

    Text: per turn a role id, the turn's bytes with `<image>` replaced by `image_id`; gpt turns carry
    the loss (labels), human turns do not (-100). Images: `input_img` and `output_img` in order.
    """

    def __init__(self, tokenizer: Tokenizer | None = None, image_transform: Callable | None = None,
                 output_transform: Callable | None = None, max_tokens: int = 512):
        self.tokenizer = tokenizer or ByteTokenizer()
        self.image_transform = image_transform or ImageTransform()
        self.output_transform = output_transform or self.image_transform
        self.max_tokens = max_tokens

    def __call__(self, doc: dict[str, Any], members: dict[str, bytes]) -> dict[str, Any]:
        import torch

        tok = self.tokenizer
        ids, labels = [tok.bos_id], [-100]
        for turn in doc.get("message") or []:
            is_gpt = turn.get("from") == "gpt"
            role = getattr(tok, "gpt_id" if is_gpt else "human_id", tok.bos_id)
            pieces = str(turn.get("value", "")).split(IMAGE_TOKEN)
            turn_ids = [role]
            for i, piece in enumerate(pieces):
                if i:
                    turn_ids.append(tok.image_id)
                turn_ids.extend(tok.encode(piece))
            if is_gpt:
                turn_ids.append(tok.eos_id)
            ids.extend(turn_ids)
            labels.extend(turn_ids if is_gpt else [-100] * len(turn_ids))
        ids, labels = ids[: self.max_tokens], labels[: self.max_tokens]
        inputs = [self.image_transform(members[ref["path"]]) for ref in doc.get("input_img") or []]
        outputs = [self.output_transform(members[ref["path"]]) for ref in doc.get("output_img") or []]
        return {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long),
                "input_images": inputs, "output_images": outputs}


def _stack_padded(images: list, fill: float = 0.0):
    import torch

    if not images:
        return torch.zeros(0, 3, 1, 1)
    if all(im.shape == images[0].shape for im in images):
        return torch.stack(images)
    channels = max(im.shape[0] for im in images)
    height, width = max(im.shape[1] for im in images), max(im.shape[2] for im in images)
    out = torch.full((len(images), channels, height, width), fill)
    for i, im in enumerate(images):
        out[i, : im.shape[0], : im.shape[1], : im.shape[2]] = im
    return out


def collate(samples: list[dict[str, Any]], pad_id: int = ByteTokenizer.pad_id) -> dict[str, Any]:
    """Pad token ids (pad_id), labels (-100) and an attention mask; concatenate images with owner indices."""
    import torch

    length = max(len(s["input_ids"]) for s in samples)
    batch = len(samples)
    input_ids = torch.full((batch, length), pad_id, dtype=torch.long)
    labels = torch.full((batch, length), -100, dtype=torch.long)
    mask = torch.zeros((batch, length), dtype=torch.bool)
    for i, s in enumerate(samples):
        n = len(s["input_ids"])
        input_ids[i, :n], labels[i, :n], mask[i, :n] = s["input_ids"], s["labels"], True
    out = {"input_ids": input_ids, "labels": labels, "attention_mask": mask}
    for role in ("input_images", "output_images"):
        images = [im for s in samples for im in s[role]]
        out[role] = _stack_padded(images)
        out[role.replace("images", "owner")] = torch.tensor(
            [i for i, s in enumerate(samples) for _ in s[role]], dtype=torch.long)
    out["family"] = torch.tensor([FAMILIES.index(s["family"]) for s in samples], dtype=torch.long)
    for name in ("key", "source", "stream"):
        out[name] = [s[name] for s in samples]
    out["draw"] = torch.tensor([s["draw"] for s in samples], dtype=torch.long)
    return out
