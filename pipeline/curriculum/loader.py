"""The curriculum loader: WebDataset shards of one or more builds -> model-ready batches, by stage.

How it works, and why it is exact:

- **Index.** Columnar (pipeline/curriculum/index.py): per sample a shard number, key, task family and
  source, from the build's manifest (`status = 'kept'` rows) in one query, else from the tars' headers and
  each sample's own JSON. A shard's member offsets are read from its headers when it is first read.
- **Streams.** One stream per task family (or, with `source_weights`, one per (family, source)). Draw
  number n of a stream reads sample `perm_e[n % len]`, where e = n // len is the stream's epoch and
  perm_e a permutation seeded by (seed, stream, e). A stream that runs out is therefore resampled in a
  fresh order, and within an epoch no sample is drawn twice.
- **Plan.** Global batch g (= optimiser step g) holds `world_size * batch_size` draws. Which family
  each slot draws from is decided by an RNG keyed by (seed, g) alone, at the weights of the stage that
  step g falls in. Weights are relative, normalised the way Bagel's PackedDataset does (probabilities
  = cumsum(weights) / sum(weights)), so stage 1's 75/25/0/5 (sum 105) is 71.4 / 23.8 / 0 / 4.8 %.
  `mode="stratified"` instead gives every global batch each family's exact share (largest remainder;
  which families get the spare seats rotates by accumulated deficit, so small shares are not starved).
  Every rank and worker computes the same plan; rank r takes slots [r*b, (r+1)*b) of every batch and
  worker w of the DataLoader takes every W-th batch, which is the order DataLoader yields them in. So
  each draw is made exactly once across ranks and workers, and every rank gets the same number of
  batches per stage by construction (no hang on uneven shards).
- **State.** (step, per-stream cursors, stratified deficits) is the whole state; the RNG is a function
  of (seed, step), so its state is the step. `CurriculumLoader.state_dict()` returns the state after
  the last batch the training loop received; loading it restarts the plan there, so a resumed run
  yields the same batches, in the same order, as one that never stopped. Nothing is shared between
  processes: each worker reads tars with `os.pread` on its own file descriptors.
"""


from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from manifests import storage
from pipeline.curriculum.decode import SampleDecoder, collate
from pipeline.curriculum.index import ShardIndex, build_index
from pipeline.curriculum.mixture import MixtureConfig, MixturePlan, stable_hash
from pipeline.curriculum.schedule import FAMILIES, Schedule


