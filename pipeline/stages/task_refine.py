"""Stage `task_refine`: MedGemma rewrites the rendered texts of built task records (pipeline/tasks/refine.py).

A local model runs as a pool of actors that load it once; an OpenAI-compatible server needs only
plain tasks, each holding an HTTP client.
"""

from __future__ import annotations

from typing import ClassVar

from manifests.records import Record
from pipeline.stages.base import Stage
from pipeline.tasks.refine import load_prompt, load_refiner, refine_records, wants_refine
from pipeline.tasks.settings import RefineSettings


class TaskRefineStage(Stage):
    name: ClassVar[str] = "task_refine"

    def __init__(self, settings: RefineSettings):
        self.settings = settings
        self.num_gpus = settings.num_gpus if settings.backend == "transformers" else 0.0
        self.num_cpus, self.batch_size = settings.num_cpus, settings.batch_size
        load_prompt(settings.prompt)  # on the driver: a missing prompt fails the build before any work
        self.refiner = None

    def pool_size(self) -> int | None:
        return None if self.settings.backend == "openai" else max(1, self.settings.actors)

    def setup(self) -> None:
        self.refiner = load_refiner(self.settings)

    def process(self, record: Record) -> None:
        self.process_batch([record])

    def process_batch(self, records: list[Record]) -> None:
        todo = [r for r in records if wants_refine(r)]
        if not todo:
            return
        if self.refiner is None:
            self.setup()  # also as a plain task (no actor): loaded once per stage copy
        refine_records(self.refiner, todo, self.settings)
