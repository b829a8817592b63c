"""Near-duplicate decision cost at two corpus sizes ten times apart (`make bench`).

Generated records: random 64-bit pHashes and text signatures (hashing is per record and linear; the global
step is what could grow with the square), with 5% planted near copies (<= 6 flipped bits, same text). Prints
seconds at each size, their ratio (linear is 10x; the issue asks <= 12x) and the recall of planted copies.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from filters.near_duplicates import NearDuplicateRules, near_duplicate_rejections


def generated(count: int, seed: int = 0) -> tuple[pa.Table, int]:
    rng = np.random.default_rng(seed)
    planted = count // 20
    base = rng.integers(-2**63, 2**63 - 1, size=count - planted, dtype=np.int64)
    flips = np.zeros(planted, dtype=np.int64)
    for index in range(planted):
        for bit in rng.choice(63, size=int(rng.integers(1, 7)), replace=False):
            flips[index] |= np.int64(1) << np.int64(int(bit))
    phashes = np.concatenate([base, base[:planted] ^ flips])
    texts = rng.integers(0, 2**32, size=(count - planted, 64), dtype=np.uint32)
    texts = np.concatenate([texts, texts[:planted]])
    table = pa.table({"id": [f"r{i:08d}" for i in range(count)], "source": ["bench"] * count,
                      "task_family": ["i2t"] * count, "pixels": [512 * 512] * count,
                      "phash": pa.array(phashes, pa.int64()),
                      "text_minhash": pa.array([row.astype("<u4").tobytes() for row in texts], pa.binary())})
    return table, planted


def timed(count: int) -> tuple[float, float]:
    table, planted = generated(count)
    started = time.perf_counter()
    rejected = near_duplicate_rejections(table, NearDuplicateRules())
    return time.perf_counter() - started, rejected.num_rows / planted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000, help="the larger size (the smaller is a tenth)")
    args = parser.parse_args(argv)
    small, large = args.records // 10, args.records
    t_small, r_small = timed(small)
    t_large, r_large = timed(large)
    print(f"near duplicates: {small} records {t_small:.2f} s (recall of planted copies {r_small:.3f}); "
          f"{large} records {t_large:.2f} s (recall {r_large:.3f}); "
          f"time ratio {t_large / t_small:.1f}x for 10x records (linear 10x, asked <= 12x)")


if __name__ == "__main__":
    main()
