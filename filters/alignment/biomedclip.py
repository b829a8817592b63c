"""BiomedCLIP image-text cosine (the score the paper reports for generated images), an extra column.

Loaded through open_clip from the hub layout of
`hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224` (open_clip_config.json, weights,
tokenizer files), resolved offline to a local directory and opened as `local-dir:`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from filters.alignment.pairs import TEXT, scored_image, to_pil
from filters.settings import AlignmentSettings, ImageTextSettings
from filters.models import device_and_dtype, quiet_transformers, resolve_model
from manifests.records import Record


class BiomedCLIPScorer:
    def __init__(self, path: Path, settings: ImageTextSettings):
        import open_clip
        import torch

        quiet_transformers()
        self.settings = settings
        self.device, dtype = device_and_dtype(settings.resources.dtype, settings.resources.num_gpus)
        name = f"local-dir:{Path(path).resolve()}"
        model, _, self.preprocess = open_clip.create_model_and_transforms(name, device=self.device)
        self.model = model.to(dtype=dtype).eval()
        self.tokenizer = open_clip.get_tokenizer(name)
        self.dtype, self._torch = dtype, torch
        # open_clip's first transform resizes the shorter side (224 for BiomedCLIP)
        first = self.preprocess.transforms[0] if hasattr(self.preprocess, "transforms") else None
        size = getattr(first, "size", None)
        self.input_side = size if isinstance(size, int) else max(size) if size else None

    def score(self, images: list, texts: list[str]) -> np.ndarray:
        """Cosine similarity of each (image, text) pair, float32 in [-1, 1]."""
        torch, size = self._torch, self.settings.resources.batch_size
        out = []
        for start in range(0, len(images), size):
            pixels = torch.stack([self.preprocess(im) for im in images[start:start + size]])
            tokens = self.tokenizer(texts[start:start + size]).to(self.device)
            with torch.inference_mode():
                image_features = self.model.encode_image(pixels.to(self.device, self.dtype), normalize=True)
                text_features = self.model.encode_text(tokens, normalize=True)
                out.append((image_features.float() * text_features.float()).sum(-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def load_biomedclip(settings: AlignmentSettings) -> BiomedCLIPScorer:
    return BiomedCLIPScorer(resolve_model(settings.biomedclip.model, settings.models_dir), settings.biomedclip)


def biomedclip_scores(scorer: BiomedCLIPScorer, todo: list[Record], settings: AlignmentSettings) -> None:
    """The optional `align_bmc` column: BiomedCLIP's image-text logit."""
    images = [to_pil(scored_image(r), getattr(scorer, "input_side", None)) for r in todo]
    scores = scorer.score(images, [r.scores[TEXT] for r in todo])
    for record, value in zip(todo, scores):
        record.scores["align_bmc"] = float(value)
