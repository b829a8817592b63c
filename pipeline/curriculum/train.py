"""Reference training loop over the curriculum loader: a tiny unified model a CPU can train.

    unimed train --stage 1 --build build/stage1 --out runs/stage1 --steps 300
    torchrun --nproc-per-node 2 -m pipeline.cli train --stage 1 --build build/stage1 --steps 300   (DDP, gloo)

The model (`TinyUnified`, pluggable through `model_factory`) has the parts UniMedVL trains, shrunk:
an image encoder whose patch tokens prefix a causal text decoder (next-token loss on gpt turns: I2T,
text-only, the text of interleaved samples) and a text-conditioned image generator trained by
rectified flow on small images (T2I targets and the output images of interleaved samples). Loss =
0.25 CE + 1.0 MSE, the paper's weighting. Per-family losses go to OUT/metrics.jsonl; checkpoints to
OUT/checkpoints/step-NNNNNNN.pt hold model, optimiser and loader state, so `--resume` continues with
the very batches an uninterrupted run would have seen. Flow noise comes from a generator seeded by
(seed, step, rank): no global random state.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.curriculum.schedule import FAMILIES, CURRICULUM_STAGES
from pipeline.curriculum.decode import ByteTokenizer, ImageTransform, SampleDecoder
from pipeline.curriculum.loader import make_loader

log = logging.getLogger(__name__)
CE_WEIGHT, MSE_WEIGHT = 0.25, 1.0  # UniMedVL train_example.sh: ce_weight 0.25, mse_weight 1.0


# ---------------------------------------------------------------- model


class ImageEncoder(nn.Module):
    """[N, 3, S, S] -> [N, (S/8)^2, dim] patch tokens."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.GELU(), nn.Conv2d(32, 64, 3, 2, 1), nn.GELU(),
                                 nn.Conv2d(64, dim, 3, 2, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten(2).transpose(1, 2)


class FlowGenerator(nn.Module):
    """Predicts the rectified-flow velocity of a noisy image, conditioned on a vector and the time."""

    def __init__(self, dim: int, channels: int = 32):
        super().__init__()
        self.inp = nn.Conv2d(3, channels, 3, 1, 1)
        self.film = nn.Linear(dim + 16, 2 * channels * 3)
        self.blocks = nn.ModuleList(nn.Conv2d(channels, channels, 3, 1, 1) for _ in range(3))
        self.out = nn.Conv2d(channels, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        freqs = torch.arange(8, dtype=x.dtype, device=x.device)
        t_emb = torch.cat([torch.sin(t[:, None] * 2 ** freqs), torch.cos(t[:, None] * 2 ** freqs)], dim=1)
        scales = self.film(torch.cat([cond, t_emb], dim=1)).chunk(6, dim=1)
        h = self.inp(x)
        for i, block in enumerate(self.blocks):
            h = h + block(F.gelu(h * (1 + scales[2 * i][..., None, None]) + scales[2 * i + 1][..., None, None]))
        return self.out(F.gelu(h))


class TinyUnified(nn.Module):
    def __init__(self, vocab_size: int = ByteTokenizer.vocab_size, dim: int = 128, layers: int = 2, heads: int = 4,
                 max_positions: int = 1024):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.position = nn.Embedding(max_positions, dim)
        self.encoder = ImageEncoder(dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)
        self.generator = FlowGenerator(dim)

    def forward(self, batch: dict[str, Any], noise: torch.Generator) -> dict[str, torch.Tensor]:
        """Per-sample losses: `ce` [b] and `mse` [b], NaN where a sample has no such target."""
        ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
        b, length = ids.shape
        prefixes = [[] for _ in range(b)]
        if batch["input_images"].shape[0]:
            tokens = self.encoder(batch["input_images"])
            for j, owner in enumerate(batch["input_owner"].tolist()):
                prefixes[owner].append(tokens[j])
        prefix_len = max((sum(t.shape[0] for t in p) for p in prefixes), default=0)
        dim = self.embed.embedding_dim
        prefix = ids.new_zeros((b, prefix_len, dim), dtype=torch.float32)
        prefix_mask = torch.zeros((b, prefix_len), dtype=torch.bool)
        for i, parts in enumerate(prefixes):
            if parts:
                stacked = torch.cat(parts)
                prefix[i, prefix_len - stacked.shape[0]:] = stacked  # right-aligned, next to the text
                prefix_mask[i, prefix_len - stacked.shape[0]:] = True
        x = torch.cat([prefix, self.embed(ids)], dim=1)
        total = x.shape[1]
        x = x + self.position(torch.arange(total).clamp(max=self.position.num_embeddings - 1))[None]
        valid = torch.cat([prefix_mask, mask], dim=1)
        causal = torch.ones((total, total), dtype=torch.bool).triu(1)  # True = may not attend
        h = self.norm(self.decoder(x, mask=causal, src_key_padding_mask=~valid))

        logits = self.head(h[:, prefix_len:-1])
        targets = labels[:, 1:]
        token_ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100,
                                   reduction="none").view(b, length - 1)
        counted = (targets != -100).sum(1)
        ce = torch.where(counted > 0, token_ce.sum(1) / counted.clamp(min=1), torch.full_like(counted, math.nan,
                                                                                                  dtype=torch.float32))
        mse = torch.full((b,), math.nan)
        if batch["output_images"].shape[0]:
            pooled = (h * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
            owners = batch["output_owner"]
            x1 = batch["output_images"]
            x0 = torch.randn(x1.shape, generator=noise)
            t = torch.rand(x1.shape[0], generator=noise)
            xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
            per_image = ((self.generator(xt, t, pooled[owners]) - (x1 - x0)) ** 2).mean(dim=(1, 2, 3))
            sums = torch.zeros(b).index_add(0, owners, per_image)
            counts = torch.zeros(b).index_add(0, owners, torch.ones_like(per_image))
            mse = torch.where(counts > 0, sums / counts.clamp(min=1), mse)
        return {"ce": ce, "mse": mse}


# ---------------------------------------------------------------- loop


@dataclass
class TrainConfig:
    builds: list[str]
    out: str
    stages: tuple[int, ...] = (1,)
    steps: int = 300  # total optimiser steps of the run; stage lengths are the paper's, scaled to fit
    batch_size: int = 8  # per rank
    lr: float = 1e-3  # the tiny model's; the paper's 7B used 5e-5 / 2.5e-5 / 1e-5
    seed: int = 0
    mode: str = "random"
    num_workers: int = 0
    image_size: int = 32
    max_tokens: int = 256
    dim: int = 128
    layers: int = 2
    log_every: int = 10
    checkpoint_every: int = 100
    resume: bool = False
    stop_after: int | None = None  # stop (with a checkpoint) after this step, as if killed there


def _family_sums(families: torch.Tensor, ce: torch.Tensor, mse: torch.Tensor) -> torch.Tensor:
    """[4, 4]: per family (ce sum, ce count, mse sum, mse count), NaNs left out."""
    sums = torch.zeros(len(FAMILIES), 4, dtype=torch.float64)
    for values, column in ((ce, 0), (mse, 2)):
        ok = ~torch.isnan(values)
        sums[:, column].index_add_(0, families[ok], values[ok].double().detach())
        sums[:, column + 1].index_add_(0, families[ok], torch.ones(int(ok.sum()), dtype=torch.float64))
    return sums


def _family_report(sums: torch.Tensor) -> dict[str, dict[str, float]]:
    report = {}
    for i, family in enumerate(FAMILIES):
        ce_n, mse_n = float(sums[i, 1]), float(sums[i, 3])
        if ce_n == 0 and mse_n == 0:
            continue
        ce = float(sums[i, 0]) / ce_n if ce_n else None
        mse = float(sums[i, 2]) / mse_n if mse_n else None
        report[family] = {"ce": ce, "mse": mse, "samples": max(ce_n, mse_n),
                          "loss": CE_WEIGHT * (ce or 0.0) + MSE_WEIGHT * (mse or 0.0)}
    return report


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / "checkpoints").glob("step-*.pt"))
    return found[-1] if found else None


