"""Shared fixtures: the sample tree, one local Ray for the session, and a stage-1 build of the sample."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from pipeline.config import Recipe, SourceEntry, load_recipe  # noqa: E402
from sources import SOURCES  # noqa: E402
from sources.samples import write_sample_tree  # noqa: E402
from tests.support import register_test_sources  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    write_sample_tree(root)
    return root


@pytest.fixture(scope="session")
def ray_session():
    import ray

    register_test_sources()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"worker_process_setup_hook": "tests.support.register_test_sources",
                              "env_vars": {"PYTHONPATH": str(REPO)}})
    yield ray
    ray.shutdown()


def sample_recipe(**changes) -> Recipe:
    """The bundled stage-1 recipe restricted to the registered sources, with small shards."""
    recipe = load_recipe("stage1")
    recipe.sources = [entry for entry in recipe.sources if entry.name in SOURCES]
    recipe.shards.max_samples = changes.pop("max_samples", 4)
    for key, value in changes.items():
        setattr(recipe, key, value)
    return recipe


@pytest.fixture(scope="session")
def stage1_build(ray_session, sample_root, tmp_path_factory):
    from pipeline.engine.build import build

    out = tmp_path_factory.mktemp("build")
    report = build(sample_recipe(), out, sample_root, progress=False)
    return report


__all__ = ["SourceEntry", "sample_recipe"]
