"""Ray set-up and the one way a stage is mapped: plain tasks, or a pool of actors, by its declared resources.

`map_stages` runs a stage as Ray Data tasks unless its `pool_size()` asks for actors (a stage that
holds a model loads it once per actor); consecutive task stages run in one call per batch, so records
are unpickled and pickled once for all of them, not once per stage. Before anything streams, every actor
of every GPU stage must fit at once (they stream together), next to one CPU for the tasks that read;
otherwise Ray would wait forever, so the build fails at once with `ClusterTooSmall`. Without GPUs in the
cluster, a stage that asks for one runs on CPU, its actors sharing half of the CPUs (the other half reads
and decodes).
"""

from __future__ import annotations

import logging
import os
import warnings

from pipeline.stages.base import ActorStage, Stage, run_task_stages

log = logging.getLogger(__name__)


class ClusterTooSmall(RuntimeError):
    """The stages ask for more than the Ray cluster has: Ray would wait for it forever."""


def ensure_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry calls from an offline machine
    ray.init(address=address or os.environ.get("RAY_ADDRESS"), include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=True)


def quiet_retry_warning() -> None:
    # Ray Data retries a task whose worker died forever by default (-1): a unit that kills its worker
    # every time would hang the build. `max_retries` bounds that; it is still passed as a remote arg,
    # which Ray 2.60 flags as deprecated without offering a named replacement.
    from ray.util.annotations import RayDeprecationWarning

    warnings.filterwarnings("ignore", message=".*ray_remote_args.*", category=RayDeprecationWarning)


def check_fits(stages: list[Stage], cluster: dict[str, float]) -> None:
    """Every actor of every GPU stage must fit at once, next to one CPU for the readers."""
    gpus, cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 1.0)
    if not gpus:
        return  # GPU stages then run on CPU, their CPUs shared out by `map_stages`
    placed = [s for s in stages if s.num_gpus and s.pool_size()]
    want_gpus = {s.name: s.num_gpus * s.pool_size() for s in placed}
    want_cpus = sum(s.num_cpus * s.pool_size() for s in placed)
    if sum(want_gpus.values()) > gpus + 1e-9:
        detail = ", ".join(f"{name} {value:g}" for name, value in want_gpus.items())
        raise ClusterTooSmall(
            f"the model actors need {sum(want_gpus.values()):g} GPUs at once ({detail}; num_gpus x actors) but "
            f"the Ray cluster has {gpus:g}: lower `resources.num_gpus` or `actors` in the recipe's alignment "
            f"section, or serve the captioner elsewhere (captioner.backend: openai)")
    if want_cpus + 1.0 > cpus + 1e-9:
        raise ClusterTooSmall(
            f"the GPU actors of the model stages hold {want_cpus:g} CPUs (num_cpus x actors) and the readers "
            f"need 1 more, but the Ray cluster has {cpus:g}: lower `resources.num_cpus` of the model stages")


def placement(resources: dict[str, float] | None) -> dict:
    """`map_batches` arguments that pin a step's tasks to nodes offering these custom resources."""
    return {"resources": dict(resources)} if resources else {}


def _task_runs(stages: list[Stage]) -> list[list[Stage]]:
    """The stages in order, consecutive plain-task stages with the same CPUs and batch size grouped together;
    an actor stage alone."""
    runs: list[list[Stage]] = []
    for stage in stages:
        last = runs[-1][-1] if runs else None
        if (last is not None and stage.pool_size() is None and last.pool_size() is None
                and (stage.num_cpus, stage.batch_size) == (last.num_cpus, last.batch_size)):
            runs[-1].append(stage)
        else:
            runs.append([stage])
    return runs


def map_stages(ds, stages: list[Stage], retries: int, task_resources: dict[str, float] | None = None):
    """Each stage onto the dataset in order, as tasks or as an actor pool; fails early if the pools cannot fit.

    `task_resources` (the recipe's `execution.placement.score`) places the plain-task stages."""
    import ray
    import ray.data

    quiet_retry_warning()
    resources = ray.cluster_resources()
    check_fits(stages, resources)
    gpus = resources.get("GPU", 0.0)
    cpu_budget = resources.get("CPU", 1.0) / 2  # the other half reads and decodes
    pooled = sum(stage.pool_size() or 0 for stage in stages)
    for group in _task_runs(stages):
        for stage in group:
            stage.before_run()
        stage, actors = group[0], group[0].pool_size()
        if actors is None:  # consecutive plain-task stages: one call per batch (unpickled and pickled once)
            ds = ds.map_batches(run_task_stages, fn_kwargs={"stages": group}, batch_size=stage.batch_size,
                                num_cpus=stage.num_cpus, max_retries=retries, **placement(task_resources))
            continue
        num_gpus, num_cpus = stage.num_gpus, stage.num_cpus
        if num_gpus and not gpus:
            log.warning("%s asks for %s GPU per actor but the Ray cluster has none: running on CPU",
                        stage.name, num_gpus)
            num_gpus = 0.0
        if not num_gpus:  # CPU actors must all fit next to the readers, or the pipeline stalls
            num_cpus = min(num_cpus, max(0.1, cpu_budget / max(1, pooled)))
        ds = ds.map_batches(ActorStage, fn_constructor_kwargs={"stage": stage}, batch_size=stage.batch_size,
                            compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=num_gpus, num_cpus=num_cpus)
    return ds