def train(config: TrainConfig, model_factory: Callable[[TrainConfig], nn.Module] | None = None) -> list[dict]:
    """Train; returns the logged rows (rank 0; other ranks return the same averaged rows)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    out = Path(config.out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)

    with torch.random.fork_rng(devices=[]):  # seeded init, same on every rank, caller's RNG left alone
        torch.manual_seed(config.seed)
        model = (model_factory or (lambda c: TinyUnified(dim=c.dim, layers=c.layers)))(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    decoder = SampleDecoder(image_transform=ImageTransform(config.image_size), max_tokens=config.max_tokens)
    scale = config.steps / sum(CURRICULUM_STAGES[n].steps for n in config.stages)
    loader = make_loader(config.builds, config.stages, scale, config.batch_size, config.seed, config.mode,
                         rank=rank, world_size=world, num_workers=config.num_workers, decoder=decoder)
    step = 0
    checkpoint = latest_checkpoint(out) if config.resume else None
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        step = state["step"]
        log.info("resumed from %s at step %d", checkpoint, step)
    ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model

    history: list[dict] = []
    window = torch.zeros(len(FAMILIES), 4, dtype=torch.float64)
    metrics = open(out / "metrics.jsonl", "a", encoding="utf-8") if rank == 0 else None
    try:
        for batch in loader:
            assert batch["step"] == step, (batch["step"], step)
            noise = torch.Generator().manual_seed(config.seed * 1_000_003 + step * 1009 + rank)
            losses = ddp(batch, noise)
            ce, mse = losses["ce"], losses["mse"]
            loss = CE_WEIGHT * torch.nan_to_num(ce).sum() / batch["family"].numel() \
                + MSE_WEIGHT * torch.nan_to_num(mse).sum() / batch["family"].numel()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            window += _family_sums(batch["family"], ce, mse)
            if step % config.log_every == 0 or step == loader.dataset.schedule.total_steps:
                if dist.is_initialized():
                    dist.all_reduce(window)
                row = {"step": step, "stage": loader.state_dict()["stage"], "families": _family_report(window)}
                history.append(row)
                if metrics is not None:
                    metrics.write(json.dumps(row) + "\n")
                    metrics.flush()
                window.zero_()
            stopping = config.stop_after is not None and step >= config.stop_after
            if step % config.checkpoint_every == 0 or stopping:
                _save(out, step, model, optimiser, loader.state_dict(), config, rank)
            if stopping:
                break
        else:
            _save(out, step, model, optimiser, loader.state_dict(), config, rank)
    finally:
        if metrics is not None:
            metrics.close()
    return history


def _save(out: Path, step: int, model: nn.Module, optimiser, loader_state: dict, config: TrainConfig,
          rank: int) -> None:
    if rank != 0:  # the loader state is the global plan's, identical on every rank
        return
    path = out / "checkpoints" / f"step-{step:07d}.pt"
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimiser.state_dict(), "loader": loader_state,
                "step": step, "config": asdict(config)}, tmp)
    os.replace(tmp, path)


def loss_trend(history: Sequence[dict], window: int = 3) -> dict[str, tuple[float, float]]:
    """Per family: mean loss of the first and of the last `window` logged rows that have it."""
    trend = {}
    for family in FAMILIES:
        values = [row["families"][family]["loss"] for row in history if family in row["families"]]
        if len(values) >= 2:
            k = max(1, min(window, len(values) // 2))
            trend[family] = (sum(values[:k]) / k, sum(values[-k:]) / k)
    return trend


__all__ = ["TinyUnified", "TrainConfig", "train", "loss_trend", "latest_checkpoint"]
