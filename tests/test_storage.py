"""manifests/storage.py on a local folder and on fsspec's in-memory store, and the recipe's execution.placement."""

from __future__ import annotations

import os
import uuid

import pytest

from filters.settings import RecipeError
from manifests import storage
from pipeline.config import ExecutionSettings
from pipeline.engine.ray_setup import placement


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path) -> str:
    return str(tmp_path / "build") if request.param == "local" else f"memory://{uuid.uuid4().hex}/build"


def test_publish_list_read_and_remove(root):
    fs, base = storage.filesystem(root)
    storage.write_text(fs, storage.join(base, "stats.json"), "{}")
    scratch = storage.scratch_file(".tar")
    with open(scratch, "wb") as handle:
        handle.write(b"0123456789")
    storage.put_file(fs, scratch, storage.join(base, "shards", "g", "a.tar"))
    assert not os.path.exists(scratch)  # moved or uploaded, never left behind
    assert storage.read_text(fs, storage.join(base, "stats.json")) == "{}"
    shard = storage.join(base, "shards", "g", "a.tar")
    assert storage.read_range(fs, shard, 3, 4) == b"3456"
    assert storage.find(fs, storage.join(base, "shards"), ".tar") == [shard]
    assert storage.find(fs, storage.join(base, "absent"), ".tar") == []
    assert storage.glob(fs, storage.join(base, "*.json")) == [storage.join(base, "stats.json")]
    with storage.open_input(storage.location(fs, shard)) as stream:
        stream.seek(8)
        assert stream.read() == b"89"
    storage.remove(fs, shard)
    storage.remove(fs, shard)  # a missing file is not an error
    assert not storage.exists(fs, shard)
    # no temporary names are left next to the published files
    assert [p for p in fs.find(base) if p.endswith(".tmp")] == []


def test_location_is_a_url_for_a_store_and_a_path_locally(tmp_path):
    fs, path = storage.filesystem("memory://bucket/x")
    url = storage.location(fs, path)
    assert url.startswith("memory://") and storage.filesystem(url)[1] == path  # a worker gets the same object
    fs, path = storage.filesystem(tmp_path)
    assert storage.location(fs, path) == str(tmp_path)


def test_placement_names_steps_and_positive_amounts():
    settings = ExecutionSettings(placement={"read": {"reader": 0.5}, "write": {"writer": 1}})
    assert placement(settings.placement["read"]) == {"resources": {"reader": 0.5}}
    assert placement(None) == {}
    with pytest.raises(RecipeError, match="read, score and write"):
        ExecutionSettings(placement={"decode": {"reader": 1}})
    with pytest.raises(RecipeError, match="positive amounts"):
        ExecutionSettings(placement={"read": {"reader": 0}})
