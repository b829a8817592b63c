"""Tiny, randomly initialised models in the real checkpoints' on-disk layouts (DEMO WEIGHTS).

For tests and the sample build only: they exercise exactly the loading and scoring paths of the real
models (transformers `save_pretrained` folders for MedGemma/Gemma3, E5/BERT and MedSigLIP/SigLIP; an
open_clip hub folder for BiomedCLIP) with tokenizers trained here on a few sentences. Their scores are
meaningless. Each folder carries a `DEMO_WEIGHTS` marker, and builds that use them say so.
Folder names are the real ids' last parts, so `--models-dir` points a recipe that names real
models at them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

CORPUS = [
    "A frontal chest radiograph shows the lungs, the heart and the mediastinum.",
    "Axial computed tomography of the abdomen with the liver, spleen and both kidneys.",
    "Sagittal MRI of the brain: cerebral cortex, ventricles and cerebellum are visible.",
    "Histopathology slide stained with hematoxylin and eosin shows glandular tissue.",
    "Fundus photograph of the retina with the optic disc and macula.",
    "No distinct pathological or incidental findings are visible.",
    "What modality is used? Which organ is abnormal? Is there a nodule in the left lung?",
    "Ultrasound image of the thyroid gland; dermoscopy of a pigmented skin lesion; endoscopy of the colon.",
]
GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                  "<end_of_image>", "<image_soft_token>"]
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<start_of_image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
NAMES = {"medgemma": "medgemma-27b-it", "e5": "e5-large-v2", "medsiglip": "medsiglip-448",
         "biomedclip": "BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"}


def _bpe(specials: list[str], vocab_size: int = 320):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>" if "<unk>" in specials else None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def _wordpiece(vocab_size: int = 200):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                              show_progress=False))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def _bert_tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=_wordpiece(), unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _mark(path: Path, what: str) -> Path:
    (path / "DEMO_WEIGHTS").write_text(f"tiny random {what} for tests and demos; scores are meaningless\n")
    return path


def build_medgemma(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor,
                              PreTrainedTokenizerFast)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_bpe(GEMMA_SPECIALS), bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>", extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                                 "image_token": "<image_soft_token>"})
    processor = Gemma3Processor(image_processor=Gemma3ImageProcessor(size={"height": 32, "width": 32}),
                                tokenizer=tokenizer, chat_template=GEMMA_TEMPLATE, image_seq_length=4)
    ids = tokenizer.convert_tokens_to_ids
    config = Gemma3Config(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
                     "max_position_embeddings": 512, "sliding_window": 64},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        mm_tokens_per_image=4, boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"), bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return _mark(path, "Gemma3 (MedGemma layout)")


def build_e5(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = _bert_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    BertModel(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return _mark(path, "BERT (E5 layout)")


def build_medsiglip(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    # Like SigLIP's own tokenizer: input ids only (no attention mask), text padded to max_length.
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_bpe(["<pad>", "</s>", "<unk>"]), pad_token="<pad>",
                                        eos_token="</s>", unk_token="<unk>", model_input_names=["input_ids"])
    processor = SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}),
                                tokenizer=tokenizer)
    config = SiglipConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16,
                     "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "bos_token_id": tokenizer.eos_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8})
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    SiglipModel(config).eval().save_pretrained(path)
    processor.save_pretrained(path)
    return _mark(path, "SigLIP (MedSigLIP layout)")


def build_biomedclip(path: Path, seed: int = 0) -> Path:
    import open_clip
    import torch

    tokenizer = _bert_tokenizer()
    model_cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        # open_clip's own text tower with BiomedCLIP's CLS pooling and a local WordPiece tokenizer
        "text_cfg": {"context_length": 32, "vocab_size": len(tokenizer), "width": 32, "heads": 2, "layers": 1,
                     "hf_tokenizer_name": "local", "pool_type": "first", "no_causal_mask": True},
    }
    preprocess_cfg = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}
    path.mkdir(parents=True, exist_ok=True)
    (path / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg},
                                                           indent=2))
    torch.manual_seed(seed)
    logging.disable(logging.WARNING)  # open_clip warns that the folder has no weights yet: they are written next
    try:
        model = open_clip.create_model(f"local-dir:{path.resolve()}", load_weights=False)
    finally:
        logging.disable(logging.NOTSET)
    torch.save(model.state_dict(), path / "open_clip_pytorch_model.bin")
    tokenizer.save_pretrained(path)
    return _mark(path, "CLIP (BiomedCLIP open_clip hub layout)")


def write_demo_models(out: Path, only: list[str] | None = None) -> dict[str, Path]:
    """All four (or `only` some) demo models under `out`, by the real ids' last parts."""
    builders = {"medgemma": build_medgemma, "e5": build_e5, "medsiglip": build_medsiglip,
                "biomedclip": build_biomedclip}
    out = Path(out)
    written = {}
    for key, builder in builders.items():
        if only and key not in only:
            continue
        target = out / NAMES[key]
        written[key] = target if (target / "DEMO_WEIGHTS").is_file() else builder(target)
    return written
