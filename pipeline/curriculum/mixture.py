"""The mixture plan: which task-family stream every slot of every global batch draws from, and its state.

Deterministic from (seed, step) alone, so every rank and worker computes the same plan and a resumed
run continues exactly where it stopped (see `pipeline/curriculum/loader.py` for the whole argument).
"""


from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.curriculum.schedule import FAMILIES, Schedule, normalised

log = logging.getLogger(__name__)


STATE_VERSION = 1


@dataclass
class MixtureConfig:
    batch_size: int = 8  # per rank
    seed: int = 0
    mode: str = "random"  # "random" (weighted i.i.d. draws) or "stratified" (exact share per global batch)
    rank: int = 0
    world_size: int = 1
    # family -> {source: weight}: one stream per (family, source) at these weights inside the family;
    # a family not named here is one stream over all its sources (each sample equally likely).
    source_weights: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("random", "stratified"):
            raise ValueError(f"mode must be 'random' or 'stratified', not {self.mode!r}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside world_size {self.world_size}")


def stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def apportion_exact(total: int, probs: np.ndarray, deficit: np.ndarray) -> np.ndarray:
    """Largest-remainder counts (each floor or ceil of total*p); spare seats go to the largest deficit."""
    quota = total * probs
    counts = np.floor(quota + 1e-9).astype(np.int64)
    spare = total - int(counts.sum())
    if spare > 0:
        eligible = np.flatnonzero(quota - counts > 1e-9)
        priority = deficit[eligible] + (quota - counts)[eligible]
        order = eligible[np.argsort(-priority, kind="stable")]
        counts[order[:spare]] += 1
    return counts


class MixturePlan:
    """The deterministic global plan: for each step, which stream every slot of the global batch draws."""

    def __init__(self, stream_names: list[str], stream_sizes: list[int], stream_family: list[str],
                 stream_weight: list[float], schedule: Schedule, config: MixtureConfig):
        self.names, self.sizes = stream_names, stream_sizes
        self.schedule, self.config = schedule, config
        self.global_batch = config.batch_size * config.world_size
        self.families = [f for f in FAMILIES if f in stream_family]
        self._members = {f: [i for i, sf in enumerate(stream_family) if sf == f] for f in self.families}
        self._inner = {f: np.array([stream_weight[i] for i in self._members[f]], dtype=np.float64)
                       for f in self.families}
        self._probs = []
        for stage in schedule.stages:
            weights = {f: float(stage.weights.get(f, 0)) for f in self.families}
            missing = [f for f, w in stage.weights.items() if w > 0 and f not in self.families]
            if missing:
                log.warning("stage %d wants %s but the builds have no such samples; its weights are "
                            "renormalised over %s", stage.number, missing, self.families)
            probs = normalised(weights)
            self._probs.append(np.array([probs[f] for f in self.families], dtype=np.float64))
        self.step = 0
        self.cursors = [0] * len(stream_names)
        self.deficit: dict[str, list[float]] = {}  # stratified mode: per level, carried over steps
        self._deficit_stage = -1

    # state ---------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        return {"streams": dict(zip(self.names, self.sizes)), "seed": self.config.seed, "mode": self.config.mode,
                "global_batch": self.global_batch, "stages": [s.number for s in self.schedule.stages],
                "stage_steps": self.schedule.stage_steps()}

    def state_dict(self) -> dict[str, Any]:
        stage = self.schedule.stage_index(min(self.step, self.schedule.total_steps - 1))
        return {"version": STATE_VERSION, "step": self.step, "stage": self.schedule.stages[stage].number,
                "cursors": dict(zip(self.names, self.cursors)),
                "epochs": {n: c // s for n, c, s in zip(self.names, self.cursors, self.sizes)},
                "deficit": {k: list(v) for k, v in self.deficit.items()}, "deficit_stage": self._deficit_stage,
                "rng": {"kind": "numpy-pcg64 keyed by (seed, step)", "seed": self.config.seed, "step": self.step},
                "fingerprint": self.fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"loader state version {state.get('version')} != {STATE_VERSION}")
        if state["fingerprint"] != self.fingerprint():
            raise ValueError("loader state was saved for a different mixture (streams, seed, mode, batch, "
                             f"schedule): saved {state['fingerprint']}, now {self.fingerprint()}")
        self.step = int(state["step"])
        self.cursors = [int(state["cursors"][name]) for name in self.names]
        self.deficit = {k: list(v) for k, v in state["deficit"].items()}
        self._deficit_stage = int(state["deficit_stage"])

    # drawing -------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.step >= self.schedule.total_steps

    def next_batch(self) -> list[tuple[int, int]]:
        """(stream, draw number) for each slot of the global batch at `step`; advances the plan."""
        stage = self.schedule.stage_index(self.step)
        rng = np.random.default_rng([self.config.seed, self.step])
        size = self.global_batch
        if self.config.mode == "random":
            cum = np.cumsum(self._probs[stage]) / np.sum(self._probs[stage])
            family_of = np.minimum(np.searchsorted(cum, rng.random(size), side="right"), len(cum) - 1)
            streams = [self._pick_random(self.families[f], rng) for f in family_of]
        else:
            if self._deficit_stage != stage:  # a new stage's shares start from a clean slate
                self.deficit, self._deficit_stage = {}, stage
            counts = self._apportion("", size, self._probs[stage])
            streams = []
            for f, count in zip(self.families, counts):
                inner = self._apportion(f, int(count), self._inner[f] / self._inner[f].sum())
                for stream, n in zip(self._members[f], inner):
                    streams.extend([stream] * int(n))
            streams = [streams[i] for i in rng.permutation(size)]
        slots = []
        for stream in streams:
            slots.append((stream, self.cursors[stream]))
            self.cursors[stream] += 1
        self.step += 1
        return slots

    def _pick_random(self, family: str, rng: np.random.Generator) -> int:
        members = self._members[family]
        if len(members) == 1:
            return members[0]
        weights = self._inner[family]
        cum = np.cumsum(weights) / weights.sum()
        return members[min(int(np.searchsorted(cum, rng.random(), side="right")), len(members) - 1)]

    def _apportion(self, level: str, total: int, probs: np.ndarray) -> np.ndarray:
        deficit = np.array(self.deficit.get(level, [0.0] * len(probs)), dtype=np.float64)
        counts = apportion_exact(total, probs, deficit)
        self.deficit[level] = (deficit + total * probs - counts).tolist()
        return counts
