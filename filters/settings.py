"""The filters' settings: the coarse rules, the alignment models with their Ray resources, and the cut.

One small dataclass per component; `pipeline/config.py` composes them into a recipe. `RecipeError`
lives here, on the lowest floor that validates settings, so every floor above can raise it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


class RecipeError(ValueError):
    """A recipe that cannot be used; the message says which key and what is expected."""


@dataclass
class FilterSettings:
    min_side: int = 128  # paper: shorter image side >= 128 px
    text_min_chars: int = 10  # paper: 10 <= len(text) <= 1024
    text_max_chars: int = 1024
    max_aspect_ratio: float = 8.0
    min_pixel_std: float = 0.01  # intensity std on a [0, 1] scale; below it an image is blank
    max_garbage_ratio: float = 0.05
    language: str | None = None  # e.g. "en": reject samples detected as another language
    language_candidates: list[str] = field(default_factory=lambda: ["en", "zh", "fr", "de", "es", "pt", "it", "ja", "ko", "ru"])
    max_side: int = 4095  # UniMedVL's loaders skip sides >= 4096 px ...
    max_pixels: int = 20_000_000  # ... and images over 20M pixels
    oversize: str = "downscale"  # "downscale" to fit the limits, or "reject"
    dedup: str = "exact"  # "exact": same decoded pixels and text within a task; "off"

    def validate(self) -> None:
        if self.oversize not in ("downscale", "reject"):
            raise RecipeError(f"filters.oversize must be 'downscale' or 'reject', not {self.oversize!r}")
        if self.dedup not in ("exact", "off"):
            raise RecipeError(f"filters.dedup must be 'exact' or 'off', not {self.dedup!r}")
        if self.text_min_chars > self.text_max_chars:
            raise RecipeError("filters.text_min_chars is larger than filters.text_max_chars")


@dataclass
class ModelResources:
    """How a model stage runs on Ray: per-actor resources, pool size, batch size, dtype."""

    num_gpus: float = 0.0
    num_cpus: float = 1.0
    actors: int = 1
    batch_size: int = 8
    dtype: str = "auto"  # "auto": bf16 on a GPU, fp32 on CPU; or "bf16", "fp16", "fp32"


@dataclass
class CaptionerSettings:
    backend: str = "transformers"  # or "openai": an OpenAI-compatible server (vLLM, TGI)
    model: str = "google/medgemma-27b-it"  # paper; google/medgemma-4b-it for smaller machines
    endpoint: str | None = None  # backend openai: base URL such as http://127.0.0.1:8000/v1
    prompt: str = "medgemma_qc_v1"  # filters/prompts/<prompt>.txt
    k: int = 5  # paper: K = 5 candidate captions per image
    temperature: float = 0.7  # not stated in the paper; sampling is needed for K distinct captions
    top_p: float = 0.95
    max_new_tokens: int = 384
    min_caption_chars: int = 20  # shorter outputs are malformed, not candidates
    seed: int = 0
    request_timeout_s: float = 120.0
    max_retries: int = 2
    max_concurrent_requests: int = 8
    resources: ModelResources = field(default_factory=lambda: ModelResources(num_gpus=0.5, batch_size=4))


@dataclass
class EmbedderSettings:
    model: str = "intfloat/e5-large-v2"
    # E5's documented convention: "query: " on both sides for symmetric similarity tasks.
    original_prefix: str = "query: "
    candidate_prefix: str = "query: "
    max_length: int = 512
    resources: ModelResources = field(default_factory=lambda: ModelResources(num_gpus=0.25, batch_size=32))


@dataclass
class ImageTextSettings:
    model: str | None = "google/medsiglip-448"
    resources: ModelResources = field(default_factory=lambda: ModelResources(num_gpus=0.25, batch_size=32))


@dataclass
class AlignmentSettings:
    """The paper's F_align: S (E5 max-cosine vs K MedGemma captions), M (MedSigLIP), top fraction kept.

    Models, prompt, K, sampling and the text policy change the staged scores (they are in the
    processing digest); normalisation, lambda and the cut are applied at finalisation from the score
    columns, so changing them never re-runs a model (`unimed rethreshold`).
    """

    enabled: bool = False
    models_dir: str | None = None  # a folder searched first, by the model id's last path part
    captioner: CaptionerSettings = field(default_factory=CaptionerSettings)
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    siglip: ImageTextSettings = field(default_factory=ImageTextSettings)
    biomedclip: ImageTextSettings = field(
        default_factory=lambda: ImageTextSettings(model=None))  # optional extra column align_bmc
    # Which text of a sample is scored: "answer" (gpt turns), "prompt" (human turns), "question_answer"
    # (all turns), or "exempt" (not scored, not cut). Source wins over sub-task, sub-task over family.
    policy_by_family: dict[str, str] = field(default_factory=lambda: {
        "i2t": "answer", "t2i": "prompt", "interleaved": "exempt", "text": "exempt"})
    policy_by_sub_task: dict[str, str] = field(default_factory=lambda: {"medical_vqa": "question_answer"})
    policy_by_source: dict[str, str] = field(default_factory=dict)
    normalize: str = "minmax"  # "minmax" or "rank" (not stated in the paper)
    normalize_scope: str = "global"  # "global", "source" or "modality"
    m_score: str = "logit"  # which M is normalised: "logit" or "sigmoid"
    lambda_s: float = 0.5  # paper: S_final = lambda * S + M, lambda = 0.5
    keep_fraction: float = 0.5  # paper: top 50%
    keep_scope: str = "global"  # "global", "source" or "modality"
    unscored: str = "reject"  # a scored-but-null pair (malformed output): "reject" or "keep"

    def validate(self) -> None:
        choices = {"normalize": ("minmax", "rank"), "normalize_scope": ("global", "source", "modality"),
                   "keep_scope": ("global", "source", "modality"), "m_score": ("logit", "sigmoid"),
                   "unscored": ("reject", "keep")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise RecipeError(f"alignment.{name} must be one of {list(allowed)}, not {getattr(self, name)!r}")
        if self.captioner.backend not in ("transformers", "openai"):
            raise RecipeError(f"alignment.captioner.backend must be 'transformers' or 'openai', "
                              f"not {self.captioner.backend!r}")
        if self.captioner.backend == "openai" and not self.captioner.endpoint:
            raise RecipeError("alignment.captioner.endpoint is required with backend 'openai' "
                              "(e.g. http://127.0.0.1:8000/v1)")
        if not 0.0 < self.keep_fraction <= 1.0:
            raise RecipeError(f"alignment.keep_fraction must be in (0, 1], not {self.keep_fraction}")
        if self.captioner.k < 1:
            raise RecipeError("alignment.captioner.k must be at least 1")
        policies = {"answer", "prompt", "question_answer", "exempt"}
        for table in (self.policy_by_family, self.policy_by_sub_task, self.policy_by_source):
            bad = sorted(v for v in table.values() if v not in policies)
            if bad:
                raise RecipeError(f"alignment text policy {bad}: expected one of {sorted(policies)}")

    def scoring_digest(self) -> dict[str, Any]:
        """The settings that change a pair's raw scores (not the decision made from them)."""
        captioner = {k: v for k, v in dataclasses.asdict(self.captioner).items()
                     if k not in ("resources", "request_timeout_s", "max_retries", "max_concurrent_requests")}
        embedder = {k: v for k, v in dataclasses.asdict(self.embedder).items() if k != "resources"}
        from manifests.images import DECODER  # the model inputs are reduced decodes of passthrough JPEGs

        return {"captioner": captioner, "embedder": embedder, "siglip": self.siglip.model,
                "biomedclip": self.biomedclip.model, "decoder": DECODER}


