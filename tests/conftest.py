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
        # "local": always this test run's own Ray, never a cluster another process left running here
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
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


@pytest.fixture(scope="session")
def stage3_build(ray_session, tmp_path_factory):
    """The bundled stage-3 recipe on the sample tree, plus a later pair of a training patient published in
    the test split (that patient must not train)."""
    import shutil

    from pipeline.engine.build import build

    recipe = load_recipe("stage3")
    root = tmp_path_factory.mktemp("stage3-sources")
    write_sample_tree(root, [entry.name for entry in recipe.sources])
    pair = root / "icg-cxr-v1/chexpertplus/pa/1/train/p00023/i01s0001-i04s0002"
    test_pair = root / "icg-cxr-v1/chexpertplus/pa/1/test/p00023/i04s0002-i05s0005"
    test_pair.mkdir(parents=True)
    for path in pair.iterdir():
        shutil.copy(path, test_pair / path.name.replace(pair.name, test_pair.name))
    recipe.shards.max_samples = 50
    return build(recipe, tmp_path_factory.mktemp("stage3-build"), root, progress=False)


__all__ = ["SourceEntry", "sample_recipe"]
