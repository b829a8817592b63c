"""The five interleaved-task builders by task name, explicit and greppable like `sources.SOURCES`."""

from __future__ import annotations

from pipeline.tasks.base import TaskBuilder
from pipeline.tasks.counterfactual import Counterfactual
from pipeline.tasks.cross_modal import CrossModal
from pipeline.tasks.segmentation import Segmentation
from pipeline.tasks.super_resolution import SuperResolution
from pipeline.tasks.virtual_staining import VirtualStaining

BUILDERS: dict[str, type[TaskBuilder]] = {cls.task: cls for cls in (
    CrossModal, SuperResolution, VirtualStaining, Counterfactual, Segmentation)}
