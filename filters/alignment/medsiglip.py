"""Step 3 of F_align: M = the MedSigLIP image-text score of the original pair.

`google/medsiglip-448` through transformers' `SiglipModel` and the checkpoint's own processor
(resize to 448, its normalisation; text padded to max_length as SigLIP was trained). For each pair
the raw logit (cosine x exp(logit_scale) + logit_bias) and its sigmoid are kept; only the diagonal
pairs are scored, so a pair's score does not depend on what else is in its batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from filters.alignment.pairs import TEXT, processor_side, scored_image, to_pil
from filters.settings import AlignmentSettings, ImageTextSettings
from filters.models import device_and_dtype, quiet_transformers, resolve_model
from manifests.records import Record


class SiglipScorer:
    def __init__(self, path: Path, settings: ImageTextSettings):
        import torch
        from transformers import AutoProcessor, SiglipModel

        quiet_transformers()
        self.settings = settings
        self.device, dtype = device_and_dtype(settings.resources.dtype, settings.resources.num_gpus)
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = SiglipModel.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self.max_length = self.model.config.text_config.max_position_embeddings
        self.input_side = processor_side(self.processor.image_processor)  # 448 for MedSigLIP-448
        self._torch = torch

    def score(self, images: list, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(logits, sigmoid probabilities) of each (image, text) pair, float32."""
        torch, size = self._torch, self.settings.resources.batch_size
        logits = []
        for start in range(0, len(images), size):
            inputs = self.processor(text=texts[start:start + size], images=images[start:start + size],
                                    padding="max_length", truncation=True, max_length=self.max_length,
                                    return_tensors="pt").to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            with torch.inference_mode():
                out = self.model(**inputs)
                cosine = (out.image_embeds.float() * out.text_embeds.float()).sum(-1)
                logit = cosine * self.model.logit_scale.float().exp() + self.model.logit_bias.float()
            logits.append(logit.cpu().numpy())
        values = np.concatenate(logits) if logits else np.zeros(0, np.float32)
        return values.astype(np.float32), (1.0 / (1.0 + np.exp(-values))).astype(np.float32)


def load_siglip(settings: AlignmentSettings) -> SiglipScorer:
    return SiglipScorer(resolve_model(settings.siglip.model, settings.models_dir), settings.siglip)


def siglip_scores(scorer: SiglipScorer, todo: list[Record], settings: AlignmentSettings) -> None:
    """M: the image-text logit (`align_m_logit`) and its sigmoid (`align_m_prob`)."""
    images = [to_pil(scored_image(r), getattr(scorer, "input_side", None)) for r in todo]
    logits, probs = scorer.score(images, [r.scores[TEXT] for r in todo])
    for record, logit, prob in zip(todo, logits, probs):
        record.scores["align_m_logit"], record.scores["align_m_prob"] = float(logit), float(prob)
