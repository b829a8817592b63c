"""Stage `task_builders`: after the coarse decision, (re)builds every kept interleaved record of a task it
handles, and tags every record with its subject for the leakage rule applied at finalisation."""

from __future__ import annotations

from typing import ClassVar

from manifests.records import Record
from pipeline.stages.base import Stage
from pipeline.tasks.leakage import subject_of
from pipeline.tasks.registry import BUILDERS
from pipeline.tasks.settings import TaskSettings


class TaskBuildersStage(Stage):
    name: ClassVar[str] = "task_builders"

    def __init__(self, settings: TaskSettings):
        self.settings = settings
        # Libraries load here, on the driver: a missing template file fails the build before any work.
        self.builders = {task: BUILDERS[task](settings) for task in settings.builders}

    def process(self, record: Record) -> None:
        subject = subject_of(record)
        if subject is not None:
            record.meta["subject_id"] = subject
        builder = self.builders.get(record.main_task_type)
        if builder is None or record.status != "kept":
            return
        problem = builder.build(record)
        if problem is not None:
            record.status, (record.reason, record.detail) = "rejected", problem

    def redo_pixels(self, record: Record) -> None:
        self.process(record)  # a kept record's interleaved sample is built again: the same images
