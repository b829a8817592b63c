"""What a Ray worker of a build carries (issue 27): no torch on the read-check-write path, shard bytes as
webdataset writes them, and consecutive task stages run in one call per batch."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys

import numpy as np

from manifests.records import Record
from pipeline.engine.ray_setup import _task_runs
from pipeline.engine.staging import write_samples
from pipeline.stages.base import ModelStage, Stage, run_task_stages

WORKER_PATH = ("pipeline.engine.build", "pipeline.engine.units", "pipeline.engine.plan", "pipeline.engine.staging",
               "pipeline.stages.base", "sources.rocov2", "filters")


def test_the_workers_path_imports_no_torch():
    """torch costs a Ray worker ~300 MiB and seconds of start-up; nothing between reading and writing needs it."""
    code = f"import sys\nfor m in {WORKER_PATH!r}: __import__(m)\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.stdout.strip() == "False"


def test_shard_bytes_are_webdatasets():
    import webdataset as wds

    rng = np.random.default_rng(0)
    samples = [(f"s{i:04d}", f'{{"n": {i}}}'.encode(), [("in0.jpg", rng.bytes(700 + 91 * i)),
                                                        ("out0.png", rng.bytes(512))]) for i in range(12)]
    expected = io.BytesIO()
    with wds.TarWriter(expected, encoder=False, mtime=0, user="", group="", mode=0o444) as writer:
        for key, sample, images in samples:
            writer.write({"__key__": key, "json": sample, **dict(images)})
    written = io.BytesIO()
    write_samples(written, samples)
    assert written.getvalue() == expected.getvalue()


class _Append(Stage):
    def __init__(self, name: str, num_cpus: float = 1.0):
        self.name, self.num_cpus = name, num_cpus

    def process(self, record: Record) -> None:
        record.meta.setdefault("ran", []).append(self.name)


class _Model(ModelStage):
    section = "siglip"

    def __init__(self):
        self.name, self.actors, self.num_cpus, self.num_gpus, self.batch_size = "model", 1, 1.0, 0.0, 4


def test_consecutive_task_stages_run_in_one_call_with_the_same_result():
    a, b, model, c, d = _Append("a"), _Append("b"), _Model(), _Append("c"), _Append("d", num_cpus=0.5)
    assert [[s.name for s in run] for run in _task_runs([a, b, model, c, d])] == [["a", "b"], ["model"], ["c"], ["d"]]
    records = [Record(id=f"r{i}", source="x", split="train", modality="ct", task_family="i2t",
                      main_task_type="caption", sub_task_type="caption", message=[]) for i in range(3)]
    batch = {"id": np.array([r.id for r in records] + ["u#end"], dtype=object),
             "kind": np.array(["record"] * 3 + ["unit_end"], dtype=object),
             "blob": np.array([pickle.dumps(r) for r in records] + [pickle.dumps((3, ""))], dtype=object)}
    together = run_task_stages(batch, [a, b])
    one_by_one = b(a(batch))
    assert [pickle.loads(x) for x in together["blob"]] == [pickle.loads(x) for x in one_by_one["blob"]]
    assert pickle.loads(together["blob"][0]).meta["ran"] == ["a", "b"]
    assert pickle.loads(together["blob"][3]) == (3, "")
