"""The stage contract: a per-record step over pickled rows, with its resources declared.

A stage declares its name, resources (CPUs, GPUs, actors) and batch size as plain attributes; a stage
that holds a model loads it once per worker in `setup()`, never per batch. The engine
(`pipeline/engine/ray_setup.map_stage`) runs a stage as plain Ray tasks, or, when `pool_size()` says so,
as a pool of actors that each call `setup()` once.
"""

from __future__ import annotations

import pickle
from typing import ClassVar

import numpy as np

from manifests import spans
from manifests.records import Record


class Stage:
    """A per-record stage over pickled rows; subclasses implement `process`."""

    name: ClassVar[str] = "stage"
    num_cpus: ClassVar[float] = 1.0
    num_gpus: ClassVar[float] = 0.0
    batch_size: ClassVar[int | None] = None  # None: each block as it comes (blocks are byte-bounded)

    def setup(self) -> None:
        """Load what the stage holds (a model), once per worker."""

    def pool_size(self) -> int | None:
        """None: plain Ray tasks (no per-worker state); n: a pool of n actors, each calling `setup()` once."""
        return None

    def before_run(self) -> None:
        """Driver-side work before any batch flows (e.g. folding a cache); runs once per build."""

    def resources(self) -> dict[str, float | int | None]:
        """What the stage asks Ray for, as `unimed build --plan` prints it."""
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "actors": self.pool_size(),
                "batch_size": self.batch_size}

    def process(self, record: Record) -> None:
        raise NotImplementedError

    def redo_pixels(self, record: Record) -> None:
        """Redo what this stage does to the images of a record known to be kept; the default: nothing.

        Shards are written after the global rules decide, from the sources read again
        (pipeline/engine/reread.py): a stage that changes a kept record's images redoes it here, with
        no model and no score (the staged row already holds the decision and the texts).
        """

    def process_batch(self, records: list[Record]) -> None:
        """A model stage overrides this to run its model once per batch; the default is per record."""
        for record in records:
            self.process(record)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_stages(batch, [self])


class ActorStage:
    """Ray Data callable class around a stage: `setup()` (model loading) runs once per actor."""

    def __init__(self, stage: Stage):
        self.stage = stage
        stage.setup()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.stage(batch)


def run_stages(batch: dict[str, np.ndarray], stages: list[Stage]) -> dict[str, np.ndarray]:
    """Stages one after the other over a batch: its records unpickled once, pickled once after the last."""
    with spans.task():  # this batch's spans are written when it ends (manifests/spans.py)
        blobs = batch["blob"].copy()
        indices = [index for index, kind in enumerate(batch["kind"]) if kind == "record"]
        with spans.span("serialise"):
            records: list[Record] = [pickle.loads(blobs[index]) for index in indices]
        for stage in stages:
            with spans.span(f"stage.{stage.name}", len(records)):
                stage.process_batch(records)
        with spans.span("serialise"):
            for index, record in zip(indices, records):
                blobs[index] = pickle.dumps(record, protocol=5)
        return {**batch, "blob": blobs}


def run_task_stages(batch: dict[str, np.ndarray], stages: list[Stage]) -> dict[str, np.ndarray]:
    """Ray Data UDF for consecutive stages that run as plain tasks (no per-actor state): one call for all of
    them, so a batch is converted and pickled once, not once per stage."""
    return run_stages(batch, stages)


class ModelStage(Stage):
    """A stage around one model: resources from the recipe's alignment section `section`, the model
    loaded once per actor (`setup()`), and only the records `wants` accepts passed to `score`."""

    section: ClassVar[str]

    def __init__(self, settings):
        self.settings = settings
        resources = getattr(settings, self.section).resources
        self.num_gpus, self.num_cpus, self.batch_size = resources.num_gpus, resources.num_cpus, resources.batch_size
        self.actors = max(1, resources.actors)
        self.model = None

    def pool_size(self) -> int | None:
        return self.actors

    def load(self):
        raise NotImplementedError

    def setup(self) -> None:
        self.model = self.load()

    def wants(self, record: Record) -> bool:
        raise NotImplementedError

    def score(self, records: list[Record]) -> None:
        raise NotImplementedError

    def process_batch(self, records: list[Record]) -> None:
        todo = [record for record in records if self.wants(record)]
        if not todo:
            return
        if self.model is None:
            self.setup()
        self.score(todo)


class CagStage(Stage):
    """One CAG step (filters/cag/steps.py) as a pool of actors that load the model once (transformers), or
    plain tasks holding an HTTP client (openai); resources from the recipe's `cag.resources`."""

    step: ClassVar[str]

    def __init__(self, settings, cache_dir: str | None):
        from filters.alignment.captioner import load_prompt

        self.settings, self.cache_dir = settings, cache_dir
        resources = settings.resources
        self.num_gpus = resources.num_gpus if settings.backend == "transformers" else 0.0
        self.num_cpus, self.batch_size = resources.num_cpus, resources.batch_size
        self.actors = max(1, resources.actors)
        load_prompt(settings.prompts[self.step])  # on the driver: a missing prompt fails before any work
        self.chat = None

    def pool_size(self) -> int | None:
        return None if self.settings.backend == "openai" else self.actors

    def setup(self) -> None:
        from filters.cag.client import load_chat

        self.chat = load_chat(self.settings)

    def process(self, record: Record) -> None:
        self.process_batch([record])

    def process_batch(self, records: list[Record]) -> None:
        from filters.cag.steps import ReplyCache, run_step, wants

        if not any(wants(record, self.step) for record in records):
            return
        if self.chat is None:
            self.setup()
        run_step(self.chat, self.step, records, self.settings, ReplyCache(self.cache_dir))