@dataclass
class BenchmarkEntry:
    """An evaluation set: a registered source read from --sources-root, and the splits that are evaluated."""

    name: str
    splits: list[str] = field(default_factory=lambda: ["validate", "test"])
    options: dict[str, Any] = field(default_factory=dict)


def default_benchmarks() -> list[BenchmarkEntry]:
    """Issue #15's stage-1 list: the VQA benchmarks' test and validation splits, MIMIC-CXR's test split,
    and the evaluation splits of BCI, IXI (no official split: all of it), BraTS and ICG-CXR."""
    test_val = ["validate", "test"]
    return [BenchmarkEntry("slake", test_val), BenchmarkEntry("vqa_rad", ["test"]), BenchmarkEntry("pathvqa", test_val),
            BenchmarkEntry("pmc_vqa", ["test"]), BenchmarkEntry("omnimedvqa", ["unsplit"]),
            BenchmarkEntry("mimic_cxr", ["test"]), BenchmarkEntry("bci", test_val), BenchmarkEntry("ixi", ["unsplit"]),
            BenchmarkEntry("brats", test_val), BenchmarkEntry("icg_cxr", test_val)]


@dataclass
class NearDuplicateSettings:
    """Near duplicates across sources and benchmark decontamination (filters/near_duplicates.py,
    filters/decontamination.py).

    Hashes (`num_perm`, `shingle`) are score columns written by the workers and are in the processing
    digest when enabled; every threshold, the rule, the source priority and the benchmark list are
    applied at finalisation from the columns, so changing them re-runs no hashing.
    """

    enabled: bool = False
    num_perm: int = 64  # MinHash permutations (32-bit values)
    shingle: int = 5  # character n-grams of the normalised text
    phash_max_distance: int = 8  # Hamming distance over the 64-bit pHash
    text_jaccard: float = 0.5
    rule: str = "image_and_text"  # or "image"; records without an image match by text alone
    source_priority: list[str] = field(default_factory=list)  # kept first; default: the recipe's source order
    lsh_tables: int = 48  # bit-sampling keys per pHash (more: higher recall, more rows joined)
    lsh_recall: float = 0.98  # chance that a pair at the threshold shares a key (sets the bits per key)
    decontaminate: bool = True  # when enabled: reject `benchmark_overlap` and write the contamination report
    benchmarks: list[BenchmarkEntry] = field(default_factory=default_benchmarks)
    benchmark_phash_max_distance: int = 8
    report_distances: list[int] = field(default_factory=lambda: [4, 8, 16])
    # Slices of volumes (BraTS, IXI, KiTS...): neighbouring slices, and the same level of two subjects, are
    # pHash-near by nature, so by default they match by exact pixels only ("hash" matches them by hashes too).
    slices: str = "exact_only"

    def validate(self) -> None:
        if self.slices not in ("exact_only", "hash"):
            raise RecipeError(f"near_duplicates.slices must be 'exact_only' or 'hash', not {self.slices!r}")
        if self.rule not in ("image_and_text", "image"):
            raise RecipeError(f"near_duplicates.rule must be 'image_and_text' or 'image', not {self.rule!r}")
        for name in ("phash_max_distance", "benchmark_phash_max_distance"):
            if not 0 <= getattr(self, name) <= 32:
                raise RecipeError(f"near_duplicates.{name} must be in 0..32, not {getattr(self, name)}")
        if not 0.0 < self.text_jaccard <= 1.0:
            raise RecipeError(f"near_duplicates.text_jaccard must be in (0, 1], not {self.text_jaccard}")
        if self.num_perm < 16 or self.shingle < 1 or self.lsh_tables < 1 or not 0.5 <= self.lsh_recall < 1.0:
            raise RecipeError("near_duplicates: num_perm >= 16, shingle >= 1, lsh_tables >= 1 and "
                              "0.5 <= lsh_recall < 1 are required")

    def hashing_digest(self) -> dict[str, Any]:
        """The settings that change the staged score columns (not the decisions made from them)."""
        from manifests.images import DECODER  # a passthrough JPEG's pHash comes from its reduced decode

        return {"num_perm": self.num_perm, "shingle": self.shingle, "decoder": DECODER}


