"""What every task builder shares: template rendering, the slice policy, and the construction record.

A builder (re)builds one main task type from an adapter's paired record: it may change the images
(super-resolution makes its input), then renders the instruction and response from its versioned
library with an RNG seeded by the recipe seed and the record id, and writes everything needed to
rebuild the sample from its manifest row into `meta["task_build"]`:

    {"builder", "template_version", "template_id": [instruction id, response id],
     "instruction", "response" (the rendered template, kept when a refiner rewrites the message),
     "fields" (the slot values), "params" (slice, window, pair, degradation seed and kernel, ...)}
"""

from __future__ import annotations

from typing import Any, ClassVar

from manifests.records import IMAGE_TOKEN, Record
from pipeline.tasks.settings import TaskSettings
from pipeline.tasks.templates import Library, load_library, slots, task_rng

Problem = tuple[str, str]  # (reason, detail): the record becomes a rejection


class TaskBuilder:
    task: ClassVar[str]
    #: Volume tasks obey the recipe's slice policy (range, stride).
    slice_policy: ClassVar[bool] = False

    def __init__(self, settings: TaskSettings):
        self.settings = settings
        self.library: Library = load_library(self.task, settings.version(self.task))

    def construct(self, record: Record) -> dict[str, Any] | Problem:
        """Check or change the images; return the construction parameters, or a problem."""
        return {}

    def fields(self, record: Record) -> dict[str, str] | Problem:
        """The template slot values of this record."""
        return {}

    def build(self, record: Record) -> Problem | None:
        if not record.input_images or not record.output_images:
            return "task_images_missing", f"{self.task} needs an input and an output image"
        if self.slice_policy:
            problem = self._slice_problem(record)
            if problem:
                return problem
        params = self.construct(record)
        if isinstance(params, tuple):
            return params
        fields = self.fields(record)
        if isinstance(fields, tuple):
            return fields
        instruction_id, instruction, response_id, response = self.library.choose(
            task_rng(self.settings.seed, record.id))
        missing = sorted((slots(instruction) | slots(response)) - set(fields))
        if missing:
            return "template_field_missing", f"{instruction_id}/{response_id} need {missing}"
        instruction, response = instruction.format(**fields), response.format(**fields)
        record.message = [{"from": "human", "value": f"{IMAGE_TOKEN}\n{instruction}"},
                          {"from": "gpt", "value": response}]
        record.meta["task_build"] = {
            "builder": self.task,
            "template_version": self.library.version,
            "template_id": [instruction_id, response_id],
            "seed": self.settings.seed,
            "instruction": instruction,
            "response": response,
            "fields": fields,
            "params": params,
        }
        return None

    def _slice_problem(self, record: Record) -> Problem | None:
        index = record.output_images[0].slice_index
        if index is None:
            return None
        lo_hi, stride = self.settings.slice_range, max(1, self.settings.slice_stride)
        if lo_hi is not None and not lo_hi[0] <= index <= lo_hi[1]:
            return "slice_policy", f"slice {index} outside tasks.slice_range {lo_hi}"
        if index % stride:
            return "slice_policy", f"slice {index} not on tasks.slice_stride {stride}"
        return None
