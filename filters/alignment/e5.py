"""Step 2 of F_align: S = max over the K candidates of cos(E(original text), E(candidate)), E = E5.

E5-large-v2 (`intfloat/e5-large-v2`) as its model card documents it: a BERT encoder, the text
prefixed with "query: " or "passage: ", attention-masked mean pooling, L2-normalised. Comparing a
caption with a caption is a symmetric task, for which the card says to use "query: " on both sides;
the prefixes are recipe settings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from filters.alignment.pairs import CAPTIONS, TEXT, TODO
from filters.settings import AlignmentSettings, EmbedderSettings
from filters.models import device_and_dtype, quiet_transformers, resolve_model
from manifests.records import Record


class E5Embedder:
    def __init__(self, path: Path, settings: EmbedderSettings):
        import torch
        from transformers import AutoModel, AutoTokenizer

        quiet_transformers()
        self.settings = settings
        self.device, dtype = device_and_dtype(settings.resources.dtype, settings.resources.num_gpus)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self._torch = torch

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 embeddings, `batch_size` texts per forward pass."""
        torch, size = self._torch, self.settings.resources.batch_size
        chunks = []
        for start in range(0, len(texts), size):
            batch = self.tokenizer(texts[start:start + size], padding=True, truncation=True,
                                   max_length=self.settings.max_length, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                chunks.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy())
        width = self.model.config.hidden_size
        return np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32)


def max_cosine(original: np.ndarray, candidates: np.ndarray) -> tuple[float, int]:
    """S and the index of the best candidate, from unit-length embeddings."""
    similarities = candidates @ original
    best = int(np.argmax(similarities))
    return float(similarities[best]), best


def load_embedder(settings: AlignmentSettings) -> E5Embedder:
    return E5Embedder(resolve_model(settings.embedder.model, settings.models_dir), settings.embedder)


def has_captions(record: Record) -> bool:
    return bool(record.scores.get(TODO) and record.scores.get(CAPTIONS))


def similarity_scores(embedder: E5Embedder, todo: list[Record], settings: AlignmentSettings) -> None:
    """S (`align_s_raw`) and the best caption (`align_caption`) of each pair with captions."""
    e = settings.embedder
    texts, spans = [], []
    for record in todo:
        captions = record.scores[CAPTIONS]
        spans.append((len(texts), len(captions)))
        texts.append(e.original_prefix + record.scores[TEXT])
        texts.extend(e.candidate_prefix + caption for caption in captions)
    vectors = embedder.embed(texts)
    for record, (start, count) in zip(todo, spans):
        s, best = max_cosine(vectors[start], vectors[start + 1:start + 1 + count])
        record.scores["align_s_raw"] = s
        record.scores["align_caption"] = record.scores[CAPTIONS][best]
