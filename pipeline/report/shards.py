"""Sample members read back from a build's outputs: the final shards for kept samples and, while the build's
staging area is still there, the staged bytes of samples rejected at finalisation (e.g. below the alignment
cut). Nothing here writes into the build.
"""

from __future__ import annotations

import json
import tarfile
import threading
from pathlib import Path

import duckdb

MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "npy": "application/octet-stream"}


class ShardReader:
    """Reads `<key>.<suffix>` members from BUILD/shards/ (the manifest's `shard` column is relative to it); one member index per shard, built on first use."""

    def __init__(self, build_dir: Path):
        self.build_dir = Path(build_dir)
        self._index: dict[str, dict[str, tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def _members(self, shard: str) -> dict[str, tuple[int, int]]:
        with self._lock:
            if shard not in self._index:
                path = self.build_dir / "shards" / shard
                with tarfile.open(path) as tar:
                    self._index[shard] = {m.name: (m.offset_data, m.size) for m in tar.getmembers() if m.isfile()}
            return self._index[shard]

    def read(self, shard: str, key: str, suffix: str) -> bytes:
        try:
            offset, size = self._members(shard)[f"{key}.{suffix}"]
        except (KeyError, FileNotFoundError, tarfile.TarError) as err:
            raise FileNotFoundError(f"{key}.{suffix} is not in shard {shard} of {self.build_dir}") from err
        with open(self.build_dir / "shards" / shard, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)


def staged_members(build_dir: Path, ids: list[str]) -> dict[str, dict[str, bytes]]:
    """{id: {suffix: bytes}} from BUILD/.state/staging for the given ids, where the staging area still holds them."""
    staging = Path(build_dir) / ".state" / "staging"
    files = sorted(staging.glob("*/*.parquet"))
    if not ids or not files:
        return {}
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE wanted (id VARCHAR)")
    con.executemany("INSERT INTO wanted VALUES (?)", [(i,) for i in ids])
    rows = con.execute(
        "SELECT s.id, s.staging_tar, s.members, s.filename FROM read_parquet(?, filename = true, union_by_name = true) s "
        "JOIN wanted USING (id) WHERE s.staging_tar IS NOT NULL",
        [[f.as_posix() for f in files]]).fetchall()
    out: dict[str, dict[str, bytes]] = {}
    for record_id, tar_name, members, parquet_file in rows:
        folder = Path(parquet_file).parent
        try:
            with open(folder / tar_name, "rb") as handle:
                for suffix, offset, size in json.loads(members or "[]"):
                    handle.seek(offset)
                    out.setdefault(record_id, {})[suffix] = handle.read(size)
        except OSError:
            continue
    return out