def parse_near_duplicates(values: Any) -> NearDuplicateSettings:
    """The `near_duplicates:` section; `benchmarks` entries are names or mappings (name, splits, options)."""
    if values is None:
        return NearDuplicateSettings()
    if not isinstance(values, dict):
        raise RecipeError(f"near_duplicates must be a mapping, got {type(values).__name__}")
    values = dict(values)
    if "benchmarks" in values:
        entries = []
        for index, entry in enumerate(values["benchmarks"] or []):
            if isinstance(entry, str):
                entry = {"name": entry}
            entries.append(build_section(BenchmarkEntry, entry, f"near_duplicates.benchmarks[{index}]"))
        values["benchmarks"] = entries
    settings = build_section(NearDuplicateSettings, values, "near_duplicates")
    settings.validate()
    return settings


def section_values(cls, values: Any, where: str) -> dict | None:
    """Recipe section `where` checked against the fields of `cls`: a copy of its keys, None when absent."""
    if values is None:
        return None
    if not isinstance(values, dict):
        raise RecipeError(f"{where} must be a mapping, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    return dict(values)


def build_section(cls, values: Any, where: str):
    checked = section_values(cls, values, where)
    return cls() if checked is None else cls(**checked)


def parse_alignment(values: Any) -> AlignmentSettings:
    """The `alignment:` section; nested model sections and their `resources` are dataclasses too."""
    if values is None:
        return AlignmentSettings()
    if not isinstance(values, dict):
        raise RecipeError(f"alignment must be a mapping, got {type(values).__name__}")
    values = dict(values)
    nested = {"captioner": CaptionerSettings, "embedder": EmbedderSettings, "siglip": ImageTextSettings,
              "biomedclip": ImageTextSettings}
    defaults = AlignmentSettings()
    for key, cls in nested.items():
        if key not in values:
            continue
        section = dict(values[key] or {})
        if "resources" in section:  # a partial override keeps this model's own defaults for the rest
            given = build_section(ModelResources, section["resources"], f"alignment.{key}.resources")
            section["resources"] = dataclasses.replace(
                getattr(defaults, key).resources, **{k: getattr(given, k) for k in section["resources"]})
        values[key] = dataclasses.replace(getattr(defaults, key), **build_section(cls, section, f"alignment.{key}").__dict__
                                          | section)
    settings = build_section(AlignmentSettings, values, "alignment")
    settings.validate()
    return settings