def distributed_rank() -> tuple[int, int]:
    """(rank, world_size) from torch.distributed when initialised, else torchrun's env, else (0, 1)."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class CurriculumDataset:
    """An IterableDataset of collated batches (use DataLoader(batch_size=None)) following the plan."""

    def __init__(self, builds: Sequence[Path | str] | ShardIndex, schedule: Schedule, config: MixtureConfig,
                 decoder: SampleDecoder | None = None, collate_fn: Callable = collate):
        self.index = builds if isinstance(builds, ShardIndex) else build_index(builds)
        self.schedule, self.config = schedule, config
        self.decoder = decoder or SampleDecoder()
        self.collate_fn = collate_fn
        self.stream_names, self.stream_samples, family, weight = self._streams()
        self._stream_family = family
        self._plan_args = (self.stream_names, [len(s) for s in self.stream_samples], family, weight)
        self.start_state: dict[str, Any] | None = None

    def _streams(self):
        family_code, source_code = self.index.family_code, self.index.source_code
        keys: list[tuple[str, str | None]] = []
        for code, family in enumerate(FAMILIES):
            present = np.unique(source_code[family_code == code])
            if not len(present):
                continue
            per_source = self.config.source_weights.get(family)
            if per_source is None:
                keys.append((family, None))
            else:  # a source the weights leave out is not drawn
                keys += sorted((family, self.index.source_names[s]) for s in present
                               if self.index.source_names[s] in per_source)
        names, samples, family_of, weight = [], [], [], []
        for family, source in keys:
            mask = family_code == FAMILIES.index(family)
            if source is not None:
                mask &= source_code == self.index.source_names.index(source)
            names.append(family if source is None else f"{family}/{source}")
            samples.append(np.flatnonzero(mask))
            family_of.append(family)
            weight.append(float(self.config.source_weights[family][source]) if source is not None else 1.0)
        if not names:
            raise ValueError("the builds hold no samples of any task family")
        return names, samples, family_of, weight

    def plan(self) -> MixturePlan:
        plan = MixturePlan(*self._plan_args, self.schedule, self.config)
        if self.start_state is not None:
            plan.load_state_dict(self.start_state)
        return plan

    def sample_at(self, stream: int, draw: int) -> int:
        """The index position of draw number `draw` of a stream: its epoch's seeded permutation."""
        members = self.stream_samples[stream]
        epoch, position = divmod(draw, len(members))
        return int(members[self._permutation(stream, epoch)[position]])

    def _permutation(self, stream: int, epoch: int) -> np.ndarray:
        cache = self.__dict__.setdefault("_perm_cache", {})
        if cache.get(stream, (None,))[0] != epoch:
            rng = np.random.default_rng([self.config.seed, stable_hash(self.stream_names[stream]), epoch])
            cache[stream] = (epoch, rng.permutation(len(self.stream_samples[stream])))
        return cache[stream][1]

    def read(self, position: int, fds: dict[int, int]) -> tuple[dict[str, Any], dict[str, bytes]]:
        shard, refs = self.index.members(position)
        location = self.index.shards[shard]
        if storage.is_url(location):  # a build on object storage: one ranged GET per member
            fs, path = storage.filesystem(location)
            members = {suffix: storage.read_range(fs, path, offset, size) for suffix, offset, size in refs}
            return json.loads(members.pop("json")), members
        fd = fds.get(shard)
        if fd is None:
            fd = fds[shard] = os.open(location, os.O_RDONLY)
        members = {suffix: os.pread(fd, size, offset) for suffix, offset, size in refs}
        return json.loads(members.pop("json")), members

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        plan = self.plan()
        first = plan.step
        lo = self.config.rank * self.config.batch_size
        hi = lo + self.config.batch_size
        fds: dict[int, int] = {}
        try:
            while not plan.done:
                step = plan.step
                slots = plan.next_batch()
                if (step - first) % workers != worker:
                    continue
                samples = []
                for stream, draw in slots[lo:hi]:
                    position = self.sample_at(stream, draw)
                    doc, members = self.read(position, fds)
                    sample = self.decoder(doc, members)
                    source = self.index.source_names[self.index.source_code[position]]
                    sample.update(family=self._stream_family[stream], key=self.index.key(position),
                                  source=source, stream=self.stream_names[stream], draw=draw)
                    samples.append(sample)
                batch = self.collate_fn(samples)
                batch["step"] = step
                batch["loader_state"] = plan.state_dict()
                yield batch
        finally:
            for fd in fds.values():
                os.close(fd)


def _as_iterable_dataset(dataset: CurriculumDataset):
    import torch.utils.data

    class _Iterable(torch.utils.data.IterableDataset):
        def __init__(self, inner: CurriculumDataset):
            self.inner = inner

        def __iter__(self):
            return iter(self.inner)

    return _Iterable(dataset)


class CurriculumLoader:
    """DataLoader over a CurriculumDataset with `state_dict()` / `load_state_dict()` for exact resumption.

    The state is that after the last batch this loader handed out (prefetched batches do not count).
    """

    def __init__(self, dataset: CurriculumDataset, num_workers: int = 0, **dataloader_kwargs):
        self.dataset = dataset
        self.num_workers = num_workers
        self.dataloader_kwargs = dataloader_kwargs
        self._state: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from torch.utils.data import DataLoader

        self.dataset.start_state = self._state
        loader = DataLoader(_as_iterable_dataset(self.dataset), batch_size=None, num_workers=self.num_workers,
                            **self.dataloader_kwargs)
        for batch in loader:
            self._state = batch.pop("loader_state")
            yield batch

    def __len__(self) -> int:
        done = self._state["step"] if self._state else 0
        return self.dataset.schedule.total_steps - done

    def state_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._state or self.dataset.plan().state_dict()))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dataset.plan().load_state_dict(state)  # validates against this mixture before accepting it
        self._state = json.loads(json.dumps(state))


def make_loader(builds: Sequence[Path | str], stages: Sequence[int] = (1,), scale: float = 1.0, batch_size: int = 8,
                seed: int = 0, mode: str = "random", rank: int | None = None, world_size: int | None = None,
                num_workers: int = 0, decoder: SampleDecoder | None = None,
                source_weights: dict[str, dict[str, float]] | None = None, **dataloader_kwargs) -> CurriculumLoader:
    if rank is None or world_size is None:
        rank, world_size = distributed_rank()
    config = MixtureConfig(batch_size=batch_size, seed=seed, mode=mode, rank=rank, world_size=world_size,
                           source_weights=source_weights or {})
    dataset = CurriculumDataset(builds, Schedule.of(stages, scale), config, decoder)
    return CurriculumLoader(dataset, num_workers=num_workers, **dataloader_kwargs)
